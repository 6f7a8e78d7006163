import StarlingMembership

/// One member as `GET /api/v1/cluster/members` returns it. Built here so the HTTP route only
/// serializes it (no membership logic at the edge).
public struct MemberView: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    /// Gossip `host:port`.
    public var gossipAddress: String
    public var httpAddress: String
    public var peerAddress: String
    public var zone: String
    /// alive, suspect, dead, left.
    public var status: String
    /// joining, active, leaving.
    public var state: String
    public var incarnation: UInt64
    public var version: String
    /// Unix time (ms) of the last status, incarnation or metadata change seen by this node.
    public var lastChangeMs: Int64
    /// Whether this entry is the node answering.
    public var isLocal: Bool
}

extension GossipService {
    /// The member list for the cluster API, sorted by node ID.
    public func memberViews() -> [MemberView] {
        let localID = instance.myself.id
        return instance.allMembers.map { m in
            MemberView(id: m.id.description, name: m.name, gossipAddress: m.address.description,
                       httpAddress: m.metadata.httpAddress, peerAddress: m.metadata.peerAddress, zone: m.metadata.zone,
                       status: m.status.description, state: m.metadata.state.description, incarnation: m.incarnation,
                       version: m.metadata.version, lastChangeMs: wallClockMs(ofInstanceMs: m.lastChangeMs),
                       isLocal: m.id == localID)
        }
    }
}

extension GossipConfiguration {
    public enum OptionError: Error, Equatable, CustomStringConvertible {
        case invalid(option: String, value: String, rule: String)

        public var description: String {
            switch self {
            case .invalid(let o, let v, let r): "invalid \(o) '\(v)': \(r)"
            }
        }
    }

    /// Builds a configuration from the textual options shared by flags, `STARLING_*` environment
    /// variables and config keys (`gossip`, `gossip-advertise`, `join`, `cluster-id`,
    /// `gossip-key`, `gossip-profile`), with errors naming the option and the rule.
    public static func fromOptions(nodeID: NodeID, name: String, metadata: NodeMetadata, gossip: String?,
                                   advertise: String?, join: String?, clusterID: String?, keys: [String],
                                   profile: String?) throws(OptionError) -> GossipConfiguration {
        var c = GossipConfiguration(nodeID: nodeID, name: name, metadata: metadata)
        if let g = gossip {
            guard let a = GossipAddress(parsing: g, allowZeroPort: true) else {
                throw .invalid(option: "gossip", value: g, rule: "expected HOST:PORT")
            }
            c.bind = a
        }
        if let a = advertise {
            guard let addr = GossipAddress(parsing: a) else {
                throw .invalid(option: "gossip-advertise", value: a, rule: "expected IP:PORT")
            }
            c.advertise = addr
        }
        if let j = join {
            guard let seeds = GossipAddress.parseList(j) else {
                throw .invalid(option: "join", value: j, rule: "expected HOST:PORT[,HOST:PORT...]")
            }
            c.seeds = seeds
        }
        if let id = clusterID {
            guard !id.isEmpty, id.utf8.count <= 128 else {
                throw .invalid(option: "cluster-id", value: id, rule: "1 to 128 bytes")
            }
            c.cluster = ClusterID(id)
        }
        do {
            c.keyring = try Keyring(base64Keys: keys)
        } catch {
            throw .invalid(option: "gossip-key", value: "(redacted)", rule: error.description)
        }
        if let p = profile {
            guard let s = SWIMSettings.profile(named: p) else {
                throw .invalid(option: "gossip-profile", value: p, rule: "one of \(SWIMSettings.profileNames.joined(separator: ", "))")
            }
            c.settings = s
        }
        return c
    }
}
