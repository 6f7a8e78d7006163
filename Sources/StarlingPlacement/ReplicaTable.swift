import StarlingCore

/// Every shard's ordered replica list over one set of members — one of the two tables of a
/// `Placement` (`P_read` or `P_write`).
///
/// Replica lists are in descending rendezvous score order; the first alive replica of the read
/// table is the shard's leader.
public struct ReplicaTable: Sendable {
    /// The members this table places onto, in canonical order (UTF-8 byte order of node IDs).
    public let nodes: [String]
    /// Replicas per shard: the configured replication factor capped at `nodes.count` (0 when
    /// there are no nodes).
    public let replicationFactor: Int
    public let shardCount: Int
    /// How many replicas the balancing pass placed away from their plain rendezvous position
    /// (a figure for metrics and docs; 0 means pure rendezvous).
    public let rebalancedReplicas: Int

    /// `replicationFactor` node indices per shard.
    private let slots: [Int32]
    private let lists: [[String]]
    private let loads: [Int]
    private let index: [String: Int]

    init(nodes: [String], zones: [Int], shardCount: Int, settings: PlacementSettings) {
        let placer = RendezvousPlacer(
            ids: nodes.map { Array($0.utf8) }, zones: zones, shardCount: shardCount,
            replicationFactor: settings.replicationFactor, tolerancePermille: settings.balanceTolerancePermille)
        var run = placer
        let slots = run.run()
        self.nodes = nodes
        replicationFactor = run.k
        self.shardCount = shardCount
        rebalancedReplicas = run.moves
        self.slots = slots
        loads = run.load
        var index: [String: Int] = [:]
        for (i, n) in nodes.enumerated() { index[n] = i }
        self.index = index
        let k = run.k
        lists = (0..<shardCount).map { s in (0..<k).map { nodes[Int(slots[s * k + $0])] } }
    }

    /// The replicas of `shard`, best-ranked first.
    public func replicas(of shard: ShardID) -> [String] {
        let s = Int(shard.rawValue)
        precondition(s < shardCount, "shard \(s) outside the layout's \(shardCount) shards")
        return lists[s]
    }

    /// Whether `nodeID` is a replica of `shard` in this table.
    public func contains(_ nodeID: String, shard: ShardID) -> Bool {
        guard let i = index[nodeID] else { return false }
        return holds(node: i, shard: Int(shard.rawValue))
    }

    /// The number of shards `nodeID` holds in this table (0 if it is not part of it).
    public func load(of nodeID: String) -> Int {
        guard let i = index[nodeID] else { return 0 }
        return loads[i]
    }

    /// The shards `nodeID` holds in this table.
    public func shards(of nodeID: String) -> ShardSet {
        var set = ShardSet()
        guard let i = index[nodeID] else { return set }
        for s in 0..<shardCount where holds(node: i, shard: s) { set.insert(ShardID(s)) }
        return set
    }

    /// Whether `nodeID` takes part in this table.
    public func isMember(_ nodeID: String) -> Bool { index[nodeID] != nil }

    /// The mean number of replicas per node (`shardCount · replicationFactor / nodes.count`).
    public var meanLoad: Double {
        nodes.isEmpty ? 0 : Double(shardCount * replicationFactor) / Double(nodes.count)
    }

    /// Node index in `nodes`, or nil.
    func nodeIndex(_ nodeID: String) -> Int? { index[nodeID] }

    @inline(__always)
    func holds(node: Int, shard s: Int) -> Bool {
        let k = replicationFactor
        let base = s * k
        for j in 0..<k where slots[base + j] == Int32(node) { return true }
        return false
    }
}
