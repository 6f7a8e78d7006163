import StarlingCore
import StarlingTestKit
import Testing
@testable import StarlingPlacement

@Suite struct PlacementTests {
    // MARK: Determinism and the pinned algorithm

    @Test func sameInputsInAnyOrderGiveTheSamePlacement() {
        var rng = SeededRandom(seed: 11)
        let members = activeMembers(randomNodeIDs(17, rng: &rng), zones: 3)
        let a = Placement(members: members)
        for _ in 0..<5 {
            var shuffled = members
            shuffled.shuffle(using: &rng)
            let b = Placement(members: shuffled)
            #expect(b.version == a.version)
            #expect(b.members == a.members)
            for s in 0..<1024 {
                #expect(b.readReplicas(of: ShardID(s)) == a.readReplicas(of: ShardID(s)))
            }
        }
        #expect(Placement.version(members: members.reversed(), layout: .default, settings: .default) == a.version)
    }

    @Test func versionCoversEveryInput() {
        let base = activeMembers(["a", "b", "c", "d"])
        let v = Placement.version(members: base, layout: .default, settings: .default)
        var zoned = base
        zoned[1].zone = "eu-1"
        var joining = base
        joining[2].state = .joining
        let variants: [UInt64] = [
            Placement.version(members: zoned, layout: .default, settings: .default),
            Placement.version(members: joining, layout: .default, settings: .default),
            Placement.version(members: base.dropLast(), layout: .default, settings: .default),
            Placement.version(members: base, layout: ShardLayout(shardCount: 512), settings: .default),
            Placement.version(members: base, layout: .default, settings: settings(rf: 2)),
            Placement.version(members: base, layout: .default, settings: settings(tolerance: 100)),
        ]
        #expect(!variants.contains(v))
        #expect(Set(variants).count == variants.count)
    }

    /// The score is part of the cluster protocol: XXH64(u16 big-endian shard ‖ UTF-8 node ID).
    @Test func scoreIsXXH64OfShardAndNodeID() {
        #expect(RendezvousScorer.score(shard: ShardID(0x0102), nodeID: "node-a") == XXH64.hash([1, 2] + Array("node-a".utf8)))
        var scorer = RendezvousScorer(ids: [Array("x".utf8), Array("node-a".utf8)])
        #expect(scorer.score(shard: 0x0102, node: 1) == RendezvousScorer.score(shard: ShardID(0x0102), nodeID: "node-a"))
        #expect(scorer.score(shard: 7, node: 0) == XXH64.hash([0, 7, UInt8(ascii: "x")]))
    }

    static func digest(_ p: Placement) -> UInt64 {
        var bytes: [UInt8] = []
        for s in 0..<p.layout.shardCount {
            bytes += Array(p.readReplicas(of: ShardID(s)).joined(separator: ",").utf8)
            bytes.append(UInt8(ascii: ";"))
        }
        return XXH64.hash(bytes)
    }

    struct ReferenceCase: Sendable, CustomTestStringConvertible {
        var name: String
        var shards: Int
        var rf: Int
        var tolerance: Int
        var nodes: [(id: String, zone: String)]
        var digest: UInt64
        var testDescription: String { name }
    }

    static let referenceCases: [ReferenceCase] = {
        let five = ["a", "b", "c", "d", "e"].map { (id: $0, zone: "") }
        let twenty = (0..<20).map { (id: id($0), zone: "") }
        let threeZones = (0..<20).map { (id: id($0), zone: "z\($0 % 3)") }
        let skewed: [(id: String, zone: String)] = (0..<20).map { i in
            let zone = i < 8 ? "z0" : i < 13 ? "z1" : i < 17 ? "z2" : "z3"
            return (id: id(i), zone: zone)
        }
        let seven: [(id: String, zone: String)] = (0..<7).map { i in (id: id(i), zone: ["x", "y", "x", "y", "x", "x", "x"][i]) }
        return [
            ReferenceCase(name: "five", shards: 16, rf: 3, tolerance: 80, nodes: five, digest: 0x5663_e569_d8cb_b0cb),
            ReferenceCase(name: "twenty", shards: 1024, rf: 3, tolerance: 80, nodes: twenty, digest: 0xd4ad_24af_f0ba_8770),
            ReferenceCase(name: "twenty-3z", shards: 1024, rf: 3, tolerance: 80, nodes: threeZones, digest: 0x2907_14fa_efa3_28be),
            ReferenceCase(name: "twenty-4z-skew", shards: 512, rf: 3, tolerance: 80, nodes: skewed, digest: 0x58c8_63a5_cc6c_d4bb),
            ReferenceCase(name: "seven-2z-rf5", shards: 256, rf: 5, tolerance: 50, nodes: seven, digest: 0x8da3_049c_86dc_35a0),
        ]
    }()

    /// Pinned placement digests (golden values). They were cross-checked when written against
    /// an independent Python model of docs/cluster.md's algorithm (same hash, same orders and
    /// tie-breaks); that model is not kept in the repository. A change here changes every cluster's placement: bump
    /// `Placement.algorithmVersion` and update docs/cluster.md with it.
    @Test(arguments: referenceCases)
    func matchesTheReferenceModel(_ c: ReferenceCase) {
        let members = c.nodes.map { PlacementMember(nodeID: $0.id, zone: $0.zone, state: .active) }
        let p = Placement(members: members, layout: ShardLayout(shardCount: c.shards), settings: settings(rf: c.rf, tolerance: c.tolerance))
        let digest = Self.digest(p)
        #expect(digest == c.digest, "\(c.name): \(String(digest, radix: 16))")
    }

    static func id(_ i: Int) -> String { i < 10 ? "node-0\(i)" : "node-\(i)" }

    @Test func firstShardsOfTheSmallReferenceCase() {
        let p = Placement(members: activeMembers(["a", "b", "c", "d", "e"]), layout: ShardLayout(shardCount: 16))
        #expect(p.readReplicas(of: ShardID(0)) == ["b", "d", "a"])
        #expect(p.readReplicas(of: ShardID(1)) == ["e", "c", "a"])
        #expect(p.readReplicas(of: ShardID(2)) == ["d", "b", "a"])
    }

    @Test func replicasAreListedBestScoreFirst() {
        var rng = SeededRandom(seed: 3)
        let p = Placement(members: activeMembers(randomNodeIDs(30, rng: &rng)))
        #expect(p.read.rebalancedReplicas > 0)  // rebalanced replicas are re-ordered too
        for s in 0..<1024 {
            let scores = p.readReplicas(of: ShardID(s)).map { RendezvousScorer.score(shard: ShardID(s), nodeID: $0) }
            #expect(scores == scores.sorted(by: >))
        }
    }

    @Test func duplicateNodeIDsAreResolvedAlikeEverywhere() {
        let a = PlacementMember(nodeID: "n1", zone: "z2", state: .active)
        let b = PlacementMember(nodeID: "n1", zone: "z1", state: .joining)
        let others = activeMembers(["n2", "n3"])
        let p1 = Placement(members: [a, b] + others)
        let p2 = Placement(members: others + [b, a])
        #expect(p1.members.count == 3)
        #expect(p1.member("n1") == b)  // first in (node ID, zone, state) byte order
        #expect(p1.version == p2.version)
    }

    // MARK: Balance

    /// Every node within ±10% of the mean (the promise), and within the configured ±8%
    /// band, from 5 to 50 nodes, several random ID sets each.
    @Test(arguments: [5, 6, 7, 10, 13, 20, 25, 30, 40, 50])
    func balanceWithinTenPercent(nodes: Int) {
        for seed in 0..<4 {
            var rng = SeededRandom(seed: UInt64(100 * nodes + seed))
            let p = Placement(members: activeMembers(randomNodeIDs(nodes, rng: &rng)))
            let mean = p.read.meanLoad
            let high = max(Int((mean * 1.08).rounded(.down)), Int(mean.rounded(.up)))
            let low = min(Int((mean * 0.92).rounded(.up)), Int(mean.rounded(.down)))
            for n in p.read.nodes {
                let load = p.read.load(of: n)
                #expect(abs(Double(load) - mean) <= mean * 0.10, "\(nodes) nodes, seed \(seed): \(n) holds \(load), mean \(mean)")
                #expect((low...high).contains(load), "\(nodes) nodes, seed \(seed): \(n) holds \(load), band \(low)...\(high)")
            }
            #expect(p.read.nodes.reduce(0) { $0 + p.read.load(of: $1) } == 1024 * 3)
        }
    }

    @Test func balanceWithThreeEqualZones() {
        for nodes in [6, 9, 12, 30, 51] {
            var rng = SeededRandom(seed: UInt64(nodes))
            let p = Placement(members: activeMembers(randomNodeIDs(nodes, rng: &rng), zones: 3))
            #expect(p.read.maxDeviation <= 0.08, "\(nodes) nodes in 3 zones: \(p.read.maxDeviation)")
        }
    }

    @Test func fairSharesFollowZoneCapacity() {
        typealias Band = RendezvousPlacer.Band
        // Every shard uses each of 3 zones once: a zone holds exactly S replicas.
        #expect(RendezvousPlacer.zoneBands(sizes: [4, 3, 3], shardCount: 1024, k: 3, zoneCap: 1, permille: 80)
                    == [Band(low: 236, high: 276), Band(low: 315, high: 368), Band(low: 315, high: 368)])  // 256, 341.3
        // One zone: S·k / n.
        #expect(RendezvousPlacer.zoneBands(sizes: [50], shardCount: 1024, k: 3, zoneCap: 3, permille: 80)
                    == [Band(low: 57, high: 66)])
        // 4 zones, RF 3: zones are not forced, shares are even per node (3072 / 13 = 236.3).
        #expect(RendezvousPlacer.zoneBands(sizes: [3, 3, 3, 4], shardCount: 1024, k: 3, zoneCap: 1, permille: 80)
                    == Array(repeating: Band(low: 218, high: 255), count: 4))
        // 4 zones, one of 9 nodes, RF 3: that zone is capped at S (one replica per shard).
        let capped = RendezvousPlacer.zoneBands(sizes: [9, 1, 1, 1], shardCount: 1024, k: 3, zoneCap: 1, permille: 0)
        #expect(capped[0] == Band(low: 113, high: 114))  // 1024 / 9 = 113.8
        #expect(capped[1] == Band(low: 682, high: 683))  // (3072 − 1024) / 3 = 682.7
        // Tolerance 0 still allows ⌊fair⌋...⌈fair⌉.
        #expect(RendezvousPlacer.zoneBands(sizes: [7], shardCount: 100, k: 1, zoneCap: 1, permille: 0) == [Band(low: 14, high: 15)])
    }

    // MARK: Zones

    @Test(arguments: [3, 4, 5])
    func atLeastRFZonesMeanDistinctZonesPerShard(zones: Int) {
        for nodes in [zones, 2 * zones + 1, 20, 50] {
            var rng = SeededRandom(seed: UInt64(7 * nodes + zones))
            let members = activeMembers(randomNodeIDs(nodes, rng: &rng), zones: zones)
            let zoneOf = Dictionary(uniqueKeysWithValues: members.map { ($0.nodeID, $0.zone) })
            let p = Placement(members: members)
            for s in 0..<1024 {
                let z = p.read.zones(of: ShardID(s), zoneOf: zoneOf)
                #expect(Set(z).count == 3, "\(zones) zones, \(nodes) nodes, shard \(s): \(z)")
            }
        }
    }

    @Test func fewerZonesThanRFSpreadAsMuchAsPossible() {
        var rng = SeededRandom(seed: 21)
        // 2 zones, RF 3: both zones, at most 2 in one.
        let two = activeMembers(randomNodeIDs(10, rng: &rng), zones: 2)
        let zoneOf2 = Dictionary(uniqueKeysWithValues: two.map { ($0.nodeID, $0.zone) })
        let p2 = Placement(members: two)
        // 2 zones, RF 5: 3 + 2.
        let p5 = Placement(members: two, settings: settings(rf: 5))
        for s in 0..<1024 {
            let z = p2.read.zones(of: ShardID(s), zoneOf: zoneOf2)
            #expect(Set(z).count == 2)
            let counts5 = Dictionary(grouping: p5.read.zones(of: ShardID(s), zoneOf: zoneOf2), by: { $0 }).mapValues(\.count)
            #expect(counts5.values.sorted() == [2, 3], "shard \(s): \(counts5)")
        }
        // A lone member in its own zone holds every shard (each shard must use its zone), and the
        // others still balance among themselves.
        var skewed = activeMembers(randomNodeIDs(7, rng: &rng))
        skewed[0].zone = "small"
        let ps = Placement(members: skewed)
        #expect(ps.read.load(of: skewed[0].nodeID) == 1024)
        for m in skewed.dropFirst() {
            let load = ps.read.load(of: m.nodeID)
            #expect((314...368).contains(load), "\(m.nodeID): \(load) (fair 2048/6 = 341.3)")
        }
    }

    // MARK: Replication factor

    @Test func replicationFactorIsCappedAtTheMemberCount() {
        let one = Placement(members: activeMembers(["solo"]))
        #expect(one.read.replicationFactor == 1)
        let two = Placement(members: activeMembers(["a", "b"]))
        #expect(two.read.replicationFactor == 2)
        for s in 0..<1024 {
            #expect(one.readReplicas(of: ShardID(s)) == ["solo"])
            #expect(Set(two.readReplicas(of: ShardID(s))) == ["a", "b"])
        }
        let none = Placement(members: [])
        #expect(none.read.replicationFactor == 0)
        #expect(none.readReplicas(of: ShardID(5)).isEmpty)
        #expect(none.leader(of: ShardID(5), isAlive: { _ in true }) == nil)
        let rf1 = Placement(members: activeMembers(["a", "b", "c"]), settings: settings(rf: 1))
        #expect((0..<1024).allSatisfy { rf1.readReplicas(of: ShardID($0)).count == 1 })
        #expect(rf1.read.maxDeviation <= 0.08)
    }

    @Test func settingsAreValidated() {
        #expect(throws: PlacementSettingsError.outOfRange(setting: "replication_factor", value: 0, range: 1...255)) {
            try PlacementSettings(replicationFactor: 0)
        }
        #expect(throws: PlacementSettingsError.self) { try PlacementSettings(balanceTolerancePermille: 501) }
        #expect(PlacementSettings.default == settings())
    }

    // MARK: Movement

    /// Adding a node: it takes about its fair share; other nodes gain at most 1.5% of all
    /// replicas (balancing moves, docs/cluster.md). Removing a node: its replicas move, plus at
    /// most 1.5% other moves.
    @Test(arguments: [5, 10, 20, 30, 50])
    func movementOnAddAndRemove(nodes: Int) {
        let bound = 1024 * 3 * 15 / 1000
        for seed in 0..<3 {
            var rng = SeededRandom(seed: UInt64(1000 * seed + nodes))
            let ids = randomNodeIDs(nodes + 1, rng: &rng)
            let before = Placement(members: activeMembers(Array(ids.prefix(nodes)))).read
            let added = Placement(members: activeMembers(ids)).read
            let add = before.gained(to: added, by: ids[nodes])
            let fair = 3072.0 / Double(nodes + 1)
            #expect(abs(Double(add.byNode) - fair) <= fair * 0.10, "took \(add.byNode), fair \(fair)")
            #expect(add.byOthers <= bound, "\(nodes) nodes, seed \(seed): \(add.byOthers) other moves")
            let removed = Placement(members: activeMembers(Array(ids.prefix(nodes).dropFirst()))).read
            let lost = before.load(of: ids[0])
            let gained = before.gained(to: removed, by: nil).byOthers
            #expect(gained - lost <= bound, "\(nodes) nodes, seed \(seed): \(gained - lost) other moves on removal")
        }
    }

    /// Without balancing moves (a band wide enough), placement is pure rendezvous: a new node
    /// takes shards and nothing else moves; a removed node's shards go and nothing else moves.
    @Test func pureRendezvousMovesOnlyWhatTheChangedNodeHolds() {
        var rng = SeededRandom(seed: 99)
        let ids = randomNodeIDs(6, rng: &rng)
        let wide = settings(tolerance: 500)
        let before = Placement(members: activeMembers(Array(ids.prefix(5))), settings: wide).read
        let after = Placement(members: activeMembers(ids), settings: wide).read
        #expect(before.rebalancedReplicas == 0 && after.rebalancedReplicas == 0)
        #expect(before.gained(to: after, by: ids[5]).byOthers == 0)
        let removed = Placement(members: activeMembers(Array(ids.prefix(5).dropFirst())), settings: wide).read
        #expect(before.gained(to: removed, by: nil).byOthers == before.load(of: ids[0]))
    }

    // MARK: Read and write sets, leader

    @Test func handoverTablesSetsAndLeader() {
        var members = activeMembers(["a", "b", "c", "d", "e"])
        members[3].state = .joining  // d
        members[4].state = .leaving  // e
        let p = Placement(members: members, layout: ShardLayout(shardCount: 64))
        #expect(p.read.nodes == ["a", "b", "c", "e"])
        #expect(p.write.nodes == ["a", "b", "c", "d"])
        var sawHandover = false
        for s in (0..<64).map(ShardID.init) {
            let r = p.readReplicas(of: s), w = p.writeReplicas(of: s)
            #expect(p.writeSet(of: s) == w + r.filter { !w.contains($0) })
            #expect(p.readSet(of: s, hasCompleteCopy: { _ in false }) == r)
            #expect(p.readSet(of: s, hasCompleteCopy: { $0 == "d" }) == r + (w.contains("d") && !r.contains("d") ? ["d"] : []))
            #expect(p.leader(of: s, isAlive: { _ in true }) == r.first)
            #expect(p.leader(of: s, isAlive: { $0 != r[0] }) == r[1])
            #expect(p.leader(of: s, isAlive: { $0 == "d" }) == nil)  // a joiner never leads
            let roles = Dictionary(uniqueKeysWithValues: p.replicas(of: s).map { ($0.nodeID, $0.role) })
            for n in p.writeSet(of: s) {
                let expected: ReplicaRole = r.contains(n) ? (w.contains(n) ? .active : .handingOff) : .joining
                #expect(roles[n] == expected)
            }
            if roles.values.contains(.joining) && roles.values.contains(.handingOff) { sawHandover = true }
        }
        #expect(sawHandover)
        // Without joining or leaving members the two tables are one.
        let steady = Placement(members: activeMembers(["a", "b", "c", "d"]), layout: ShardLayout(shardCount: 64))
        for s in (0..<64).map(ShardID.init) {
            #expect(steady.writeSet(of: s) == steady.readReplicas(of: s))
            #expect(steady.replicas(of: s).allSatisfy { $0.role == .active })
        }
    }

    @Test func removalPolicy() {
        let r = MemberRemoval.default
        #expect(r.keeps(deadSinceMs: nil, left: false, nowMs: 10))
        #expect(!r.keeps(deadSinceMs: nil, left: true, nowMs: 10))
        #expect(r.keeps(deadSinceMs: 1_000, left: false, nowMs: 1_000 + 119_999))
        #expect(!r.keeps(deadSinceMs: 1_000, left: false, nowMs: 1_000 + 120_000))
        #expect(r.removalDeadlineMs(deadSinceMs: 1_000) == 121_000)
    }

    @Test func shardSet() {
        var s: ShardSet = [ShardID(3), ShardID(64), ShardID(65), ShardID(66), ShardID(1000)]
        #expect(s.count == 5)
        #expect(s.contains(ShardID(64)) && !s.contains(ShardID(63)) && !s.contains(ShardID(5000)))
        #expect(Array(s) == [3, 64, 65, 66, 1000].map(ShardID.init))
        #expect(s.description == "{3,64-66,1000}")
        let first = s.remove(ShardID(1000))
        let second = s.remove(ShardID(1000))
        #expect(first && !second)
        #expect(s == [ShardID(3), ShardID(64), ShardID(65), ShardID(66)])
        #expect(s.hashValue == ShardSet([ShardID(66), ShardID(65), ShardID(64), ShardID(3)]).hashValue)
        #expect(s.isSuperset(of: [ShardID(3), ShardID(65)]) && !s.isSuperset(of: [ShardID(4)]))
        #expect(ShardSet().isEmpty && Array(ShardSet()).isEmpty)
    }
}
