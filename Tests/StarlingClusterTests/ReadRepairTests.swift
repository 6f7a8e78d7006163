import StarlingChunk
import StarlingCore
import StarlingPlacement
import StarlingStorage
import StarlingTestKit
import Testing

@testable import StarlingCluster

/// Read repair: a read that sees a replica lacking samples pushes them to it.
@Suite struct ReadRepairTests {
    static func samples(_ db: TimeSeriesDB, _ labels: Labels) async throws -> [Sample] {
        let set = try await db.select([.eq("__name__", "m")], hints: SelectHints(startMs: TestCluster.now - 3_600_000, endMs: TestCluster.now))
        while let s = try await set.next() {
            if s.labels == labels { return try SeriesSampleIterator.collect(chunks: s.chunks) }
        }
        return []
    }

    @Test func aReadPushesWhatAReplicaLacksAndOnlyThat() async throws {
        let c = try TestCluster(3, rf: 3, read: .all)
        let batch = TestCluster.batch(40, samples: 3)
        _ = try await c.nodes[0].writer.write(batch, nowMs: TestCluster.now)
        try await eventually { (try? c.nodes.reduce(0) { $0 + (try syncCount($1.db)) }) ?? 0 == 120 }

        // Replicas that agree: a read queues nothing.
        _ = try await TestCluster.read(c.nodes[0].querier)
        #expect(c.nodes[0].readRepair.stats.detected == 0)

        // Node 1 missed a sample the others took (settled: 10 s old), and a newer one (1 s old,
        // possibly still on its way) that read repair must leave alone.
        let victim = batch[7].labels
        let old = Sample(TestCluster.now - 10_000 + 1, 4242)
        let fresh = Sample(TestCluster.now - 1_000 + 1, 4343)
        for i in [0, 2] { _ = try c.nodes[i].db.append([SeriesSamples(labels: victim, samples: [old, fresh])], nowMs: TestCluster.now) }

        let (all, warnings) = try await TestCluster.read(c.nodes[0].querier)
        #expect(warnings.isEmpty)
        #expect(all[victim]?.contains { $0.timestampMs == old.timestampMs && $0.value == old.value } == true)
        let stats = c.nodes[0].readRepair.stats
        #expect(stats.detected == 1)
        #expect(c.nodes[0].readRepair.pending == 1)
        await c.nodes[0].readRepair.drain()
        #expect(c.nodes[0].readRepair.stats.repairedSeries == 1)
        let repaired = try await Self.samples(c.nodes[1].db, victim)
        #expect(repaired.contains { $0.timestampMs == old.timestampMs && $0.value == old.value })
        // The push carries the merged chunks, so the fresh sample arrives too (harmless: it was
        // acknowledged elsewhere); what matters is that only node 1 was a target.
        #expect(c.nodes[0].readRepair.stats.repairedSeries == 1)

        // Now they agree again: nothing more to repair.
        _ = try await TestCluster.read(c.nodes[0].querier)
        #expect(c.nodes[0].readRepair.stats.detected == 1)
    }

    @Test func aSeriesMissingOnAReplicaIsPushedWhole() async throws {
        let c = try TestCluster(3, rf: 3, read: .all)
        let lonely = Labels(["__name__": "m", "i": "lonely", "job": "j"])
        _ = try c.nodes[2].db.append([SeriesSamples(labels: lonely, samples: [Sample(TestCluster.now - 20_000, 1), Sample(TestCluster.now - 15_000, 2)])],
                                     nowMs: TestCluster.now)
        let (all, _) = try await TestCluster.read(c.nodes[0].querier)
        #expect(all[lonely]?.count == 2)
        await c.nodes[0].readRepair.drain()
        #expect(c.nodes[0].readRepair.stats.repairedSeries == 2)
        for i in [0, 1] { #expect(try await Self.samples(c.nodes[i].db, lonely).count == 2, "node-\(i)") }
    }

    @Test func theQueueIsBoundedAndDropsAreCounted() async throws {
        let c = try TestCluster(2, rf: 2, read: .all)
        let repair = ReadRepair(localNodeID: "node-0", transport: c.transport, local: LocalReplica(database: { c.nodes[0].db }, runner: InlineRunner()),
                                settings: .init(maxPendingSeries: 3), nowMs: { TestCluster.now })
        let chunk = ChunkEncoder.encodeChunk([Sample(TestCluster.now - 60_000, 1)][...])
        for i in 0..<5 {
            repair.check(Labels(["__name__": "m", "i": "\(i)"]), shard: ShardID(0),
                         answers: [(node: "node-0", chunks: [chunk]), (node: "node-1", chunks: nil)], startMs: .min, endMs: .max)
        }
        #expect(repair.pending == 3)
        #expect(repair.stats.detected == 5 && repair.stats.dropped == 2)
    }
}
