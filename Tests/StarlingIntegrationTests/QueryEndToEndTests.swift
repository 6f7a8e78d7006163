import Foundation
import StarlingTestKit
import Testing

/// The query API of a real `starling` process, called the way Grafana's Prometheus data source
/// calls it: buildinfo at "save & test", POST form bodies for query and query_range, labels and
/// series with `match[]` and a time range for the query editor, metadata for hints.
@Suite(.serialized) struct QueryEndToEndTests {
    func createToken(_ node: TestNode, role: String) async throws -> String {
        let body = try JSONSerialization.data(withJSONObject: ["name": "grafana", "role": role])
        let r = try await node.request(.POST, "/api/v1/admin/tokens", body: Array(body), headers: [("Content-Type", "application/json")])
        try #require(r.status == 201, "\(r.text)")
        return try #require((r.json["data"] as? [String: Any])?["token"] as? String)
    }

    static let form = [("Content-Type", "application/x-www-form-urlencoded")]

    @Test func grafanaCallsAnswerLikePrometheus() async throws {
        let node = TestNode(name: "query", extraArgs: ["--set", "query.max_samples=50", "--set", "query.lookback_delta=1m"])
        defer { node.stop() }
        try await withLogsOnFailure([node.process]) {
            try await node.start()
            let reader = try await createToken(node, role: "reader")

            // Two counters rising by 15 every 15 s for 10 minutes, on whole-minute timestamps:
            // rates of exactly 1/s and 2/s. A gauge that stops 3 minutes before the end.
            let endMs = (Int64(Date().timeIntervalSince1970) / 60 - 1) * 60_000
            let startMs = endMs - 600_000
            var lines = ""
            for (i, host) in ["a", "b"].enumerated() {
                let ts = stride(from: startMs, through: endMs, by: 15_000).map { $0 }
                let values = ts.indices.map { $0 * 15 * (i + 1) }
                lines += #"{"metric":{"__name__":"node_requests_total","job":"node","host":"\#(host)"},"values":\#(values),"timestamps":\#(ts)}"# + "\n"
            }
            let gaugeTs = stride(from: startMs, through: endMs - 180_000, by: 15_000).map { $0 }
            lines += #"{"metric":{"__name__":"node_load1","job":"node","host":"a"},"values":\#(gaugeTs.map { _ in 0.5 }),"timestamps":\#(gaugeTs)}"# + "\n"
            let imp = try await node.request(.POST, "/api/v1/import", body: Array(lines.utf8))
            try #require(imp.status == 204, "\(imp.text)")

            let end = endMs / 1000
            // Data source "save & test".
            let info = try await node.request(.GET, "/api/v1/status/buildinfo", token: reader)
            try #require(info.status == 200, "\(info.text)")
            #expect((info.json["data"] as? [String: Any])?["version"] as? String == "2.42.0")

            // Instant query, POST form (Grafana's default method).
            let instant = try await node.request(
                .POST, "/api/v1/query", token: reader,
                body: Array(("query=" + q("sum by (job) (rate(node_requests_total[5m]))") + "&time=\(end)").utf8), headers: Self.form)
            try #require(instant.status == 200, "\(instant.text)")
            #expect(instant.text == #"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"node"},"value":[\#(end),"3"]}]}}"#)

            // Range query: lookback_delta=1m makes the gauge vanish 1 minute after its last sample.
            let range = try await node.request(
                .POST, "/api/v1/query_range", token: reader,
                body: Array(("query=" + q("node_load1") + "&start=\(end - 240)&end=\(end)&step=60").utf8), headers: Self.form)
            try #require(range.status == 200, "\(range.text)")
            #expect(range.text == #"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"node_load1","host":"a","job":"node"},"values":[[\#(end - 240),"0.5"],[\#(end - 180),"0.5"],[\#(end - 120),"0.5"]]}]}}"#)

            // GET works too; an RFC 3339 time; a parse error is 400 bad_data with its position.
            let iso = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(end)))
            let get = try await node.request(.GET, "/api/v1/query?query=" + q("node_requests_total{host=\"b\"}") + "&time=" + q(iso), token: reader)
            #expect(get.text.contains(#""value":[\#(end),"1200"]"#), "\(get.text)")
            let bad = try await node.request(.GET, "/api/v1/query?query=" + q("rate(node_requests_total[5m]"), token: reader)
            #expect(bad.status == 400)
            #expect(bad.json["errorType"] as? String == "bad_data")
            #expect((bad.json["error"] as? String)?.hasPrefix("invalid parameter \"query\": 1:") == true, "\(bad.text)")

            // query.max_samples=50 from the command line: the rate above held 2 × 21 points,
            // 2 × 41 do not fit.
            let tooMany = try await node.request(.GET, "/api/v1/query?query=" + q("node_requests_total[10m]") + "&time=\(end)", token: reader)
            #expect(tooMany.status == 422, "\(tooMany.text)")
            #expect(tooMany.json["errorType"] as? String == "execution")
            let metrics = try await node.request(.GET, "/metrics")
            #expect(metrics.text.contains(#"starling_query_limit_hits_total{limit="max_samples"} 1"#), "\(metrics.text)")
            // Every query's first run takes the pool (query.inline_budget); each is counted.
            #expect(metrics.text.contains(#"starling_query_evaluations_total{placement="pool"}"#), "\(metrics.text)")

            // The query editor: labels and series with match[] and a time range, label values.
            let labels = try await node.request(
                .POST, "/api/v1/labels", token: reader,
                body: Array(("match%5B%5D=" + q("node_load1") + "&start=\(end - 3600)&end=\(end)").utf8), headers: Self.form)
            #expect(labels.json["data"] as? [String] == ["__name__", "host", "job"], "\(labels.text)")
            let series = try await node.request(
                .GET, "/api/v1/series?match%5B%5D=" + q("{__name__=~\"node_.*\",host=\"a\"}") + "&start=\(end - 3600)&end=\(end)", token: reader)
            #expect((series.json["data"] as? [[String: String]])?.map { $0["__name__"] ?? "" } == ["node_load1", "node_requests_total"], "\(series.text)")
            let names = try await node.request(.GET, "/api/v1/label/__name__/values?start=\(end - 3600)&end=\(end)", token: reader)
            #expect(names.json["data"] as? [String] == ["node_load1", "node_requests_total"], "\(names.text)")
            let meta = try await node.request(.GET, "/api/v1/metadata", token: reader)
            #expect(meta.text == #"{"status":"success","data":{}}"#)
            let formatted = try await node.request(.GET, "/api/v1/format_query?query=" + q("sum(rate(x[5m]))by(job)"), token: reader)
            #expect(formatted.text == #"{"status":"success","data":"sum by (job) (rate(x[5m]))"}"#)
        }
    }
}
