import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import StarlingChunk
import StarlingCore
import Testing

@testable import StarlingHTTP

/// A querier over fixed series, with chunks encoded by the real chunk codec.
struct FixedQuerier: Querier {
    let items: [SeriesChunks]

    func select(_ matchers: [LabelMatcher], hints: SelectHints) async throws -> any SeriesSet {
        ArraySeriesSet(items.filter { matchers.matches($0.labels) }.sorted { $0.labels < $1.labels })
    }
    func series(_ matcherSets: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[Labels]> {
        QueryResult(items.map(\.labels).filter { l in matcherSets.contains { $0.matches(l) } }.sorted())
    }
    func labelNames(_ matcherSets: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[String]> {
        QueryResult([])
    }
    func labelValues(_ name: String, _ matcherSets: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[String]> {
        QueryResult([])
    }
}

@Suite struct ExportRouteTests {
    static let t0: Int64 = 1_700_000_000_000

    func shell() throws -> (TestShell, RouteCollection<StarlingRequestContext>) {
        let shell = try TestShell()
        let upA = (0..<500).map { Sample(Self.t0 + Int64($0) * 15_000, Double($0 % 7)) }
        // Two overlapping chunk lists for the same series (head + persisted): duplicates merge.
        let chunksA = ChunkEncoder.encode(upA) + ChunkEncoder.encode(Array(upA[100..<200]))
        let special = [Sample(Self.t0, .nan), Sample(Self.t0 + 1, .infinity), Sample(Self.t0 + 2, -.infinity), Sample(Self.t0 + 3, 0.1), Sample(Self.t0 + 4, StaleMarker.value)]
        let q = FixedQuerier(items: [
            SeriesChunks(labels: Labels(["__name__": "up", "job": "node", "instance": "a"]), chunks: chunksA),
            SeriesChunks(labels: Labels(["__name__": "odd", "text": "quote\"d"]), chunks: ChunkEncoder.encode(special)),
        ])
        return (shell, ExportRoutes(querier: { q }, metrics: shell.metrics, executor: shell.executor).routes())
    }

    func lines(_ body: ByteBuffer?) -> [[String: Any]] {
        String(buffer: body ?? ByteBuffer()).split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    @Test func exportsEverySampleOnceAsJSONLines() async throws {
        let (shell, routes) = try shell()
        try await shell.application(extra: [routes]).test(.router) { client in
            let uri = "/api/v1/export?match[]=up&match[]=" + q("{job=\"node\"}")
            try await client.execute(uri: uri, method: .get, headers: bearer(TestShell.adminToken)) { r in
                #expect(r.status == .ok)
                let l = lines(r.body)
                #expect(l.count == 1, "overlapping match[] sets export a series once")
                let ts = l.first?["timestamps"] as? [Int64] ?? []
                let vs = l.first?["values"] as? [Double] ?? []
                #expect(ts.count == 500 && vs.count == 500)
                #expect(ts == (0..<500).map { Self.t0 + Int64($0) * 15_000 })
                #expect(vs == (0..<500).map { Double($0 % 7) })
                #expect(l.first?["metric"] as? [String: String] == ["__name__": "up", "job": "node", "instance": "a"])
            }
            // A time range cuts samples (inclusive bounds, seconds).
            let start = Double(Self.t0 + 15_000) / 1000, end = Double(Self.t0 + 45_000) / 1000
            try await client.execute(uri: "/api/v1/export?match[]=up&start=\(start)&end=\(end)", method: .get, headers: bearer(TestShell.adminToken)) { r in
                #expect(lines(r.body).first?["timestamps"] as? [Int64] == [Self.t0 + 15_000, Self.t0 + 30_000, Self.t0 + 45_000])
            }
            // Special values become strings the import accepts.
            try await client.execute(uri: "/api/v1/export?match[]=odd", method: .get, headers: bearer(TestShell.adminToken)) { r in
                let text = String(buffer: r.body)
                #expect(text.contains(#""values":["NaN","Inf","-Inf",0.1,"NaN"]"#), "\(text)")
                #expect(text.contains(#""text":"quote\"d""#))
            }
            try await client.execute(uri: "/api/v1/export", method: .get, headers: bearer(TestShell.adminToken)) { r in
                #expect(r.status == .badRequest)
            }
        }
    }
}
