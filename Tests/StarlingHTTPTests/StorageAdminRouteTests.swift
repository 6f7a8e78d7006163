import Foundation
import Hummingbird
import HummingbirdTesting
import StarlingCore
import StarlingStorage
import StarlingTestKit
import Testing

@testable import StarlingHTTP

@Suite struct StorageAdminRouteTests {
    static let t0: Int64 = 1_700_000_000_000

    @Test func flushWritesTheHeadAndAnswersWithFigures() async throws {
        let shell = try TestShell()
        let kv = MemoryKV()
        let db = try TimeSeriesDB(store: kv, nowMs: Self.t0)
        _ = try db.append([SeriesSamples(labels: Labels(["__name__": "up", "job": "node"]), samples: [Sample(Self.t0, 1), Sample(Self.t0 + 15_000, 1)])], nowMs: Self.t0)
        let routes = StorageAdminRoutes(database: { db }, metrics: shell.metrics, executor: shell.executor, nowMs: { Self.t0 + 20_000 }).routes()
        var rng = SystemRandomNumberGenerator()
        let reader = try shell.authority.create(name: "grafana", role: .reader, labels: [:], nowMs: 0, rng: &rng).token
        let checkpointsBefore = db.statistics().checkpoints
        try await shell.application(extra: [routes]).test(.router) { client in
            try await client.execute(uri: "/api/v1/admin/flush?compact=true", method: .post, headers: bearer(TestShell.adminToken)) { r in
                #expect(r.status == .ok)
                let body = json(r.body)
                #expect(body["status"] as? String == "success")
                let data = body["data"] as? [String: Any] ?? [:]
                #expect(data["compacted"] as? Bool == true)
                #expect(data["diskBytes"] != nil)
                #expect(data["durationMs"] != nil)
            }
            try await client.execute(uri: "/api/v1/admin/flush", method: .post, headers: bearer(TestShell.adminToken)) { r in
                #expect(r.status == .ok)
                #expect((json(r.body)["data"] as? [String: Any])?["compacted"] as? Bool == false)
            }
            try await client.execute(uri: "/api/v1/admin/flush?compact=yes", method: .post, headers: bearer(TestShell.adminToken)) { r in
                #expect(r.status == .badRequest)
                #expect((json(r.body)["error"] as? String)?.contains("compact") == true)
            }
            try await client.execute(uri: "/api/v1/admin/flush", method: .post, headers: bearer(reader)) { r in
                #expect(r.status == .forbidden)
            }
        }
        // Each successful call checkpointed the head.
        #expect(db.statistics().checkpoints == checkpointsBefore + 2)
    }
}
