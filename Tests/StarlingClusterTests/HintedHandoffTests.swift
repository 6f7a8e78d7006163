import Logging
import StarlingCore
import StarlingPlacement
import StarlingStorage
import StarlingTestKit
import Testing

@testable import StarlingCluster

@Suite struct HintedHandoffTests {
    @Test func writesForADeadReplicaAreKeptDurablyAndReplayedWhenItReturns() async throws {
        let c = try TestCluster(4, rf: 3)
        let kv = MemoryKV()
        let handoff = HintedHandoff(localNodeID: "node-0", topology: c.nodes[0].topology, transport: c.transport, timeoutMs: 1_000,
                                    nowMs: TestCluster.now, logger: Logger(label: "hints"))
        handoff.open(try HintStore(store: kv))
        let db0 = c.nodes[0].db
        let writer = ClusterWriter(topology: c.nodes[0].topology, transport: c.transport,
                                   local: LocalReplica(database: { db0 }, runner: InlineRunner()), hints: handoff,
                                   settings: .init(consistency: .quorum, timeoutMs: 1_000), nowMs: { TestCluster.now })
        c.setLiveness(["node-2": .dead])
        let batch = TestCluster.batch(200, samples: 3)
        #expect(try await writer.write(batch, nowMs: TestCluster.now).succeeded)
        let placement = c.nodes[0].topology.current.placement
        let missed = batch.filter { placement.writeSet(of: c.layout.shard(for: $0.labels)).contains("node-2") }
        #expect(!missed.isEmpty)
        let pending = try #require(handoff.stats.store)
        #expect(pending.pendingSamples == missed.count * 3)
        #expect(try syncCount(c.nodes[2].db) == 0)

        // The hints survive a restart of the coordinator: a new store over the same data.
        let reopened = HintedHandoff(localNodeID: "node-0", topology: c.nodes[0].topology, transport: c.transport, timeoutMs: 1_000,
                                     nowMs: TestCluster.now, logger: Logger(label: "hints"))
        reopened.open(try HintStore(store: kv))
        #expect(reopened.stats.store?.pendingSamples == missed.count * 3)

        // While node-2 is down nothing is sent; once it is back the queue drains into it.
        let replay = Task { await reopened.run(nowMs: { TestCluster.now }) }
        defer { replay.cancel() }
        c.setLiveness([:])
        try await eventually { (try? syncCount(c.nodes[2].db)) == missed.count }
        try await eventually { reopened.stats.store?.pendingHints == 0 }
        #expect(reopened.stats.replay.replayedSamples == missed.count * 3)
        let (held, _) = try await TestCluster.read(c.nodes[2].db)
        for s in missed { #expect(held[s.labels]?.count == 3) }
    }

    @Test func hintsForAMemberRemovedFromPlacementAreDropped() async throws {
        let c = try TestCluster(4, rf: 3)
        let handoff = HintedHandoff(localNodeID: "node-0", topology: c.nodes[0].topology, transport: c.transport, timeoutMs: 1_000,
                                    nowMs: TestCluster.now, logger: Logger(label: "hints"))
        handoff.open(try HintStore(store: MemoryKV()))
        let db0 = c.nodes[0].db
        let writer = ClusterWriter(topology: c.nodes[0].topology, transport: c.transport,
                                   local: LocalReplica(database: { db0 }, runner: InlineRunner()), hints: handoff, nowMs: { TestCluster.now })
        c.setLiveness(["node-3": .dead])
        _ = try await writer.write(TestCluster.batch(100, samples: 1), nowMs: TestCluster.now)
        #expect((handoff.stats.store?.pendingHints ?? 0) > 0)
        // Dead past the removal timeout (2 minutes): out of placement, hints dropped.
        c.setLiveness(["node-3": .dead], nowMs: TestCluster.now - 180_000)
        for n in c.nodes { n.topology.update(members: c.nodes.map { ClusterMember(nodeID: $0.id, state: .active, liveness: $0.id == "node-3" ? .dead : .alive, deadSinceMs: $0.id == "node-3" ? TestCluster.now - 180_000 : nil) }, nowMs: TestCluster.now) }
        #expect(c.nodes[0].topology.current.placement.member("node-3") == nil)
        let replay = Task { await handoff.run(nowMs: { TestCluster.now }) }
        defer { replay.cancel() }
        try await eventually { handoff.stats.store?.pendingHints == 0 }
    }
}

/// The replay loop's wakeable sleep: a wait that timed out (its signal waiter cancelled) must
/// not make later waits return at once — an `AsyncStream` did exactly that, and the loop spun
/// on both cores of an idle node.
@Suite struct WakeupTests {
    @Test func timedOutWaitsDoNotBreakLaterWaits() async {
        let w = Wakeup()
        let clock = ContinuousClock()
        for _ in 0..<3 {
            let start = clock.now
            await w.wait(ms: 30)
            #expect(clock.now - start >= .milliseconds(25))
        }
    }

    @Test func aSignalEndsTheWaitAndOneGivenEarlierIsKept() async {
        // The timers are ten minutes: a wait that returns at all returned on its signal (the
        // bound below only allows for a loaded machine).
        let w = Wakeup()
        let clock = ContinuousClock()
        w.signal()
        var start = clock.now
        await w.wait(ms: 600_000)
        #expect(clock.now - start < .seconds(60))
        start = clock.now
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await w.wait(ms: 600_000) }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(20))
                w.signal()
            }
        }
        #expect(clock.now - start < .seconds(60))
    }
}
