import StarlingCore

/// Where every shard lives, computed identically on every node from the same member list.
///
/// Two tables, because a handover needs both the old and the new owners:
/// - `read` (`P_read`) over members that hold complete data: `active` and `leaving`;
/// - `write` (`P_write`) over members that own data from now on: `active` and `joining`.
/// Without joining or leaving members the two are the same table.
///
/// Writes go to the write set `P_write(s) ∪ P_read(s)` (dual-write during a handover, quorum
/// counted in `P_write`); reads ask `P_read(s)`, plus `P_write(s)` members that report the shard
/// complete. The leader of a shard is its first alive replica in `P_read(s)`.
///
/// The `version` is a stable hash of every input; it travels in every peer-RPC header so two
/// nodes computing from different member lists notice.
public struct Placement: Sendable, CustomStringConvertible {
    /// Part of the version: bump it whenever the algorithm's output could change, so nodes on
    /// different releases report a mismatch instead of silently disagreeing.
    public static let algorithmVersion: UInt8 = 1

    public let layout: ShardLayout
    public let settings: PlacementSettings
    /// The inputs, deduplicated by node ID and in canonical order (UTF-8 byte order of node IDs).
    public let members: [PlacementMember]
    /// `Placement.version(members:layout:settings:)` of the inputs.
    public let version: UInt64
    /// `P_read`: over `active` and `leaving` members.
    public let read: ReplicaTable
    /// `P_write`: over `active` and `joining` members.
    public let write: ReplicaTable

    private let writeSets: [[String]]
    private let memberIndex: [String: Int]

    /// Computes both tables. Cost: O(S·n) hashes for the ranking plus the balancing pass —
    /// about 36 ms for 1024 shards × 50 members in a debug build on the 2-core test machine
    /// (docs/cluster.md; release builds not measured).
    ///
    /// Members are deduplicated by node ID: if the same ID appears twice (a broken member list),
    /// the entry first in (node ID, zone, state) byte order wins, on every node alike.
    public init(members: some Sequence<PlacementMember>, layout: ShardLayout = .default,
                settings: PlacementSettings = .default) {
        let canonical = Self.canonical(members)
        self.layout = layout
        self.settings = settings
        self.members = canonical
        version = Self.version(canonicalMembers: canonical, layout: layout, settings: settings)
        var memberIndex: [String: Int] = [:]
        for (i, m) in canonical.enumerated() { memberIndex[m.nodeID] = i }
        self.memberIndex = memberIndex

        var zoneNumbers: [String: Int] = [:]
        for m in canonical where zoneNumbers[m.zone] == nil { zoneNumbers[m.zone] = zoneNumbers.count }
        func table(_ include: (PlacementMember) -> Bool) -> ReplicaTable {
            let chosen = canonical.filter(include)
            return ReplicaTable(
                nodes: chosen.map(\.nodeID), zones: chosen.map { zoneNumbers[$0.zone]! },
                shardCount: layout.shardCount, settings: settings)
        }
        let write = table { $0.state.isWritable }
        let handover = canonical.contains { $0.state != .active }
        let read = handover ? table { $0.state.isReadable } : write
        self.write = write
        self.read = read
        if handover {
            writeSets = (0..<layout.shardCount).map { s in
                let w = write.replicas(of: ShardID(s))
                return w + read.replicas(of: ShardID(s)).filter { !w.contains($0) }
            }
        } else {
            writeSets = (0..<layout.shardCount).map { write.replicas(of: ShardID($0)) }
        }
    }

    /// The stable 64-bit hash of placement's inputs: algorithm version, shard count, settings,
    /// and every member's (node ID, zone, state) in canonical order. Cheap compared with
    /// computing the placement; equal on every node that sees the same member list.
    public static func version(members: some Sequence<PlacementMember>, layout: ShardLayout,
                               settings: PlacementSettings) -> UInt64 {
        version(canonicalMembers: canonical(members), layout: layout, settings: settings)
    }

    /// The member entry for `nodeID`, if it takes part in placement.
    public func member(_ nodeID: String) -> PlacementMember? {
        memberIndex[nodeID].map { members[$0] }
    }

    /// `P_read(s)`: replicas holding complete data, best-ranked first.
    public func readReplicas(of shard: ShardID) -> [String] { read.replicas(of: shard) }

    /// `P_write(s)`: the owners from now on, best-ranked first. Write quorums count here.
    public func writeReplicas(of shard: ShardID) -> [String] { write.replicas(of: shard) }

    /// `P_write(s) ∪ P_read(s)`: every node a write to `shard` must reach — `P_write(s)` first,
    /// then the `P_read(s)` members that are not in it (old owners during a handover).
    public func writeSet(of shard: ShardID) -> [String] {
        precondition(Int(shard.rawValue) < layout.shardCount, "shard \(shard) outside the layout")
        return writeSets[Int(shard.rawValue)]
    }

    /// The nodes a read of `shard` may ask: `P_read(s)`, then `P_write(s)` members not in it for
    /// which `hasCompleteCopy` is true (joiners that finished their bootstrap, as they report).
    public func readSet(of shard: ShardID, hasCompleteCopy: (String) -> Bool) -> [String] {
        let r = read.replicas(of: shard)
        let extra = write.replicas(of: shard).filter { !r.contains($0) && hasCompleteCopy($0) }
        return extra.isEmpty ? r : r + extra
    }

    /// The shard's leader: the first alive member of `P_read(s)`, or nil when none is alive (or
    /// no member is readable yet, e.g. a brand-new cluster whose members are all joining).
    public func leader(of shard: ShardID, isAlive: (String) -> Bool) -> String? {
        read.replicas(of: shard).first(where: isAlive)
    }

    /// Every node of the write set with its placement role, for `GET /api/v1/cluster/shards`.
    public func replicas(of shard: ShardID) -> [ShardReplica] {
        writeSet(of: shard).map { node in
            let inRead = read.contains(node, shard: shard)
            let inWrite = write.contains(node, shard: shard)
            return ShardReplica(nodeID: node, role: inRead ? (inWrite ? .active : .handingOff) : .joining)
        }
    }

    public var description: String {
        "placement \(String(version, radix: 16)) (\(members.count) members, \(layout.shardCount) shards, \(settings))"
    }

    // MARK: Canonical form

    static func canonical(_ members: some Sequence<PlacementMember>) -> [PlacementMember] {
        let sorted = members.sorted { a, b in
            if !a.nodeID.utf8.elementsEqual(b.nodeID.utf8) {
                return a.nodeID.utf8.lexicographicallyPrecedes(b.nodeID.utf8)
            }
            if !a.zone.utf8.elementsEqual(b.zone.utf8) { return a.zone.utf8.lexicographicallyPrecedes(b.zone.utf8) }
            return a.state.rawValue < b.state.rawValue
        }
        var seen = Set<String>()
        return sorted.filter { seen.insert($0.nodeID).inserted }
    }

    static func version(canonicalMembers: [PlacementMember], layout: ShardLayout, settings: PlacementSettings) -> UInt64 {
        var bytes: [UInt8] = [algorithmVersion]
        func put32(_ v: Int) {
            let u = UInt32(truncatingIfNeeded: v)
            bytes.append(contentsOf: [UInt8(u >> 24), UInt8(truncatingIfNeeded: u >> 16), UInt8(truncatingIfNeeded: u >> 8), UInt8(truncatingIfNeeded: u)])
        }
        put32(layout.shardCount)
        put32(settings.replicationFactor)
        put32(settings.balanceTolerancePermille)
        put32(canonicalMembers.count)
        for m in canonicalMembers {
            put32(m.nodeID.utf8.count)
            bytes.append(contentsOf: m.nodeID.utf8)
            put32(m.zone.utf8.count)
            bytes.append(contentsOf: m.zone.utf8)
            bytes.append(m.state.rawValue)
        }
        return XXH64.hash(bytes)
    }
}

/// A node of a shard's write set and its role in the current placement.
public struct ShardReplica: Hashable, Sendable {
    public var nodeID: String
    public var role: ReplicaRole
}

/// A node's role for one shard, as the placement defines it (the node's own progress is its
/// `ShardOwnership.LocalState`, which peers report).
public enum ReplicaRole: UInt8, Hashable, Sendable, CustomStringConvertible {
    /// In both `P_read(s)` and `P_write(s)`.
    case active
    /// In `P_write(s)` only: a new owner catching up (it receives writes, is not read from).
    case joining
    /// In `P_read(s)` only: an old owner streaming the shard to its new owners.
    case handingOff

    public var description: String {
        switch self {
        case .active: "active"
        case .joining: "joining"
        case .handingOff: "handing_off"
        }
    }
}
