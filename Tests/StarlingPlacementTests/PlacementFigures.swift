import Foundation
import StarlingCore
import StarlingTestKit
import Testing
@testable import StarlingPlacement

/// The figures of docs/cluster.md — measurement, not a test: it asserts nothing and runs only
/// when asked.
///
///     STARLING_PLACEMENT_FIGURES=1 swift test -c release --filter PlacementFigures
///
/// For each cluster size: the worst deviation from the fair share over `seeds` random ID sets,
/// and the replicas moved when one node is added (taken by the new node / gained by other nodes)
/// or removed (the removed node's replicas / other moves), at 1024 shards and RF 3; then the
/// compute time (CPU time of the calling thread, best of 5).
@Suite struct PlacementFigures {
    static let enabled = ProcessInfo.processInfo.environment["STARLING_PLACEMENT_FIGURES"] == "1"
    static let seeds = Int(ProcessInfo.processInfo.environment["STARLING_PLACEMENT_SEEDS"] ?? "") ?? 10

    static func cpuSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    struct Row {
        var deviation = 0.0
        var took: [Int] = []
        var addOther: [Int] = []
        var lost: [Int] = []
        var removeOther: [Int] = []
        var rebalanced: [Int] = []
    }

    static func measure(nodes: Int, zones: Int, tolerance: Int, seeds: Int) -> Row {
        var row = Row()
        let s = settings(tolerance: tolerance)
        for seed in 0..<seeds {
            var rng = SeededRandom(seed: UInt64(1000 * seed + nodes))
            let ids = randomNodeIDs(nodes + 1, rng: &rng)
            let all = activeMembers(ids, zones: zones)
            let base = Array(all.prefix(nodes))
            let a = Placement(members: base, settings: s).read
            let b = Placement(members: all, settings: s).read
            let c = Placement(members: base.dropFirst(), settings: s).read
            row.deviation = max(row.deviation, a.maxDeviation)
            let add = a.gained(to: b, by: ids[nodes])
            row.took.append(add.byNode)
            row.addOther.append(add.byOthers)
            let removed = a.load(of: ids[0])
            row.lost.append(removed)
            row.removeOther.append(a.gained(to: c, by: nil).byOthers - removed)
            row.rebalanced.append(a.rebalancedReplicas)
        }
        return row
    }

    static func avg(_ v: [Int]) -> String { String(format: "%.0f", Double(v.reduce(0, +)) / Double(max(v.count, 1))) }

    @Test(.enabled(if: enabled))
    func balanceAndMovement() {
        for (zones, sizes) in [(0, [5, 10, 20, 30, 50]), (3, [6, 9, 12, 21, 30, 51])] {
            for tolerance in [80, 100] {
                print("zones=\(zones) tolerance=±\(tolerance)‰ seeds=\(Self.seeds), 1024 shards, RF 3")
                print("nodes  max dev  rebalanced  add: took avg/max, other avg/max   remove: lost avg, other avg/max")
                for n in sizes {
                    let r = Self.measure(nodes: n, zones: zones, tolerance: tolerance, seeds: Self.seeds)
                    print(String(format: "%5d  %6.1f%%  %10@  %14@/%-4d %8@/%-4d  %14@ %8@/%-4d", n, r.deviation * 100,
                                 Self.avg(r.rebalanced), Self.avg(r.took), r.took.max()!, Self.avg(r.addOther), r.addOther.max()!,
                                 Self.avg(r.lost), Self.avg(r.removeOther), r.removeOther.max()!))
                }
            }
        }
    }

    @Test(.enabled(if: enabled))
    func computeTime() {
        for (shards, nodes, handover) in [(1024, 5, false), (1024, 50, false), (1024, 50, true), (4096, 100, false), (1024, 200, false)] {
            var rng = SeededRandom(seed: 5)
            var members = activeMembers(randomNodeIDs(nodes, rng: &rng), zones: 3)
            if handover { members[0].state = .joining; members[1].state = .leaving }
            var best = Double.infinity
            var sink: UInt64 = 0
            for _ in 0..<5 {
                let t0 = Self.cpuSeconds()
                let p = Placement(members: members, layout: ShardLayout(shardCount: shards))
                best = min(best, Self.cpuSeconds() - t0)
                sink &+= UInt64(p.read.rebalancedReplicas)
            }
            print(String(format: "compute: %5d shards × %3d nodes, RF 3, 3 zones%@: %.2f ms", shards, nodes,
                         handover ? " (joining+leaving: both tables)" : "", best * 1000), sink == 0 ? "" : " ")
        }
    }
}
