import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import StarlingCore
import StarlingStorage
import StarlingTestKit
import Testing

@testable import StarlingHTTP

@Suite struct ReadRouteTests {
    static let t0: Int64 = 1_700_000_000_000

    /// A shell whose read routes query a real `TimeSeriesDB` over the in-memory store.
    func shellWithData() throws -> (TestShell, TimeSeriesDB, RouteCollection<StarlingRequestContext>) {
        let shell = try TestShell()
        let db = try TimeSeriesDB(store: MemoryKV(), nowMs: Self.t0)
        let batch = [
            SeriesSamples(labels: Labels(["__name__": "up", "job": "node", "instance": "a:9100"]), samples: [Sample(Self.t0, 1)]),
            SeriesSamples(labels: Labels(["__name__": "up", "job": "node", "instance": "b:9100"]), samples: [Sample(Self.t0, 0)]),
            SeriesSamples(labels: Labels(["__name__": "http_requests_total", "job": "api", "path": "/a \"q\""]), samples: [Sample(Self.t0 + 60_000, 5)]),
        ]
        _ = try db.append(batch, nowMs: Self.t0)
        let routes = ReadRoutes(querier: { db }, metrics: shell.metrics, executor: shell.executor).routes()
        return (shell, db, routes)
    }

    func reader(_ shell: TestShell) throws -> String {
        var rng = SystemRandomNumberGenerator()
        return try shell.authority.create(name: "grafana", role: .reader, labels: [:], nowMs: 0, rng: &rng).token
    }

    @Test func seriesLabelsAndValuesHavePrometheusShapes() async throws {
        let (shell, _, routes) = try shellWithData()
        let token = try reader(shell)
        try await shell.application(extra: [routes]).test(.router) { client in
            try await client.execute(uri: "/api/v1/series?match[]=up&start=\(Self.t0 / 1000 - 10)&end=\(Self.t0 / 1000 + 10)", method: .get, headers: bearer(token)) { r in
                #expect(r.status == .ok)
                let body = json(r.body)
                #expect(body["status"] as? String == "success")
                let data = body["data"] as? [[String: String]] ?? []
                #expect(data == [
                    ["__name__": "up", "instance": "a:9100", "job": "node"],
                    ["__name__": "up", "instance": "b:9100", "job": "node"],
                ])
            }
            // Several match[] are a union; a regex matcher; RFC 3339 times.
            let uri = "/api/v1/series?match[]=" + q("up{instance=~\"b.*\"}") + "&match[]=" + q("{job=\"api\"}")
                + "&start=2023-11-14T22:00:00Z&end=2023-11-14T23:00:00Z"
            try await client.execute(uri: uri, method: .get, headers: bearer(token)) { r in
                let data = json(r.body)["data"] as? [[String: String]] ?? []
                #expect(data.map { $0["__name__"] } == ["http_requests_total", "up"])
                #expect(data.first?["path"] == "/a \"q\"")
            }
            try await client.execute(uri: "/api/v1/labels", method: .get, headers: bearer(token)) { r in
                #expect(json(r.body)["data"] as? [String] == ["__name__", "instance", "job", "path"])
            }
            try await client.execute(uri: "/api/v1/label/job/values", method: .get, headers: bearer(token)) { r in
                #expect(json(r.body)["data"] as? [String] == ["api", "node"])
            }
            try await client.execute(uri: "/api/v1/label/instance/values?match[]=up&limit=1", method: .get, headers: bearer(token)) { r in
                let body = json(r.body)
                #expect(body["data"] as? [String] == ["a:9100"])
                #expect((body["warnings"] as? [String])?.isEmpty == false)
            }
            // POST with a form body, as Grafana sends long selectors.
            try await client.execute(
                uri: "/api/v1/series", method: .post,
                headers: [.authorization: "Bearer \(token)", .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "match%5B%5D=" + q("up{instance=\"a:9100\"}"))
            ) { r in
                #expect((json(r.body)["data"] as? [[String: String]])?.count == 1)
            }
        }
    }

    @Test func badReadParametersAre400WithTheReason() async throws {
        let (shell, _, routes) = try shellWithData()
        let token = try reader(shell)
        let cases: [(String, String)] = [
            ("/api/v1/series", "no match[] parameter provided"),
            ("/api/v1/series?match[]=" + q("up{"), "invalid parameter \"match[]\""),
            ("/api/v1/series?match[]=" + q("{job=~\".*\"}"), "at least one non-empty matcher"),
            ("/api/v1/series?match[]=" + q("{job=~\"(\"}"), "invalid regular expression"),
            ("/api/v1/series?match[]=up&start=yesterday", "invalid parameter \"start\""),
            ("/api/v1/series?match[]=up&start=10&end=5", "end timestamp must not be before start"),
            ("/api/v1/labels?limit=-1", "invalid parameter \"limit\""),
            ("/api/v1/label/bad-name/values", "invalid label name"),
        ]
        try await shell.application(extra: [routes]).test(.router) { client in
            for (uri, expected) in cases {
                try await client.execute(uri: uri, method: .get, headers: bearer(token)) { r in
                    #expect(r.status == .badRequest, "\(uri)")
                    let body = json(r.body)
                    #expect(body["errorType"] as? String == "bad_data")
                    #expect((body["error"] as? String)?.contains(expected) == true, "\(uri): \(body)")
                }
            }
        }
    }

    @Test func writersCannotRead() async throws {
        let (shell, _, routes) = try shellWithData()
        var rng = SystemRandomNumberGenerator()
        let writer = try shell.authority.create(name: "agent", role: .writer, labels: [:], nowMs: 0, rng: &rng).token
        try await shell.application(extra: [routes]).test(.router) { client in
            try await client.execute(uri: "/api/v1/labels", method: .get, headers: bearer(writer)) { r in
                #expect(r.status == .forbidden)
                #expect((json(r.body)["error"] as? String)?.contains("cannot read data") == true)
            }
        }
    }

    @Test func selectorParser() throws {
        let m = try SeriesSelector.parse(#"http_requests_total{job="api", path!~'/x.*', code=~`5..`,}"#)
        #expect(m.map(\.description) == [
            "__name__=\"http_requests_total\"", "job=\"api\"", "path!~\"/x.*\"", "code=~\"5..\"",
        ])
        #expect(try SeriesSelector.parse(#"{__name__="a\"b\u00e9"}"#).first?.value == "a\"b\u{e9}")
        #expect(throws: SeriesSelector.ParseError.self) { try SeriesSelector.parse("up{job}") }
        #expect(throws: SeriesSelector.ParseError.self) { try SeriesSelector.parse("up{job=\"x\"") }
        #expect(throws: SeriesSelector.ParseError.self) { try SeriesSelector.parse("") }
        #expect(throws: SeriesSelector.ParseError.self) { try SeriesSelector.parse("up extra") }
    }
}

func q(_ s: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
}

/// Form decoding checked against Foundation's percent decoding, which it replaced for speed (it
/// was a tenth of a small query's server time): the same pairs for every input with malformed
/// escapes, `+` and escaped separators. Escapes that decode to bytes that are not UTF-8 keep the
/// text as sent; Foundation on Linux replaced some such bytes with U+FFFD and kept others.
@Suite struct FormDecodingTests {
    static func reference(_ text: String) -> [(String, String)] {
        text.split(separator: "&", omittingEmptySubsequences: true).map { item in
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String {
                let spaced = s.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
    }

    static func same(_ a: [(String, String)], _ b: [(String, String)]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { Array($0.0.utf8) == Array($1.0.utf8) && Array($0.1.utf8) == Array($1.1.utf8) }
    }

    @Test func examples() {
        let cases: [(String, [(String, String)])] = [
            ("", []),
            ("&&", []),
            ("query=up", [("query", "up")]),
            ("query=rate(x%5B5m%5D)&time=1700000000", [("query", "rate(x[5m])"), ("time", "1700000000")]),
            ("q=a+b%2Bc", [("q", "a b+c")]),
            ("q=%7Binstance%3D%22h%3A9100%22%7D", [("q", "{instance=\"h:9100\"}")]),
            ("flag&x=", [("flag", ""), ("x", "")]),
            ("x=a=b", [("x", "a=b")]),
            ("x=%", [("x", "%")]),
            ("x=%4", [("x", "%4")]),
            ("x=%zz+y", [("x", "%zz y")]),
            ("x=%C3%A9", [("x", "é")]),
            ("x=é%20", [("x", "é ")]),
            // Not UTF-8 once decoded: as sent.
            ("x=%C3", [("x", "%C3")]),
            ("x=%A9+%41", [("x", "%A9 %41")]),
            ("x=%FF", [("x", "%FF")]),
        ]
        for (text, want) in cases {
            #expect(Self.same(ReadParameters.formPairs(text), want), "\(text)")
        }
    }

    @Test func randomInputsMatchFoundation() {
        let alphabet: [String] = ["a", "Z", "0", "9", "f", "F", "%", "+", "&", "=", " ", "é", "%2", "%C3%A9", "%00", "%25", "%26", "%3D", "%7b"]
        var rng = SeededRandom(seed: 31)
        for _ in 0..<5_000 {
            let text = (0..<Int.random(in: 0...14, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }.joined()
            let reference = Self.reference(text)
            // Random hex after a `%` can make bytes that are not UTF-8 (see above).
            if reference.contains(where: { $0.0.contains("\u{FFFD}") || $0.1.contains("\u{FFFD}") }) { continue }
            #expect(Self.same(ReadParameters.formPairs(text), reference), "\(text)")
        }
    }
}
