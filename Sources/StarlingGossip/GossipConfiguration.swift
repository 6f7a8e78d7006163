import StarlingMembership

/// Everything the gossip shell needs to start. The node builds it from flags, `STARLING_*`
/// environment variables and the config file.
public struct GossipConfiguration: Sendable {
    /// Where to listen: UDP for the protocol and TCP for push-pull, on the same port number.
    /// Port 0 picks a free port (tests). Default `0.0.0.0:9471`, the node's `cluster.gossip` default.
    public var bind: GossipAddress = GossipAddress(host: "0.0.0.0", port: 9471)
    /// The address other members use to reach this node. Required to be an IP literal. When nil,
    /// the bind address is used, or, if that is a wildcard, the first non-loopback IPv4 address
    /// of this host.
    public var advertise: GossipAddress?
    /// Seeds to join through (`--join host:port,...`). Host names are resolved on every attempt,
    /// and every address a name resolves to is tried (a Kubernetes headless service or a Compose
    /// service name returns all peers).
    public var seeds: [GossipAddress] = []
    public var nodeID: NodeID
    /// Human-readable name; defaults to the host name at the node level.
    public var name: String
    public var metadata: NodeMetadata
    public var cluster: ClusterID = .default
    public var keyring = Keyring()
    public var settings: SWIMSettings = .lan
    /// Incarnation to start at. Default nil = the Unix time in seconds at start, so a restarted
    /// node is above its previous life even after every peer has reclaimed its tombstone (peers
    /// that still remember it make it refute above the old incarnation anyway). Costs 4 bytes
    /// per update over starting at 0.
    public var initialIncarnation: UInt64?
    /// Connect plus exchange deadline for one push-pull. Default 5,000 ms.
    public var pushPullTimeoutMs: Int64 = 5_000
    /// Push-pull connections served at once; more are closed immediately and counted.
    /// Default 16.
    public var maxConcurrentPushPulls = 16
    /// How long `leave` waits for the leave announcement to spread before returning.
    /// Default 5,000 ms.
    public var leaveTimeoutMs: Int64 = 5_000
    /// Addresses tried per seed name. Default 32.
    public var maxAddressesPerSeed = 32
    /// Inbound datagrams buffered between the socket and the protocol; beyond it the newest are
    /// dropped and counted. Default 4,096.
    public var inboundQueueLimit = 4_096

    public init(nodeID: NodeID, name: String, metadata: NodeMetadata = NodeMetadata()) {
        self.nodeID = nodeID
        self.name = name
        self.metadata = metadata
    }
}
