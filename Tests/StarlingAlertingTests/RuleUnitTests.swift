import Foundation
import StarlingAlerting
import StarlingCore
import StarlingPromQL
import StarlingTestKit
import Testing
import Yams

/// Rule evaluation specified by test files in `promtool test rules` format
/// (`Tests/StarlingAlertingTests/RuleTests/*.test.yml`): input series in the expanding
/// notation, expected firing alerts with labels and annotations at evaluation times, and PromQL
/// expectations over what the rules wrote (`ALERTS`, `ALERTS_FOR_STATE`, recording rules).
/// `scripts/test` runs real `promtool test rules` on the same files, so every expectation here
/// is also Prometheus's answer.
@Suite struct RuleUnitTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("RuleTests")

    static var files: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).filter { $0.hasSuffix(".test.yml") }.sorted()
    }

    @Test(arguments: files) func promtoolFormat(file: String) async throws {
        let text = try String(contentsOf: Self.directory.appendingPathComponent(file), encoding: .utf8)
        let doc = try #require(try Yams.load(yaml: text) as? [String: Any])
        let evalInterval = try Self.duration(doc["evaluation_interval"] as? String ?? "1m")
        var groups: [RuleGroupSpec] = []
        for name in doc["rule_files"] as? [String] ?? [] {
            let rules = try String(contentsOf: Self.directory.appendingPathComponent(name), encoding: .utf8)
            groups += try RuleFiles.parse(yaml: rules, source: name)
        }
        for (ti, test) in (doc["tests"] as? [[String: Any]] ?? []).enumerated() {
            try await Self.run(test, index: ti, file: file, groups: groups, evalIntervalMs: evalInterval)
        }
    }

    static func duration(_ s: String) throws -> Int64 {
        try #require(parsePrometheusDurationMs(s), "bad duration \(s)")
    }

    static func run(_ test: [String: Any], index: Int, file: String, groups: [RuleGroupSpec], evalIntervalMs: Int64) async throws {
        let where_ = "\(file) tests[\(index)]"
        let interval = try duration(test["interval"] as? String ?? "1m")
        let storage = MemoryQuerier()
        for s in test["input_series"] as? [[String: Any]] ?? [] {
            let desc = "\(s["series"] as? String ?? "") \(s["values"] as? String ?? "")"
            let (labels, values) = try PromQLParser.parseSeriesDescription(desc)
            var samples: [Sample] = []
            for (i, v) in values.enumerated() {
                if case .value(let x) = v { samples.append(Sample(Int64(i) * interval, x)) }
            }
            storage.add(labels, samples)
        }
        let alertTests = test["alert_rule_test"] as? [[String: Any]] ?? []
        let exprTests = test["promql_expr_test"] as? [[String: Any]] ?? []
        var checks: [Int64: [[String: Any]]] = [:]
        for t in alertTests { checks[try duration(t["eval_time"] as? String ?? "0s"), default: []].append(t) }
        let maxT = max(checks.keys.max() ?? 0, try exprTests.map { try duration($0["eval_time"] as? String ?? "0s") }.max() ?? 0)

        let engine = Engine()
        let query: @Sendable (String, Int64) async throws -> [(Labels, Double)] = { expr, t in
            let r = try await engine.instantQuery(expr, timeMs: t, querier: storage)
            switch r.value {
            case .vector(let v): return v.map { ($0.labels, $0.value) }
            case .scalar(_, let x): return [(Labels.empty, x)]
            default: throw RuleEvaluationError(message: "rule result is not a vector")
            }
        }
        let write: @Sendable ([SeriesSamples]) async throws -> Void = { series in
            for s in series { storage.add(s.labels, s.samples) }
        }
        var states = groups.map { RuleGroupState(spec: $0) }
        var t: Int64 = 0
        while t <= maxT {
            for i in states.indices {
                _ = await states[i].evaluate(nowMs: t, intervalMs: evalIntervalMs, query: query, write: write)
                for (r, h) in states[i].health.enumerated() where h.status == .err {
                    Issue.record("\(where_): rule \(states[i].spec.rules[r].name) failed at \(t / 1000)s: \(h.lastError ?? "")")
                }
            }
            for check in checks[t] ?? [] {
                let name = check["alertname"] as? String ?? ""
                var got: [String] = []
                for st in states {
                    for a in st.activeAlerts where a.state == .firing && a.labels.get("alertname") == name {
                        got.append(Self.describe(a.labels, a.annotations))
                    }
                }
                var expected: [String] = []
                for e in check["exp_alerts"] as? [[String: Any]] ?? [] {
                    var labels = Labels(["alertname": name])
                    for (k, v) in e["exp_labels"] as? [String: Any] ?? [:] { labels = labels.setting(k, "\(v)") }
                    var ann = Labels.empty
                    for (k, v) in e["exp_annotations"] as? [String: Any] ?? [:] { ann = ann.setting(k, "\(v)") }
                    expected.append(Self.describe(labels, ann))
                }
                #expect(got.sorted() == expected.sorted(), "\(where_): alert \(name) at \(t / 1000)s")
            }
            t += evalIntervalMs
        }
        for e in exprTests {
            let at = try duration(e["eval_time"] as? String ?? "0s")
            let expr = e["expr"] as? String ?? ""
            let got = try await query(expr, at).map { "\($0.0) \($0.1)" }.sorted()
            var expected: [String] = []
            for s in e["exp_samples"] as? [[String: Any]] ?? [] {
                let labels = try PromQLParser.parseSeriesDescription("\(s["labels"] as? String ?? "{}") 0").0
                let value = (s["value"] as? Double) ?? Double("\(s["value"] ?? "")") ?? .nan
                expected.append("\(labels) \(value)")
            }
            #expect(got == expected.sorted(), "\(where_): \(expr) at \(at / 1000)s")
        }
    }

    static func describe(_ labels: Labels, _ annotations: Labels) -> String {
        "\(labels) \(annotations)"
    }
}
