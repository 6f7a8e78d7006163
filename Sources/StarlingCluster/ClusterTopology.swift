import StarlingCore
import StarlingPlacement
import Synchronization

/// A member as the cluster layer needs it: identity, placement inputs, liveness and where its
/// peer RPC listens. Built by the composition root from the membership view.
public struct ClusterMember: Sendable, Hashable {
    public enum Liveness: UInt8, Sendable, Hashable, CustomStringConvertible {
        case alive, suspect, dead, left
        public var description: String {
            switch self {
            case .alive: "alive"
            case .suspect: "suspect"
            case .dead: "dead"
            case .left: "left"
            }
        }
    }

    public var nodeID: String
    public var zone: String
    public var state: PlacementMember.State
    public var liveness: Liveness
    /// When the membership layer declared it dead or left, on the same clock as `nowMs` of
    /// `ClusterTopology.update`; nil while it runs.
    public var deadSinceMs: Int64?
    /// `host:port` of its peer RPC listener; empty when not announced yet.
    public var peerAddress: String

    public init(nodeID: String, zone: String = "", state: PlacementMember.State, liveness: Liveness = .alive,
                deadSinceMs: Int64? = nil, peerAddress: String = "") {
        self.nodeID = nodeID
        self.zone = zone
        self.state = state
        self.liveness = liveness
        self.deadSinceMs = deadSinceMs
        self.peerAddress = peerAddress
    }

    /// Worth sending requests to: alive, or suspect (a suspect usually answers — it may only be
    /// slow — and requests carry deadlines).
    public var isReachable: Bool { liveness == .alive || liveness == .suspect }

    /// Dead, or left: not running.
    public var isGone: Bool { liveness == .dead || liveness == .left }
}

/// One consistent view: the placement and the members it was computed from.
public struct ClusterSnapshot: Sendable {
    public let localNodeID: String
    public let placement: Placement
    /// Every known member by node ID, including those placement no longer counts.
    public let members: [String: ClusterMember]
    /// Members whose liveness changed since placement was computed do not change placement
    /// (only the inputs of `Placement.version` do); this counts snapshots for metrics.
    public let generation: UInt64

    public init(localNodeID: String, placement: Placement, members: [String: ClusterMember], generation: UInt64) {
        self.localNodeID = localNodeID
        self.placement = placement
        self.members = members
        self.generation = generation
    }

    /// Whether `nodeID` should be sent requests now. This node always is.
    public func isReachable(_ nodeID: String) -> Bool {
        nodeID == localNodeID || (members[nodeID]?.isReachable ?? false)
    }

    /// The placement covers only this node: every shard is local, nothing goes over the wire.
    public var isSingleNode: Bool {
        placement.members.count == 1 && placement.members[0].nodeID == localNodeID
    }
}

/// The cluster layer's current view, updated by the composition root whenever membership
/// changes (and on a timer, so a member dead longer than the removal timeout leaves placement).
/// Readers take a snapshot per request, so one request never sees two placements.
public final class ClusterTopology: Sendable {
    public struct Settings: Sendable {
        public var layout: ShardLayout
        public var placement: PlacementSettings
        public var removal: MemberRemoval

        public init(layout: ShardLayout = .default, placement: PlacementSettings = .default, removal: MemberRemoval = .default) {
            self.layout = layout
            self.placement = placement
            self.removal = removal
        }
    }

    public let localNodeID: String
    public let settings: Settings
    /// Which shards each node holds complete; follows every placement installed here.
    public let sync: ShardSync
    private let state: Mutex<ClusterSnapshot>

    /// Starts with this node alone (state `joining`), so a write or read before the first
    /// membership update is served locally rather than refused.
    /// - Parameter restored: shards this node's store holds complete at start (a restarted
    ///   member: the shards it has data of; a new data directory: none). Nil: every shard.
    public init(localNodeID: String, settings: Settings, restored: ShardSet? = nil) {
        self.localNodeID = localNodeID
        self.settings = settings
        let me = ClusterMember(nodeID: localNodeID, state: .joining)
        let placement = Placement(members: [PlacementMember(nodeID: localNodeID, state: .active)],
                                  layout: settings.layout, settings: settings.placement)
        sync = ShardSync(localNodeID: localNodeID,
                         restored: restored ?? ShardSet((0..<settings.layout.shardCount).map { ShardID($0) }))
        sync.apply(placement)
        state = Mutex(ClusterSnapshot(localNodeID: localNodeID, placement: placement, members: [localNodeID: me], generation: 0))
    }

    public var current: ClusterSnapshot { state.withLock { $0 } }

    /// The placement inputs for `members` at `nowMs`: members placement still counts (dead for
    /// less than the removal timeout, not left), with their lifecycle state. This node always
    /// counts, whatever gossip last said about it.
    public func placementMembers(_ members: [ClusterMember], nowMs: Int64) -> [PlacementMember] {
        var out: [PlacementMember] = []
        var sawSelf = false
        for m in members {
            if m.nodeID == localNodeID {
                sawSelf = true
                out.append(PlacementMember(nodeID: m.nodeID, zone: m.zone, state: m.state))
                continue
            }
            // A member that left after handing its shards over (it announced `leaving` first)
            // leaves placement at once; one that merely stopped (a restart, a crash announced as
            // `left` by a plain SIGTERM) is kept like a dead one, for the removal timeout.
            let handedOver = m.liveness == .left && m.state == .leaving
            let deadSince = m.isGone && !handedOver ? (m.deadSinceMs ?? nowMs) : nil
            guard settings.removal.keeps(deadSinceMs: deadSince, left: handedOver, nowMs: nowMs) else { continue }
            out.append(PlacementMember(nodeID: m.nodeID, zone: m.zone, state: m.state))
        }
        if !sawSelf { out.append(PlacementMember(nodeID: localNodeID, state: .joining)) }
        // A cluster whose members are all joining has no readable replica; a lone joining node
        // (first start) reads and writes its own data.
        if out.allSatisfy({ $0.state == .joining }) {
            out = out.map { PlacementMember(nodeID: $0.nodeID, zone: $0.zone, state: .active) }
        }
        return out
    }

    /// Installs a new membership view. Placement is recomputed only when its inputs changed.
    /// - Returns: the new snapshot and whether placement changed.
    @discardableResult
    public func update(members: [ClusterMember], nowMs: Int64) -> (ClusterSnapshot, placementChanged: Bool) {
        let inputs = placementMembers(members, nowMs: nowMs)
        let version = Placement.version(members: inputs, layout: settings.layout, settings: settings.placement)
        let old = current
        let placement = version == old.placement.version
            ? old.placement
            : Placement(members: inputs, layout: settings.layout, settings: settings.placement)
        var byID: [String: ClusterMember] = [:]
        for m in members { byID[m.nodeID] = m }
        let snapshot = ClusterSnapshot(localNodeID: localNodeID, placement: placement, members: byID, generation: old.generation + 1)
        // Installed and applied under one lock, so completeness sees placements in the order
        // readers do.
        state.withLock {
            $0 = snapshot
            sync.apply(placement)
        }
        return (snapshot, version != old.placement.version)
    }

    /// The earliest time a dead member leaves placement, if any is pending: the composition
    /// root's next recomputation.
    public func nextRemovalMs(_ members: [ClusterMember], nowMs: Int64) -> Int64? {
        members.compactMap { m -> Int64? in
            guard m.nodeID != localNodeID, m.isGone, !(m.liveness == .left && m.state == .leaving) else { return nil }
            let deadline = settings.removal.removalDeadlineMs(deadSinceMs: m.deadSinceMs ?? nowMs)
            return deadline > nowMs ? deadline : nil
        }.min()
    }
}

/// How many replicas of a shard must take a write (or answer a read) before it counts.
public enum Consistency: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case one, quorum, all

    /// Of `replicas` owners: 1, ⌊n/2⌋+1, or n (at least 1).
    public func required(of replicas: Int) -> Int {
        switch self {
        case .one: min(1, replicas)
        case .quorum: replicas / 2 + 1
        case .all: replicas
        }
    }

    public var description: String { rawValue }

    /// Parses `one`, `quorum`, `all` (any case).
    public init?(parsing text: String) {
        self.init(rawValue: text.lowercased())
    }
}

/// Detects placement disagreement: every peer frame carries its sender's placement version, and
/// a request computed from another member list than this node's may route data differently.
/// Brief mismatches are normal while a membership change spreads; one that lasts means two nodes
/// see different members (or run different settings: the replication factor and shard count are
/// part of the version). Counted, and reported for logging at most once per remote version per
/// `logIntervalMs`.
public final class PlacementAgreement: Sendable {
    public let logIntervalMs: Int64
    private let state = Mutex<(mismatches: Int, firstSeenMs: [UInt64: Int64], lastLogMs: [UInt64: Int64])>((0, [:], [:]))

    public init(logIntervalMs: Int64 = 10_000) {
        self.logIntervalMs = logIntervalMs
    }

    /// Frames whose version differed from this node's.
    public var mismatches: Int { state.withLock { $0.mismatches } }

    /// Records a frame's version; returns how long this remote version has been seen (ms) when
    /// the mismatch should be logged now, nil otherwise (equal versions, 0 = unversioned, or
    /// logged recently).
    public func observe(remote: UInt64, local: UInt64, nowMs: Int64) -> Int64? {
        guard remote != 0, remote != local else { return nil }
        return state.withLock { s -> Int64? in
            s.mismatches += 1
            if s.firstSeenMs.count > 64 { s.firstSeenMs.removeAll(); s.lastLogMs.removeAll() }
            let first = s.firstSeenMs[remote] ?? nowMs
            s.firstSeenMs[remote] = first
            if let last = s.lastLogMs[remote], nowMs - last < logIntervalMs { return nil }
            s.lastLogMs[remote] = nowMs
            return nowMs - first
        }
    }
}
