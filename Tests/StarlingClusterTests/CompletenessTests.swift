import StarlingCore
import StarlingPlacement
import StarlingStorage
import StarlingTestKit
import Testing

@testable import StarlingCluster

/// Shard completeness (which copies hold every acknowledged write), the exchange of reports,
/// and the hand-over conditions built on it.
@Suite struct CompletenessTests {
    static let layout = ShardLayout(shardCount: 64)

    static func placement(_ ids: [String], rf: Int = 2, states: [String: PlacementMember.State] = [:]) throws -> Placement {
        Placement(members: ids.map { PlacementMember(nodeID: $0, state: states[$0] ?? .active) }, layout: layout,
                  settings: try PlacementSettings(replicationFactor: rf))
    }

    static func owned(_ p: Placement, _ id: String) -> ShardSet {
        ShardSet((0..<p.layout.shardCount).map { ShardID($0) }.filter { p.writeSet(of: $0).contains(id) })
    }

    @Test func gainedShardsAreIncompleteUntilASyncThatStartedAfterTheGain() throws {
        var c = ShardCompleteness(restored: ShardSet())
        let three = try Self.placement(["a", "b", "c"])
        let (gained, lost) = c.apply(three, localNodeID: "a")
        #expect(gained == Self.owned(three, "a") && lost.isEmpty)
        #expect(c.local.isEmpty && c.incomplete == gained)
        let g1 = c.generation
        #expect(c.completed(gained, startedIn: g1) == gained)
        #expect(c.incomplete.isEmpty)

        // A fourth member: shards that left "a" are no longer complete; shards it gains are
        // incomplete, and a sync that started before the gain does not complete them.
        let four = try Self.placement(["a", "b", "c", "d"])
        let (gained2, lost2) = c.apply(four, localNodeID: "a")
        #expect(!lost2.isEmpty)
        for s in lost2 { #expect(!c.local.contains(s)) }
        #expect(c.completed(Self.owned(four, "a"), startedIn: g1) == ShardSet())
        #expect(c.incomplete == gained2)
        #expect(c.completed(gained2, startedIn: c.generation) == gained2)
        #expect(c.local == Self.owned(four, "a"))

        // A shard owned all along stays complete through changes that keep it.
        let back = c.apply(three, localNodeID: "a")
        #expect(c.local.isSuperset(of: ShardSet(Self.owned(three, "a").filter { !back.gained.contains($0) })))
    }

    @Test func aRestartedNodeIsCompleteOnlyForShardsItHasDataOf() throws {
        let all = ShardSet((0..<64).map { ShardID($0) })
        var c = ShardCompleteness(restored: all)
        let p = try Self.placement(["a", "b", "c"])
        c.apply(p, localNodeID: "a")
        let mine = Self.owned(p, "a")
        #expect(c.local == mine)
        let held = ShardSet(mine.prefix(5))
        c.restrict(to: held)
        #expect(c.local == held)
        #expect(c.incomplete.count == mine.count - 5)
        #expect(c.completed(c.incomplete, startedIn: c.generation).count == mine.count - 5)
    }

    @Test func peersReportsAnswerForOthersAndTheExchangeCarriesThem() async throws {
        let c = try TestCluster(3, rf: 3, fresh: [2])
        let exchange = ShardStateExchange(topology: c.nodes[0].topology, transport: c.transport, nowMs: { TestCluster.now })
        #expect(await exchange.exchange() == 2)
        let sync0 = c.nodes[0].topology.sync
        let sync1 = c.nodes[1].topology.sync
        // Node 0 learned both peers' sets; node 1 learned node 0's from the request.
        #expect(sync0.isComplete("node-1", ShardID(5)))
        #expect(!sync0.isComplete("node-2", ShardID(5)))
        #expect(sync1.isComplete("node-0", ShardID(5)))
        // A down member is forgotten.
        c.setLiveness(["node-1": .dead])
        _ = await exchange.exchange()
        #expect(!sync0.isComplete("node-1", ShardID(5)))
    }

    /// A new node pulls its shards and then reports them complete; until it does, reads of its
    /// shards ask complete replicas first, and the join waits.
    @Test func aJoinerBecomesCompleteByFullSyncAndOnlyThenMayTurnActive() async throws {
        let c = try TestCluster(4, rf: 2, fresh: [3])
        let three = ["node-0", "node-1", "node-2"]
        c.setMembers(three)
        let batch = TestCluster.batch(200, samples: 3)
        _ = try await c.nodes[0].writer.write(batch, nowMs: TestCluster.now)
        try await eventually { (try? c.nodes[0..<3].reduce(0) { $0 + (try syncCount($1.db)) }) ?? 0 == 400 }

        c.setMembers(three + ["node-3"], states: ["node-3": .joining])
        let joiner = c.nodes[3]
        let exchange = ShardStateExchange(topology: joiner.topology, transport: c.transport, nowMs: { TestCluster.now })
        _ = await exchange.exchange()
        var pending = Handover.joinPending(joiner.topology.current, joiner.topology.sync.snapshot)
        #expect(!pending.isEmpty)
        #expect(pending.waiting.values.allSatisfy { $0.contains("node-3") })

        // Reads from the joiner's point of view never depend on its own empty copy.
        let (before, warnings) = try await TestCluster.read(joiner.querier)
        #expect(before.count == 200 && warnings.isEmpty)

        // Old nodes that balancing gave a shard pull too (as their AntiEntropyService does).
        for i in 0..<3 { _ = await AntiEntropyTests.antiEntropy(c, i).fullSync() }
        _ = await exchange.exchange()
        let report = await AntiEntropyTests.antiEntropy(c, 3).fullSync()
        #expect(report.peerFailures == 0)
        _ = await exchange.exchange()
        pending = Handover.joinPending(joiner.topology.current, joiner.topology.sync.snapshot)
        #expect(pending.isEmpty, "\(pending)")
        #expect(joiner.topology.sync.snapshot.incomplete.isEmpty)

        // Active: it reads its own copy first and answers completely.
        c.setMembers(three + ["node-3"])
        let (after, w2) = try await TestCluster.read(joiner.querier)
        #expect(after.count == 200 && w2.isEmpty)
        #expect(after.values.allSatisfy { $0.count == 3 })
    }

    /// Five new nodes, three still joining when the other two are active (as `Cluster/chaos`
    /// starts them): the shards whose owners are all joiners have no complete copy anywhere,
    /// so a joiner must pull them from every copy — not RF-1 of them — to count them complete;
    /// otherwise every joiner waits for the others for ever.
    @Test func joinersOfANewClusterCompleteShardsNobodyHasYet() async throws {
        let c = try TestCluster(5, rf: 3, fresh: [0, 1, 2, 3, 4])
        let all = (0..<5).map { "node-\($0)" }
        c.setMembers(all, states: ["node-2": .joining, "node-3": .joining, "node-4": .joining])
        let p = c.nodes[2].topology.current.placement
        let orphaned = (0..<p.layout.shardCount).map { ShardID($0) }.filter { s in
            p.writeReplicas(of: s).allSatisfy { ["node-2", "node-3", "node-4"].contains($0) }
        }
        #expect(!orphaned.isEmpty, "the layout gives some shards only joining owners")
        let exchanges = c.nodes.map { ShardStateExchange(topology: $0.topology, transport: c.transport, nowMs: { TestCluster.now }) }
        // The active ones settle first (as their shard-sync service does), then the joiners
        // pull, each as its bootstrap does: sync, exchange reports, until nothing is pending.
        for i in 0..<2 { _ = await AntiEntropyTests.antiEntropy(c, i).fullSync() }
        for _ in 0..<3 {
            for i in 2..<5 {
                _ = await exchanges[i].exchange()
                _ = await AntiEntropyTests.antiEntropy(c, i).fullSync()
                _ = await exchanges[i].exchange()
            }
        }
        for i in 2..<5 {
            let pending = Handover.joinPending(c.nodes[i].topology.current, c.nodes[i].topology.sync.snapshot)
            #expect(pending.isEmpty, "node-\(i): \(pending)")
        }
    }

    @Test func aLeaverWaitsUntilEveryNewOwnerReportsItsShardsComplete() async throws {
        let c = try TestCluster(4, rf: 2)
        let all = (0..<4).map { "node-\($0)" }
        c.setMembers(all)
        _ = try await c.nodes[0].writer.write(TestCluster.batch(200, samples: 2), nowMs: TestCluster.now)
        try await eventually { (try? c.nodes.reduce(0) { $0 + (try syncCount($1.db)) }) ?? 0 == 400 }

        c.setMembers(all, states: ["node-3": .leaving])
        let leaver = c.nodes[3]
        let exchange = ShardStateExchange(topology: leaver.topology, transport: c.transport, nowMs: { TestCluster.now })
        _ = await exchange.exchange()
        var pending = Handover.leavePending(leaver.topology.current, leaver.topology.sync.snapshot)
        #expect(!pending.isEmpty)
        #expect(!pending.waiting.values.contains { $0.contains("node-3") })

        // The new owners pull (placement changed), then report complete.
        for i in 0..<3 { _ = await AntiEntropyTests.antiEntropy(c, i).fullSync() }
        _ = await exchange.exchange()
        pending = Handover.leavePending(leaver.topology.current, leaver.topology.sync.snapshot)
        #expect(pending.isEmpty, "\(pending)")

        // Gone: the others answer everything without it.
        c.transport.down.withLock { $0 = ["node-3"] }
        c.setMembers(Array(all.prefix(3)))
        for n in c.nodes.prefix(3) {
            let (got, warnings) = try await TestCluster.read(n.querier)
            #expect(got.count == 200 && warnings.isEmpty, "\(n.id)")
        }
    }

    @Test func readsAskCompleteReplicasFirst() throws {
        let c = try TestCluster(3, rf: 3, read: .one, fresh: [0])
        let snapshot = c.nodes[0].topology.current
        let sync = c.nodes[0].topology.sync.snapshot
        // Node 0 has nothing complete and no reports yet: it still asks itself (nothing better known).
        var plan = ReadPlan(snapshot, consistency: .one, only: [ShardID(1)], isComplete: { sync.isComplete($0, $1, localNodeID: "node-0") })
        #expect(plan.firstRound() == ["node-0": [ShardID(1)]])
        // Once node 1 reports the shard complete, it is asked instead.
        c.nodes[0].topology.sync.peerReported("node-1", complete: [ShardID(1)], placementVersion: 0, nowMs: 0)
        let sync2 = c.nodes[0].topology.sync.snapshot
        plan = ReadPlan(snapshot, consistency: .one, only: [ShardID(1)], isComplete: { sync2.isComplete($0, $1, localNodeID: "node-0") })
        #expect(plan.firstRound() == ["node-1": [ShardID(1)]])
    }
}

@Suite struct PlacementAgreementTests {
    @Test func mismatchesAreCountedAndLoggedAtMostOncePerIntervalPerVersion() {
        let a = PlacementAgreement(logIntervalMs: 10_000)
        #expect(a.observe(remote: 7, local: 7, nowMs: 0) == nil)
        #expect(a.observe(remote: 0, local: 7, nowMs: 0) == nil)
        #expect(a.mismatches == 0)
        #expect(a.observe(remote: 9, local: 7, nowMs: 1_000) == 0)
        #expect(a.observe(remote: 9, local: 7, nowMs: 5_000) == nil)
        #expect(a.observe(remote: 8, local: 7, nowMs: 5_000) == 0)
        #expect(a.observe(remote: 9, local: 7, nowMs: 11_000) == 10_000)
        #expect(a.mismatches == 4)
    }
}
