import StarlingCore
import StarlingPlacement
import StarlingStorage
import StarlingTestKit
import Testing

@testable import StarlingCluster

@Suite struct AntiEntropyTests {
    /// Repair as the node runs it, a couple of minutes after the writes (they are settled).
    static func antiEntropy(_ c: TestCluster, _ i: Int, settings: AntiEntropy.Settings = .init(maxBytesPerSecond: 0),
                            appendRunner: (any BlockingRunner)? = nil) -> AntiEntropy {
        let db = c.nodes[i].db
        return AntiEntropy(topology: c.nodes[i].topology, transport: c.transport,
                           local: LocalReplica(database: { db }, runner: InlineRunner(), appendRunner: appendRunner),
                           settings: settings, nowMs: { TestCluster.now + 180_000 })
    }

    static func digests(_ db: TimeSeriesDB) throws -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for shard in try db.heldShards() {
            for block in try db.blocks(of: shard) { out["\(shard)/\(block)"] = try db.digest(of: shard, block: block).value }
        }
        return out
    }

    @Test func aReplicaThatMissedWritesPullsExactlyWhatItLacks() async throws {
        let c = try TestCluster(4, rf: 3)
        c.setLiveness(["node-3": .dead])
        let batch = TestCluster.batch(240, samples: 4)
        _ = try await c.nodes[0].writer.write(batch, nowMs: TestCluster.now)
        let placement = c.nodes[3].topology.current.placement
        let expected = c.nodes[0..<3].reduce(0) { n, node in n + batch.filter { placement.writeSet(of: c.layout.shard(for: $0.labels)).contains(node.id) }.count }
        try await eventually { (try? c.nodes[0..<3].reduce(0) { $0 + (try syncCount($1.db)) }) ?? 0 == expected }
        #expect(try syncCount(c.nodes[3].db) == 0)

        c.setLiveness([:])
        let owned = batch.filter { placement.writeSet(of: c.layout.shard(for: $0.labels)).contains("node-3") }
        let appends = CountingRunner()
        let report = await Self.antiEntropy(c, 3, appendRunner: appends).fullSync()
        #expect(report.peerFailures == 0)
        #expect(report.seriesPulled == owned.count)
        // What it pulled went through the append thread, as every append of the node does.
        #expect(appends.calls.withLock { $0 } > 0)
        #expect(report.samplesAppended == owned.count * 4)
        #expect(try syncCount(c.nodes[3].db) == owned.count)

        // Converged: every shard-block digest of node-3 equals the other replicas' digests, and
        // a second pass finds nothing to pull.
        let again = await Self.antiEntropy(c, 3).fullSync()
        #expect(again.blocksDiffering == 0)
        #expect(again.seriesPulled == 0)
        let d3 = try Self.digests(c.nodes[3].db)
        for other in c.nodes[0..<3] {
            let d = try Self.digests(other.db)
            for (key, value) in d3 where d[key] != nil {
                // Shard-blocks both hold must agree.
                let shard = ShardID(Int(key.split(separator: "/")[0])!)
                if placement.writeSet(of: shard).contains(other.id) { #expect(d[key] == value, "\(key)") }
            }
        }
    }

    @Test func samplesStillInFlightAreNotCompared() async throws {
        let c = try TestCluster(3, rf: 3)
        _ = try await c.nodes[0].writer.write(TestCluster.batch(30, samples: 2), nowMs: TestCluster.now)
        try await eventually { (try? c.nodes.reduce(0) { $0 + (try syncCount($1.db)) }) ?? 0 == 90 }
        // A sample only one replica has, newer than the settle window: no repair yet.
        let extra = [SeriesSamples(labels: Labels(["__name__": "m", "i": "0", "job": "j0"]), samples: [Sample(TestCluster.now + 170_000, 42)])]
        _ = try c.nodes[1].db.append(extra, nowMs: TestCluster.now)
        let early = await Self.antiEntropy(c, 0).fullSync()
        #expect(early.blocksDiffering == 0)
        // Once settled, the replica that lacks it pulls it.
        let late = AntiEntropy(topology: c.nodes[0].topology, transport: c.transport,
                               local: LocalReplica(database: { c.nodes[0].db }, runner: InlineRunner()),
                               settings: .init(maxBytesPerSecond: 0), nowMs: { TestCluster.now + 400_000 })
        let report = await late.fullSync()
        #expect(report.seriesPulled == 1)
        #expect(report.samplesAppended == 1)
    }

    @Test func growingTheClusterMovesShardsAndOldOwnersHandThemOverBeforeDeleting() async throws {
        let c = try TestCluster(4, rf: 2)
        let three = ["node-0", "node-1", "node-2"]
        c.setMembers(three)
        let batch = TestCluster.batch(300, samples: 2)
        _ = try await c.nodes[0].writer.write(batch, nowMs: TestCluster.now)
        try await eventually { (try? c.nodes[0..<3].reduce(0) { $0 + (try syncCount($1.db)) }) ?? 0 == 600 }

        c.setMembers(three + ["node-3"])
        let placement = c.nodes[0].topology.current.placement
        // After the change, writes reach only the new owners: the old copies lack them.
        let later = TestCluster.batch(300, samples: 1, offset: 7)
            .map { SeriesSamples(labels: $0.labels, samples: [Sample(TestCluster.now + 1_000, 7)]) }
        _ = try await c.nodes[1].writer.write(later, nowMs: TestCluster.now)
        // A sample only an old copy has (it arrived there late, say a hint): the hand-over must
        // carry it to the owners, not drop it.
        let moved = try #require(batch.first { s in
            let shard = c.layout.shard(for: s.labels)
            return !placement.writeSet(of: shard).contains("node-0") && (try? c.nodes[0].db.heldShards().contains(shard)) == true
        })
        _ = try c.nodes[0].db.append([SeriesSamples(labels: moved.labels, samples: [Sample(TestCluster.now - 500, 42)])], nowMs: TestCluster.now)

        // With its owners unreachable, a shard is kept.
        c.transport.down.withLock { $0 = ["node-1", "node-2", "node-3"] }
        let blocked = await Self.antiEntropy(c, 0).releaseUnowned(graceMs: 0)
        #expect(blocked.released.isEmpty && blocked.deferred > 0)
        c.transport.down.withLock { $0 = [] }
        // Within the grace period nothing is released either.
        for i in 0..<3 { #expect(await Self.antiEntropy(c, i).releaseUnowned(graceMs: 60_000).released.isEmpty) }

        // Old owners release before the new owner pulled anything: they push what it lacks.
        var released = 0
        var pushed = 0
        for i in 0..<3 {
            let r = await Self.antiEntropy(c, i).releaseUnowned(graceMs: 0)
            released += r.released.count
            pushed += r.seriesPushed
            #expect(r.deferred == 0)
        }
        #expect(released > 0)
        #expect(pushed > 0)
        // Every node now holds exactly the series of its shards: two copies of each.
        for n in c.nodes {
            let expected = batch.filter { placement.writeSet(of: c.layout.shard(for: $0.labels)).contains(n.id) }.count
            let held = try syncCount(n.db)
            #expect(held == expected, "\(n.id) holds \(held), owns \(expected)")
        }
        for n in c.nodes {
            let (all, warnings) = try await TestCluster.read(n.querier)
            #expect(all.count == 300 && warnings.isEmpty, "\(n.id)")
            #expect(all.values.allSatisfy { $0.count >= 3 }, "\(n.id): a series lost samples")
            #expect(all[moved.labels]?.contains { $0.value == 42 } == true, "\(n.id): the late sample of the old copy was lost")
        }
    }

    @Test func roundsWalkOwnedShardsRoundRobin() async throws {
        let c = try TestCluster(3, rf: 2)
        _ = try await c.nodes[0].writer.write(TestCluster.batch(60, samples: 1), nowMs: TestCluster.now)
        let ae = Self.antiEntropy(c, 1, settings: .init(shardsPerRound: 10, maxBytesPerSecond: 0))
        var compared = 0
        for _ in 0..<5 { compared += await ae.round().shardsCompared }
        #expect(compared == 50)
        #expect(ae.total.shardsCompared == 50)
    }
}
