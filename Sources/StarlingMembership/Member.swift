/// Liveness of a member as this node believes it (SWIM's states plus a graceful `left`).
///
/// Ordering for conflicting updates with the same incarnation is alive < suspect < dead/left:
/// a suspicion overrides an alive claim of the same incarnation, and only the member itself can
/// override a suspicion, by announcing a higher incarnation (refutation).
public enum MemberStatus: UInt8, Sendable, Hashable, CustomStringConvertible, CaseIterable {
    case alive = 0
    case suspect = 1
    case dead = 2
    case left = 3

    public var description: String {
        switch self {
        case .alive: "alive"
        case .suspect: "suspect"
        case .dead: "dead"
        case .left: "left"
        }
    }

    /// Whether the member is still counted as part of the cluster (probed, gossiped to).
    public var isLive: Bool { self == .alive || self == .suspect }
}

/// A node's own lifecycle state, disseminated as metadata. Placement uses only `active` members
/// as replica owners; `joining` nodes are reachable but not yet owners; `leaving` nodes hand off.
public enum NodeState: UInt8, Sendable, Hashable, CustomStringConvertible, CaseIterable {
    case joining = 0
    case active = 1
    case leaving = 2

    public var description: String {
        switch self {
        case .joining: "joining"
        case .active: "active"
        case .leaving: "leaving"
        }
    }

    public init?(name: String) {
        guard let s = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = s
    }
}

/// What a node tells the cluster about itself besides liveness. Carried in every `alive`
/// update, so it must stay small: each string is bounded by `Limits.maxMetadataStringBytes`.
public struct NodeMetadata: Sendable, Hashable {
    /// `host:port` of the HTTP API (ingest, query, dashboard). Empty if not serving HTTP.
    public var httpAddress: String
    /// `host:port` of the peer RPC listener (replication, fan-out). Empty if none.
    public var peerAddress: String
    /// Failure domain for zone-aware placement (e.g. an availability zone). Empty = unknown.
    public var zone: String
    public var state: NodeState
    /// The software version, for mixed-version diagnostics.
    public var version: String

    public init(httpAddress: String = "", peerAddress: String = "", zone: String = "",
                state: NodeState = .joining, version: String = "") {
        self.httpAddress = httpAddress
        self.peerAddress = peerAddress
        self.zone = zone
        self.state = state
        self.version = version
    }
}

/// One member as seen by the local node.
public struct Member: Sendable, Hashable {
    public var id: NodeID
    /// Human-readable name (defaults to the host name); not an identity, may repeat.
    public var name: String
    public var address: GossipAddress
    /// Only the member itself raises its incarnation: to refute a suspicion, to announce new
    /// metadata, or to come back after a restart.
    public var incarnation: UInt64
    public var status: MemberStatus
    public var metadata: NodeMetadata
    /// Local time (ms, the instance's clock) of the last status, incarnation or metadata change.
    public var lastChangeMs: Int64

    public init(id: NodeID, name: String, address: GossipAddress, incarnation: UInt64,
                status: MemberStatus, metadata: NodeMetadata, lastChangeMs: Int64) {
        self.id = id
        self.name = name
        self.address = address
        self.incarnation = incarnation
        self.status = status
        self.metadata = metadata
        self.lastChangeMs = lastChangeMs
    }
}

/// A change in the local view, emitted as `SWIMDirective.memberChanged`. Placement and the
/// node's logs consume these; `removed` is when a tombstone is reclaimed, the point at which
/// placement should stop waiting for the member to come back.
public struct MembershipChange: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// First time this node hears of the member.
        case joined
        /// Back to alive from suspect (refuted), or from dead/left (restarted and rejoined).
        case alive
        case suspect
        case dead
        case left
        /// The tombstone of a dead or left member was reclaimed; it is gone from the view.
        case removed
        /// Same status, new metadata (e.g. state joining → active) or a new address.
        case metadataChanged
    }

    public var kind: Kind
    public var member: Member
    public var previousStatus: MemberStatus?

    public init(kind: Kind, member: Member, previousStatus: MemberStatus?) {
        self.kind = kind
        self.member = member
        self.previousStatus = previousStatus
    }

    public var description: String {
        "\(kind.rawValue) \(member.name) id=\(member.id.short) addr=\(member.address) inc=\(member.incarnation)"
            + (previousStatus.map { " was=\($0)" } ?? "")
    }
}
