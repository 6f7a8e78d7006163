import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import StarlingCore
import StarlingPromQL
import StarlingStorage
import StarlingTestKit
import Testing

@testable import StarlingHTTP

@Suite struct QueryRouteTests {
    static let t0: Int64 = 1_700_000_000_000

    /// Query routes over a real `TimeSeriesDB` on the in-memory store: two counters rising by 15
    /// every 15 s for 10 minutes (a rate of exactly 1/s and 2/s).
    func shell(settings: EngineSettings = EngineSettings()) throws -> (TestShell, RouteCollection<StarlingRequestContext>, PromQLMetrics) {
        let shell = try TestShell()
        let db = try TimeSeriesDB(store: MemoryKV(), nowMs: Self.t0)
        let batch = ["a", "b"].enumerated().map { i, instance in
            SeriesSamples(
                labels: Labels(["__name__": "http_requests_total", "job": "api", "instance": instance]),
                samples: (0...40).map { Sample(Self.t0 + Int64($0) * 15_000, Double($0 * 15 * (i + 1))) })
        }
        _ = try db.append(batch, nowMs: Self.t0)
        let engineMetrics = PromQLMetrics()
        let api = PrometheusQueryAPI(engine: Engine(settings: settings, metrics: engineMetrics))
        let routes = QueryRoutes(
            querier: { db }, api: api, metrics: shell.metrics, executor: shell.executor, nowMs: { Self.t0 + 600_000 },
            buildInfo: .init(starlingVersion: "9.9.9", revision: "abc", swiftVersion: "6.2")
        ).routes()
        return (shell, routes, engineMetrics)
    }

    func token(_ shell: TestShell, _ role: Role) throws -> String {
        var rng = SystemRandomNumberGenerator()
        return try shell.authority.create(name: "t", role: role, labels: [:], nowMs: 0, rng: &rng).token
    }

    @Test func instantAndRangeQueriesOverGETAndPOST() async throws {
        let (shell, routes, _) = try shell()
        let reader = try token(shell, .reader)
        try await shell.application(extra: [routes]).test(.router) { client in
            // Instant query at the default time (now = t0 + 10 min).
            try await client.execute(uri: "/api/v1/query?query=" + q("sum by (job) (rate(http_requests_total[5m]))"), method: .get, headers: bearer(reader)) { r in
                #expect(r.status == .ok)
                #expect(r.headers[.contentType] == "application/json")
                #expect(String(buffer: r.body) == #"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"api"},"value":[1700000600,"3"]}]}}"#)
            }
            // POST form body; a body value wins over the query string's (Go's FormValue).
            var headers = bearer(reader)
            headers[.contentType] = "application/x-www-form-urlencoded"
            let form = "query=" + q("http_requests_total{instance=\"b\"}") + "&start=1700000000&end=1700000060&step=30s"
            try await client.execute(uri: "/api/v1/query_range?query=ignored", method: .post, headers: headers, body: ByteBuffer(string: form)) { r in
                #expect(r.status == .ok)
                #expect(String(buffer: r.body) == #"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"http_requests_total","instance":"b","job":"api"},"values":[[1700000000,"0"],[1700000030,"60"],[1700000060,"120"]]}]}}"#)
            }
            try await client.execute(uri: "/api/v1/format_query?query=" + q("sum(x)by(job)"), method: .get, headers: bearer(reader)) { r in
                #expect(String(buffer: r.body) == #"{"status":"success","data":"sum by (job) (x)"}"#)
            }
        }
    }

    /// Times far enough apart that their span overflows 64-bit milliseconds are refused with
    /// Prometheus's resolution error; they once trapped the node.
    @Test func farApartTimesAreRefusedNotATrap() async throws {
        let (shell, routes, _) = try shell()
        let reader = try token(shell, .reader)
        try await shell.application(extra: [routes]).test(.router) { client in
            for step in ["1000000000", "1"] {
                let uri = "/api/v1/query_range?query=1&start=-9100000000000000&end=9100000000000000&step=" + step
                try await client.execute(uri: uri, method: .get, headers: bearer(reader)) { r in
                    #expect(r.status == .badRequest)
                    #expect((json(r.body)["error"] as? String)?.contains("exceeded maximum resolution") == true)
                }
            }
            // Extreme but in range: answered.
            try await client.execute(uri: "/api/v1/query?query=time()&time=-9100000000000000", method: .get, headers: bearer(reader)) { r in
                #expect(r.status == .ok)
            }
        }
    }

    @Test func errorsHavePrometheusStatusAndType() async throws {
        var settings = EngineSettings()
        settings.maxSamples = 10
        let (shell, routes, engineMetrics) = try shell(settings: settings)
        let reader = try token(shell, .reader)
        let writer = try token(shell, .writer)
        try await shell.application(extra: [routes]).test(.router) { client in
            try await client.execute(uri: "/api/v1/query?query=" + q("sum(rate(x[5m])"), method: .get, headers: bearer(reader)) { r in
                #expect(r.status == .badRequest)
                #expect(String(buffer: r.body) == #"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:16: parse error: unclosed left parenthesis"}"#)
            }
            try await client.execute(uri: "/api/v1/query?query=" + q("http_requests_total[10m]") + "&time=1700000600", method: .get, headers: bearer(reader)) { r in
                #expect(r.status == .unprocessableContent)
                #expect(json(r.body)["errorType"] as? String == "execution")
                #expect((json(r.body)["error"] as? String)?.contains("too many samples") == true)
            }
            #expect(engineMetrics.limitHits["max_samples"] == 1)
            try await client.execute(uri: "/api/v1/query_range?query=up&start=0&end=1000000&step=1", method: .get, headers: bearer(reader)) { r in
                #expect(r.status == .badRequest)
                #expect((json(r.body)["error"] as? String)?.contains("11,000 points") == true)
            }
            // Queries need the reader role.
            try await client.execute(uri: "/api/v1/query?query=up", method: .get, headers: bearer(writer)) { r in
                #expect(r.status == .forbidden)
            }
            try await client.execute(uri: "/api/v1/query?query=up", method: .get) { r in
                #expect(r.status == .unauthorized)
            }
        }
    }

    @Test func buildinfoAndMetadata() async throws {
        let (shell, routes, _) = try shell()
        let reader = try token(shell, .reader)
        try await shell.application(extra: [routes]).test(.router) { client in
            try await client.execute(uri: "/api/v1/status/buildinfo", method: .get, headers: bearer(reader)) { r in
                let data = json(r.body)["data"] as? [String: String] ?? [:]
                #expect(data["version"] == "2.42.0")
                #expect(data["starlingVersion"] == "9.9.9")
                #expect(data["revision"] == "abc")
            }
            try await client.execute(uri: "/api/v1/metadata?metric=up", method: .get, headers: bearer(reader)) { r in
                #expect(String(buffer: r.body) == #"{"status":"success","data":{}}"#)
            }
            try await client.execute(uri: "/api/v1/metadata?limit=x", method: .get, headers: bearer(reader)) { r in
                #expect(r.status == .badRequest)
            }
            try await client.execute(uri: "/api/v1/query_exemplars?query=up&start=0&end=1", method: .get, headers: bearer(reader)) { r in
                #expect(String(buffer: r.body) == #"{"status":"success","data":[]}"#)
            }
            try await client.execute(uri: "/api/v1/query_exemplars?query=" + q("up{"), method: .get, headers: bearer(reader)) { r in
                #expect(r.status == .badRequest)
            }
        }
    }
}
