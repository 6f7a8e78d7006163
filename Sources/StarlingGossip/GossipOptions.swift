import StarlingMembership

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
