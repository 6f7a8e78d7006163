import StarlingCore
import StarlingTestKit
@testable import StarlingPlacement

/// `count` random node IDs like `node-3fa9c01b2e`, from a seeded generator.
func randomNodeIDs(_ count: Int, rng: inout SeededRandom) -> [String] {
    (0..<count).map { _ in
        let hex = String(rng.next() & 0xFF_FFFF_FFFF, radix: 16)
        return "node-" + String(repeating: "0", count: 10 - hex.count) + hex
    }
}

func activeMembers(_ ids: [String], zones: Int = 0) -> [PlacementMember] {
    ids.enumerated().map { i, id in
        PlacementMember(nodeID: id, zone: zones > 0 ? "zone-\(i % zones)" : "", state: .active)
    }
}

func settings(rf: Int = 3, tolerance: Int = 80) -> PlacementSettings {
    try! PlacementSettings(replicationFactor: rf, balanceTolerancePermille: tolerance)
}

extension ReplicaTable {
    /// Largest |load − fair| / fair over all nodes, with fair = the mean load.
    var maxDeviation: Double {
        let mean = meanLoad
        return nodes.map { abs(Double(load(of: $0)) - mean) / mean }.max() ?? 0
    }

    /// Replicas that nodes gained going from `self` to `other`: (by `node`, by anyone else).
    func gained(to other: ReplicaTable, by node: String?) -> (byNode: Int, byOthers: Int) {
        var byNode = 0, byOthers = 0
        for s in 0..<shardCount {
            let before = Set(replicas(of: ShardID(s)))
            for n in other.replicas(of: ShardID(s)) where !before.contains(n) {
                if n == node { byNode += 1 } else { byOthers += 1 }
            }
        }
        return (byNode, byOthers)
    }

    func zones(of shard: ShardID, zoneOf: [String: String]) -> [String] {
        replicas(of: shard).map { zoneOf[$0]! }
    }
}
