import StarlingCore

/// One member as placement sees it: identity, failure domain and lifecycle state. Liveness is
/// deliberately absent: placement changes only when a member joins, changes state, leaves, or
/// is removed after `MemberRemoval.removalTimeoutMs` of being dead — never because a member is
/// merely suspect or briefly down (its writes become hints meanwhile).
public struct PlacementMember: Hashable, Sendable, CustomStringConvertible {
    /// A member's own lifecycle state, as it announces it in gossip metadata.
    ///
    /// Mirrors the membership layer's node state; the composition root maps one to the other so
    /// this target depends on nothing but `StarlingCore`.
    public enum State: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
        /// Reachable, receives writes for the shards it will own (`P_write`), but does not hold
        /// complete data yet, so it is not read from (`P_read`).
        case joining = 0
        /// Holds complete data for its shards: in both `P_read` and `P_write`.
        case active = 1
        /// Streaming its shards out before it goes: still complete and read from (`P_read`), no
        /// longer a write target of its own (`P_write`), though it still receives writes through
        /// the write set `P_write ∪ P_read`.
        case leaving = 2

        public var description: String {
            switch self {
            case .joining: "joining"
            case .active: "active"
            case .leaving: "leaving"
            }
        }

        /// Whether members in this state take part in `P_read` (hold complete data).
        public var isReadable: Bool { self != .joining }
        /// Whether members in this state take part in `P_write` (will own data).
        public var isWritable: Bool { self != .leaving }
    }

    /// Stable node identity (the membership layer's node ID). Compared and hashed as UTF-8 bytes.
    public var nodeID: String
    /// Failure domain (availability zone, rack). Empty means "unknown": all members with an empty
    /// zone form one zone.
    public var zone: String
    public var state: State

    public init(nodeID: String, zone: String = "", state: State) {
        self.nodeID = nodeID
        self.zone = zone
        self.state = state
    }

    public var description: String {
        zone.isEmpty ? "\(nodeID)(\(state))" : "\(nodeID)@\(zone)(\(state))"
    }
}

/// When a member that the membership layer reports dead or gone stops counting for placement.
///
/// A dead member stays in placement for `removalTimeoutMs`: a restart or a short partition must
/// not reshuffle shards (its writes become hints and reads skip it meanwhile). After that, it is
/// excluded from both placements and its shards are re-replicated. A member that left
/// gracefully has already handed its shards off and is excluded at once.
public struct MemberRemoval: Sendable, Hashable {
    /// How long a member may be dead before placement drops it, in milliseconds. Default
    /// 120_000 (2 minutes). Shorter re-replicates sooner after a real failure but moves data
    /// (and loses hints' benefit) after every long restart; longer keeps shards on RF − 1 live
    /// replicas for longer. Must stay well under the hint retention (`cluster.hints.max_age`),
    /// or writes to a returning member are lost from its copy until anti-entropy repairs them.
    public var removalTimeoutMs: Int64

    public static let `default` = MemberRemoval(removalTimeoutMs: 120_000)

    public init(removalTimeoutMs: Int64) {
        self.removalTimeoutMs = removalTimeoutMs
    }

    /// Whether a member still counts for placement.
    /// - Parameters:
    ///   - deadSinceMs: when the membership layer declared it dead; `nil` if alive or suspect.
    ///   - left: whether it left gracefully (SWIM `left`).
    public func keeps(deadSinceMs: Int64?, left: Bool, nowMs: Int64) -> Bool {
        if left { return false }
        guard let deadSinceMs else { return true }
        return nowMs - deadSinceMs < removalTimeoutMs
    }

    /// When a member dead since `deadSinceMs` leaves placement: the composition root's next
    /// tick for recomputing placement.
    public func removalDeadlineMs(deadSinceMs: Int64) -> Int64 {
        deadSinceMs + removalTimeoutMs
    }
}
