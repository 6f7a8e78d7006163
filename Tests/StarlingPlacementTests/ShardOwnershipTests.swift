import StarlingCore
import StarlingTestKit
import Testing
@testable import StarlingPlacement

@Suite struct ShardOwnershipTests {
    typealias Effect = ShardOwnership.Effect

    static func startBootstraps(_ effects: [Effect]) -> [(ShardOwnership.BootstrapTicket, [String], Bool)] {
        effects.compactMap { if case let .startBootstrap(t, s, l) = $0 { (t, s, l) } else { nil } }
    }

    static func drops(_ effects: [Effect]) -> [ShardID] {
        effects.compactMap { if case let .dropShard(s) = $0 { s } else { nil } }
    }

    // MARK: A new cluster

    @Test func newClusterHasNothingToCopyAndActivatesAtOnce() {
        let c = ClusterHarness()
        for id in ["a", "b", "c"] { c.start(id, state: .joining) }
        let first = c.publish()
        for id in ["a", "b", "c"] {
            let effects = first[id]!
            #expect(Self.startBootstraps(effects).isEmpty)
            #expect(effects.last == .announceMemberState(.active))
            #expect(effects.filter { if case .markComplete = $0 { true } else { false } }.count == c.layout.shardCount)
            #expect(c.states(id) == [.active: c.layout.shardCount])  // RF 3 on 3 nodes: every shard
        }
        // All active now; the same placement again changes nothing.
        let second = c.publish()
        #expect(second.values.allSatisfy { $0.isEmpty })
        #expect(c.publish().values.allSatisfy { $0.isEmpty })
        #expect(c.nodes["a"]!.machine.completeShards.count == c.layout.shardCount)
    }

    // MARK: Join

    @Test func joinerBootstrapsFromCurrentReplicasThenActivatesAndOldOwnersDropAfterGrace() {
        let c = ClusterHarness()
        c.bootstrapNewCluster(["a", "b", "c"])
        c.start("d", state: .joining)
        let effects = c.publish()
        let p = c.placement
        let dShards = p.write.shards(of: "d")
        #expect(!dShards.isEmpty)
        // d fetches exactly its P_write shards, from P_read replicas (which are all complete).
        let boots = Self.startBootstraps(effects["d"]!)
        #expect(ShardSet(boots.map(\.0.shard)) == dShards)
        for (t, sources, local) in boots {
            #expect(!local)
            #expect(Set(sources) == Set(p.readReplicas(of: t.shard)))
            #expect(!sources.contains("d"))
        }
        // Old owners displaced by d keep serving (handing off) and still receive the writes.
        var displaced: [(String, ShardID)] = []
        for s in dShards {
            #expect(p.writeSet(of: s).contains("d"))
            for old in p.readReplicas(of: s) where !p.writeReplicas(of: s).contains(old) {
                displaced.append((old, s))
                #expect(c.nodes[old]!.machine.state(of: s) == .handingOff)
                #expect(p.writeSet(of: s).contains(old))
            }
        }
        #expect(!displaced.isEmpty)
        #expect(effects["a"]!.allSatisfy { if case .startBootstrap = $0 { false } else { true } })

        // Not active before every shard is.
        let last = dShards.max()!
        let partial = c.completeBootstraps("d", where: { $0 != last })
        #expect(!partial.contains(.announceMemberState(.active)))
        #expect(c.nodes["d"]!.machine.state(of: last) == .bootstrapping)
        #expect(!c.nodes["d"]!.machine.state(of: last).isComplete)
        let done = c.completeBootstraps("d")
        #expect(done.last == .announceMemberState(.active))
        #expect(c.members["d"]!.state == .active)

        // d active: displaced owners retire (completeness flag cleared first) but keep the data.
        let afterJoin = c.publish()
        for (old, s) in displaced {
            #expect(c.nodes[old]!.machine.state(of: s) == .retired)
            #expect(afterJoin[old]!.contains(.markIncomplete(s)))
            #expect(c.nodes[old]!.stored.contains(s))
        }
        #expect(c.nodes["a"]!.machine.nextTickMs == c.now + c.graceMs)

        // Grace not over: nothing dropped, even with every report in.
        c.exchangeReports()
        c.clock.advance(byMs: c.graceMs - 1)
        #expect(c.nodes.keys.allSatisfy { Self.drops(c.tick($0)).isEmpty })
        // Grace over, but d's report has not reached b: b keeps d's shards.
        c.clock.advance(byMs: 1)
        c.run("b") { $0.onPeerShardStates(nodeID: "d", complete: ShardSet(), nowMs: c.now) }
        let bKept = displaced.filter { $0.0 == "b" }.map(\.1)
        #expect(Self.drops(c.tick("b")).isEmpty)
        #expect(bKept.allSatisfy { c.nodes["b"]!.machine.state(of: $0) == .retired })
        // d reports: now they go.
        let dropped = c.report(from: "d", to: "b")
        #expect(Set(Self.drops(dropped)) == Set(bKept))
        #expect(bKept.allSatisfy { c.nodes["b"]!.machine.state(of: $0) == .notOwned && !c.nodes["b"]!.stored.contains($0) })
    }

    // MARK: Leave

    @Test func leaverStreamsOutAndGoesOnlyWhenEveryNewOwnerIsComplete() {
        let c = ClusterHarness()
        c.bootstrapNewCluster(["a", "b", "c", "d", "e"])
        let held = c.nodes["c"]!.machine.completeShards
        c.members["c"]!.state = .leaving
        let effects = c.publish()
        let p = c.placement
        // c keeps serving everything it held, handing off; it is a source for the new owners.
        #expect(c.shards("c", in: .handingOff).count == held.count)
        #expect(Self.startBootstraps(effects["c"]!).isEmpty)
        var newOwners = Set<String>()
        for (id, e) in effects where id != "c" {
            for (t, sources, _) in Self.startBootstraps(e) {
                #expect(p.readReplicas(of: t.shard).contains("c"))
                #expect(sources.contains("c"))
                newOwners.insert(id)
            }
        }
        #expect(!newOwners.isEmpty)
        #expect(!c.nodes["c"]!.readyToLeave)
        c.exchangeReports()
        #expect(!c.nodes["c"]!.readyToLeave)
        // All but one new owner done: still not.
        let lastOwner = newOwners.sorted().last!
        for id in newOwners.sorted() where id != lastOwner { c.completeBootstraps(id) }
        c.exchangeReports()
        #expect(!c.nodes["c"]!.readyToLeave)
        c.completeBootstraps(lastOwner)
        // Complete, but c has not heard about it yet.
        #expect(!c.nodes["c"]!.readyToLeave)
        c.report(from: lastOwner, to: "c")
        #expect(c.nodes["c"]!.readyToLeave)
        #expect(c.nodes["c"]!.log.filter { $0 == .readyToLeave }.count == 1)
        // c goes; its shards are complete on the new owners.
        c.members["c"] = nil
        c.nodes["c"] = nil
        c.publish()
        for s in 0..<c.layout.shardCount {
            for owner in c.placement.writeReplicas(of: ShardID(s)) {
                #expect(c.nodes[owner]!.machine.state(of: ShardID(s)) == .active)
            }
        }
    }

    // MARK: Removal, re-replication, return

    @Test func removedNodeIsReReplicatedAndReSyncsWhenItReturns() {
        let c = ClusterHarness()
        c.bootstrapNewCluster(["a", "b", "c", "d", "e"])
        let before = c.placement
        let dHeld = c.nodes["d"]!.machine.completeShards
        // d is dead past the removal timeout: the others drop it from the member list.
        let dMachine = c.nodes["d"]!
        c.members["d"] = nil
        c.nodes["d"] = nil
        let effects = c.publish()
        // Its shards get new replicas among active members: in P_read and P_write at once, but
        // not complete until fetched. The balancing pass may also move a few replicas between
        // surviving members (their old holder retires at once: no dual-write phase here).
        // Either way a new replica fetches from complete replicas first — old replicas that
        // are still owners — and lists a fellow new replica only after them.
        var gainedD = ShardSet()
        for (id, e) in effects {
            for (t, sources, _) in Self.startBootstraps(e) {
                #expect(!before.readReplicas(of: t.shard).contains(id))
                #expect(!sources.contains("d") && !sources.contains(id))
                #expect(c.nodes[id]!.machine.state(of: t.shard) == .bootstrapping)
                #expect(c.placement.readReplicas(of: t.shard).contains(id))
                #expect(Set(sources) == Set(c.placement.readReplicas(of: t.shard)).subtracting([id]))
                let complete = Set(before.readReplicas(of: t.shard)).intersection(c.placement.readReplicas(of: t.shard))
                #expect(!complete.isEmpty)
                #expect(Set(sources.prefix(complete.count)) == complete)
                if dHeld.contains(t.shard) { gainedD.insert(t.shard) }
            }
        }
        #expect(gainedD == dHeld)  // every lost replica is restored
        for s in 0..<c.layout.shardCount { #expect(c.placement.readReplicas(of: ShardID(s)).count == 3) }
        for id in ["a", "b", "c", "e"] { c.completeBootstraps(id) }
        c.exchangeReports()

        // d comes back (it was partitioned, still believing its old placement). It learns it was
        // removed: everything it holds is stale, and it asks to rejoin.
        c.nodes["d"] = dMachine
        let removed = c.run("d") { $0.onMemberRemoved(nodeID: "d", nowMs: c.now) }
        #expect(removed.last == .announceMemberState(.joining))
        #expect(dHeld.allSatisfy { removed.contains(.markIncomplete($0)) })
        #expect(c.nodes["d"]!.machine.completeShards.isEmpty)
        // A lagging view that still lists d as active starts nothing.
        let lagging = c.feed("d", before)
        #expect(Self.startBootstraps(lagging).isEmpty)
        #expect(c.nodes["d"]!.machine.completeShards.isEmpty)
        #expect(Self.drops(lagging).isEmpty)
        // Rejoining: it bootstraps (incrementally where it has data) and serves nothing as
        // complete until done.
        c.members["d"] = PlacementMember(nodeID: "d", state: .joining)
        let rejoin = c.publish()
        let boots = Self.startBootstraps(rejoin["d"]!)
        #expect(ShardSet(boots.map(\.0.shard)) == c.placement.write.shards(of: "d"))
        #expect(boots.contains { $0.2 })  // some with local data
        for (t, _, local) in boots { #expect(local == dHeld.contains(t.shard)) }
        #expect(c.nodes["d"]!.machine.completeShards.isEmpty)
        c.completeBootstraps("d")
        #expect(c.members["d"]!.state == .active)
        c.publish()
        #expect(c.nodes["d"]!.machine.completeShards == c.placement.write.shards(of: "d"))
    }

    // MARK: Flapping

    @Test func flappingPlacementRestartsBootstrapsAndNeverDropsDataStillNeeded() {
        let c = ClusterHarness()
        c.bootstrapNewCluster(["a", "b", "c"])
        let steady = c.placement
        c.start("d", state: .joining)
        let joined = c.publish()
        let p1 = c.placement
        let first = Self.startBootstraps(joined["d"]!)
        let shard = first[0].0.shard
        let firstTicket = first[0].0
        let displaced = p1.readReplicas(of: shard).first { !p1.writeReplicas(of: shard).contains($0) }!
        #expect(c.nodes[displaced]!.machine.state(of: shard) == .handingOff)

        // The placement flips back (d vanished from the member list) before d finished.
        let dState = c.members["d"]!
        c.members["d"] = nil
        let back = c.publish()
        #expect(back["d"]!.contains(.cancelBootstrap(firstTicket)))
        #expect(c.nodes["d"]!.machine.state(of: shard) == .retired)
        // The displaced owner never stopped receiving writes: complete again, no fetch.
        #expect(c.nodes[displaced]!.machine.state(of: shard) == .active)
        #expect(Self.startBootstraps(back[displaced]!).isEmpty)
        #expect(c.placement.version == steady.version)

        // A late completion of the cancelled attempt is ignored.
        #expect(c.run("d") { $0.onBootstrapCompleted(firstTicket, nowMs: c.now) }.isEmpty)
        #expect(c.nodes["d"]!.machine.state(of: shard) == .retired)

        // And flips again: a new attempt, incremental since d has part of the shard.
        c.clock.advance(byMs: 1000)
        c.members["d"] = dState
        let again = c.publish()
        let second = Self.startBootstraps(again["d"]!).first { $0.0.shard == shard }!
        #expect(second.0.generation != firstTicket.generation)
        #expect(second.2)
        #expect(c.run("d") { $0.onBootstrapCompleted(firstTicket, nowMs: c.now) }.isEmpty)
        c.completeBootstraps("d")
        #expect(c.nodes["d"]!.machine.state(of: shard) == .active)
        c.publish()
        #expect(c.nodes[displaced]!.machine.state(of: shard) == .retired)

        // d goes away right after the displaced owner retired, before the grace: the old owner
        // is an owner again. Its copy missed writes while retired, so it re-syncs (incrementally)
        // instead of claiming complete — and nothing was dropped meanwhile.
        c.exchangeReports()
        c.members["d"] = nil
        c.nodes["d"] = nil
        let gone = c.publish()
        #expect(c.nodes[displaced]!.stored.contains(shard))
        let resync = Self.startBootstraps(gone[displaced]!).first { $0.0.shard == shard }
        #expect(resync?.2 == true)
        #expect(!c.nodes[displaced]!.machine.state(of: shard).isComplete)
        // Even far past the grace, a copy the placement lists is never dropped.
        c.clock.advance(byMs: 10 * c.graceMs)
        c.exchangeReports()
        #expect(Self.drops(c.tick(displaced)).isEmpty)
        #expect(c.nodes[displaced]!.machine.state(of: shard) == .bootstrapping)
    }

    @Test func retiredPartialDataIsDroppedOnlyAfterGraceAndOwnersComplete() {
        let c = ClusterHarness()
        c.bootstrapNewCluster(["a", "b", "c"])
        c.start("d", state: .joining)
        c.publish()
        c.members["d"] = nil  // d's join is abandoned; its partial copies are retired
        c.publish()
        let retired = c.shards("d", in: .retired)
        #expect(!retired.isEmpty)
        #expect(c.nodes["d"]!.machine.nextTickMs == c.now + c.graceMs)
        c.clock.advance(byMs: c.graceMs)
        #expect(Self.drops(c.tick("d")).isEmpty)  // no owner reports heard yet
        c.exchangeReports()
        #expect(Set(Self.drops(c.nodes["d"]!.log)) == Set(retired))
        #expect(c.nodes["d"]!.machine.nextTickMs == nil)
    }

    // MARK: Restart

    @Test func restartWithCompleteDataServesAtOnce() {
        let c = ClusterHarness()
        c.bootstrapNewCluster(["a", "b", "c", "d"])
        let held = c.nodes["b"]!.persistedComplete
        #expect(held == c.placement.read.shards(of: "b"))
        // b restarts (down less than the removal timeout: still an active member).
        var restored: [ShardID: ShardOwnership.Restored] = [:]
        for s in held { restored[s] = .complete }
        let extra = (0..<c.layout.shardCount).map(ShardID.init).first { !held.contains($0) }!
        restored[extra] = .partial  // a bootstrap interrupted long ago
        c.start("b", state: .active, restored: restored)
        let effects = c.feed("b", c.placement)
        #expect(Self.startBootstraps(effects).isEmpty)
        #expect(!effects.contains { if case .markComplete = $0 { true } else { false } })
        #expect(c.nodes["b"]!.machine.completeShards == held)
        #expect(c.nodes["b"]!.machine.state(of: extra) == .retired)
    }

    @Test func restartMissingDataFetchesIt() {
        let c = ClusterHarness()
        c.bootstrapNewCluster(["a", "b", "c", "d"])
        let held = Array(c.nodes["b"]!.persistedComplete)
        // The store lost the completeness of one shard (an interrupted bootstrap before the
        // restart), and another shard entirely (disk replaced).
        var restored: [ShardID: ShardOwnership.Restored] = [:]
        for s in held.dropFirst(2) { restored[s] = .complete }
        restored[held[0]] = .partial
        c.start("b", state: .active, restored: restored)
        let boots = Self.startBootstraps(c.feed("b", c.placement))
        #expect(boots.map(\.0.shard).sorted() == [held[0], held[1]].sorted())
        #expect(boots.first { $0.0.shard == held[0] }!.2)
        #expect(!boots.first { $0.0.shard == held[1] }!.2)
    }

    @Test func restartAsJoinerDoesNotTrustItsOldCompleteFlags() {
        let c = ClusterHarness()
        c.bootstrapNewCluster(["a", "b", "c", "d"])
        var restored: [ShardID: ShardOwnership.Restored] = [:]
        for s in c.nodes["b"]!.persistedComplete { restored[s] = .complete }
        c.start("b", state: .joining, restored: restored)
        let effects = c.publish()["b"]!
        for (t, _, local) in Self.startBootstraps(effects) {
            // Flag cleared before the fetch starts, so a crash cannot resurrect it.
            let clear = effects.firstIndex(of: .markIncomplete(t.shard))
            let start = effects.firstIndex { if case let .startBootstrap(x, _, _) = $0 { x == t } else { false } }
            if restored[t.shard] != nil {
                #expect(local)
                #expect(clear != nil && clear! < start!)
            }
        }
        #expect(c.nodes["b"]!.machine.completeShards.isEmpty)
    }

    // MARK: Details

    @Test func sourcesPreferPeersThatReportedTheShardComplete() {
        let c = ClusterHarness()
        c.bootstrapNewCluster(["a", "b", "c", "d", "e"])
        c.members["e"] = nil
        c.nodes["e"] = nil
        let effects = c.publish()
        // A re-replication target is in P_read but incomplete: listed last until it reports.
        guard let (node, boot) = effects.lazy.compactMap({ id, e in Self.startBootstraps(e).first.map { (id, $0) } }).first
        else { Issue.record("no re-replication"); return }
        let shard = boot.0.shard
        let pending = c.placement.readReplicas(of: shard).filter { $0 != node && c.nodes[$0]!.machine.state(of: shard) == .bootstrapping }
        c.exchangeReports()
        let sources = c.nodes[node]!.machine.bootstrapSources(for: shard)
        #expect(Set(sources) == Set(c.placement.readReplicas(of: shard)).subtracting([node]))
        for p in pending { #expect(sources.last == p) }
        #expect(c.nodes[node]!.bootstraps[shard]!.sources == sources)
    }

    @Test func nextTickAndIdempotentEvents() {
        let c = ClusterHarness()
        c.bootstrapNewCluster(["a", "b", "c"])
        #expect(c.nodes["a"]!.machine.nextTickMs == nil)
        #expect(c.exchangeReports().values.allSatisfy { $0.isEmpty })
        #expect(c.tick("a").isEmpty)
        #expect(c.run("a") { $0.onMemberRemoved(nodeID: "zz", nowMs: c.now) }.isEmpty)
        #expect(c.run("a") { $0.onPeerShardStates(nodeID: "a", complete: [ShardID(1)], nowMs: c.now) }.isEmpty)
    }
}
