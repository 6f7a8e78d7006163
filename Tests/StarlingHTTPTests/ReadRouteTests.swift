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
