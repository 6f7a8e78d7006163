import StarlingCore
import StarlingTestKit
import Testing
@testable import StarlingPlacement

/// Seeded random churn over `ShardOwnership` machines — joins, graceful leaves, removals of a
/// dead node, writes, bootstraps finishing in any order, reports delivered late, time passing —
/// with the data itself modelled as sets of write IDs per (node, shard), so the checks are about
/// what a user would lose, not about internal states.
///
/// Model: a write to shard `s` reaches every live node of `writeSet(s)` (the coordinator writes
/// `P_write(s) ∪ P_read(s)`; hints are assumed delivered — they are another layer). A bootstrap
/// ends by copying everything its first complete source holds. A drop deletes the data.
///
/// Checked after every step:
/// - every copy the machine calls complete holds every acknowledged write of its shard;
/// - every shard has at least one complete copy;
/// - a node is in `writeSet(s)` when it is bootstrapping, active or handing off `s` (so a complete
///   copy can never silently stop receiving writes), and only then — except unfinished copies
///   of members in `P_read(s)` only, which are abandoned.
/// At the end (churn stops, bootstraps finish, reports flow, the grace passes): every member is
/// active, each shard is complete on exactly its `P_write(s)` and no other node keeps its data.
/// A failing seed is printed; rerun with that seed to replay.
@Suite struct ShardOwnershipSimulationTests {
    final class World {
        let c = ClusterHarness(shards: 64)
        var rng: SeededRandom
        var data: [String: [Set<Int>]] = [:]
        var acked: [Set<Int>]
        var nextWrite = 0
        var nextNode = 0
        var log: [String] = []

        init(seed: UInt64) {
            rng = SeededRandom(seed: seed)
            acked = Array(repeating: [], count: 64)
        }

        var shardCount: Int { c.layout.shardCount }

        func roll(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }

        func addNode() {
            let id = "n\(nextNode)"
            nextNode += 1
            c.start(id, state: .joining)
            data[id] = Array(repeating: [], count: shardCount)
            log.append("join \(id)")
        }

        func publish() {
            c.publish()
            sweepDrops()
        }

        /// The shell deletes dropped shards (and never had data for never-owned ones).
        func sweepDrops() {
            for (id, node) in c.nodes {
                for s in 0..<shardCount where node.machine.state(of: ShardID(s)) == .notOwned {
                    data[id]![s] = []
                }
            }
        }

        func write() {
            let s = roll(shardCount)
            let id = nextWrite
            nextWrite += 1
            for n in c.placement.writeSet(of: ShardID(s)) where c.nodes[n] != nil {
                data[n]![s].insert(id)
            }
            acked[s].insert(id)
        }

        /// Finishes some of `id`'s bootstraps, each copying from its first complete source.
        func finishBootstraps(_ id: String, all: Bool) {
            let node = c.nodes[id]!
            for (shard, b) in node.bootstraps.sorted(by: { $0.key < $1.key }) where all || roll(2) == 0 {
                let s = Int(shard.rawValue)
                let source = b.sources.first { c.nodes[$0]?.machine.state(of: shard).isComplete == true }
                guard let source else { continue }  // nobody to copy from yet
                data[id]![s].formUnion(data[source]![s])
                c.run(id) { $0.onBootstrapCompleted(b.ticket, nowMs: c.now) }
                log.append("\(id) fetched \(shard) from \(source)")
            }
        }

        var activeCount: Int { c.members.values.filter { $0.state == .active }.count }

        /// No handover running, every owner complete, nothing bootstrapping.
        var settled: Bool {
            guard c.members.values.allSatisfy({ $0.state == .active }) else { return false }
            for s in 0..<shardCount {
                for n in c.placement.writeReplicas(of: ShardID(s)) where c.nodes[n]?.machine.state(of: ShardID(s)) != .active {
                    return false
                }
            }
            return true
        }

        func step() {
            switch roll(10) {
            case 0 where c.nodes.count < 8:
                addNode()
                publish()
            case 1 where activeCount > 3:
                let candidates = c.members.values.filter { $0.state == .active }.map(\.nodeID).sorted()
                let id = candidates[roll(candidates.count)]
                c.members[id]!.state = .leaving
                log.append("leave \(id)")
                publish()
            case 2 where settled && c.nodes.count > 4:
                // Dead past the removal timeout; its data is gone with it.
                let ids = c.nodes.keys.sorted()
                let id = ids[roll(ids.count)]
                c.members[id] = nil
                c.nodes[id] = nil
                data[id] = nil
                log.append("remove \(id)")
                publish()
            case 3, 4:
                let ids = c.nodes.keys.sorted()
                finishBootstraps(ids[roll(ids.count)], all: false)
            case 5:
                let ids = c.nodes.keys.sorted()
                c.report(from: ids[roll(ids.count)], to: ids[roll(ids.count)])
                sweepDrops()
            case 6:
                c.clock.advance(byMs: Int64(roll(Int(c.graceMs / 2))))
                for id in c.nodes.keys.sorted() { c.tick(id) }
                sweepDrops()
            default:
                for _ in 0..<5 { write() }
            }
            departReadyLeavers()
            publish()  // announcements changed the member list
        }

        func departReadyLeavers() {
            for id in c.nodes.keys.sorted() where c.nodes[id]!.readyToLeave {
                c.members[id] = nil
                c.nodes[id] = nil
                data[id] = nil
                log.append("\(id) left")
            }
        }

        func check(_ where: String) -> Bool {
            var ok = true
            for s in 0..<shardCount {
                let shard = ShardID(s)
                let writeSet = Set(c.placement.writeSet(of: shard))
                var completeCopies = 0
                for (id, node) in c.nodes {
                    let state = node.machine.state(of: shard)
                    if state.isComplete {
                        completeCopies += 1
                        let missing = acked[s].subtracting(data[id]![s])
                        if !missing.isEmpty {
                            Issue.record("\(`where`): \(id) calls shard \(s) complete but misses \(missing.count) writes")
                            ok = false
                        }
                    }
                    // The converse has one exception: a node that is in P_read(s) only (a
                    // leaver, or a member the handover moves the shard away from) does not
                    // finish a bootstrap it had running; writes still reach the copy, which it
                    // calls retired.
                    let receives = state == .bootstrapping || state.isComplete
                    let abandoned = state == .retired && !c.placement.write.contains(id, shard: shard)
                        && c.placement.read.contains(id, shard: shard)
                    if receives != writeSet.contains(id), !abandoned {
                        Issue.record("\(`where`): \(id) is \(state) for shard \(s), write set \(writeSet.sorted())")
                        ok = false
                    }
                }
                if completeCopies == 0 {
                    Issue.record("\(`where`): shard \(s) has no complete copy")
                    ok = false
                }
            }
            return ok
        }
    }

    @Test(arguments: 1...8 as ClosedRange<UInt64>)
    func randomChurnLosesNothingAndConverges(seed: UInt64) {
        let w = World(seed: seed)
        for _ in 0..<5 { w.addNode() }
        w.publish()
        w.publish()
        w.c.exchangeReports()
        for _ in 0..<50 { w.write() }
        var failed = !w.check("start")
        var stepNumber = 0
        while !failed, stepNumber < 250 {
            w.step()
            stepNumber += 1
            failed = !w.check("seed \(seed) step \(stepNumber)")
        }
        // Churn stops: let every handover finish.
        var rounds = 0
        while !failed, rounds < 30 {
            for id in w.c.nodes.keys.sorted() { w.finishBootstraps(id, all: true) }
            w.c.exchangeReports()
            w.departReadyLeavers()
            w.publish()
            w.c.clock.advance(byMs: w.c.graceMs)
            for id in w.c.nodes.keys.sorted() { w.c.tick(id) }
            w.c.exchangeReports()
            w.sweepDrops()
            failed = !w.check("seed \(seed) settle \(rounds)")
            rounds += 1
        }
        if !failed {
            #expect(w.c.members.values.allSatisfy { $0.state == .active })
            for s in 0..<w.shardCount {
                let shard = ShardID(s)
                let owners = Set(w.c.placement.writeReplicas(of: shard))
                #expect(owners.count == min(3, w.c.nodes.count))
                for (id, node) in w.c.nodes {
                    let state = node.machine.state(of: shard)
                    if owners.contains(id) {
                        #expect(state == .active, "seed \(seed): owner \(id) of \(s) is \(state)")
                    } else {
                        #expect(state == .notOwned && w.data[id]![s].isEmpty && !node.stored.contains(shard),
                                "seed \(seed): \(id) still keeps \(s) (\(state))")
                    }
                }
            }
            #expect(w.c.nodes.values.allSatisfy { $0.bootstraps.isEmpty })
        }
        if failed { print("seed \(seed) history:\n" + w.log.joined(separator: "\n")) }
    }
}
