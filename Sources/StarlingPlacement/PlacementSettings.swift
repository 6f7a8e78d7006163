/// Cluster-wide placement parameters. Every node must use the same values: they are part of the
/// placement version, so a node configured differently is detected (version mismatch on peer
/// RPC) instead of silently computing a different placement.
public struct PlacementSettings: Sendable, Hashable, CustomStringConvertible {
    /// Replicas per shard. Default 3: survives one node down with quorum writes and reads, and a
    /// second failure without data loss. Capped at the number of members that take part in a
    /// placement (a 2-node cluster keeps 2 replicas). `cluster.replication_factor`,
    /// `--replication-factor`. Range 1...`maxReplicationFactor`.
    public let replicationFactor: Int

    /// Balance band, in permille of each node's fair share. Default 80 (±8%): the rebalancing
    /// pass moves replicas until every node holds between ⌈fair·0.92⌉ and ⌊fair·1.08⌋ shard
    /// replicas (never narrower than ⌊fair⌋...⌈fair⌉), which keeps the ±10% promise with margin.
    /// Narrower bands balance better but make every membership change move more replicas that
    /// the new (or removed) node is not involved in; wider bands the reverse (see
    /// docs/cluster.md for measured figures). Range 0...500.
    public let balanceTolerancePermille: Int

    public static let maxReplicationFactor = 255
    public static let `default` = PlacementSettings(uncheckedReplicationFactor: 3, balanceTolerancePermille: 80)

    /// Validates configuration values; an out-of-range value is a configuration error naming the
    /// setting and its range.
    public init(replicationFactor: Int = 3, balanceTolerancePermille: Int = 80) throws(PlacementSettingsError) {
        guard (1...Self.maxReplicationFactor).contains(replicationFactor) else {
            throw .outOfRange(setting: "replication_factor", value: replicationFactor, range: 1...Self.maxReplicationFactor)
        }
        guard (0...500).contains(balanceTolerancePermille) else {
            throw .outOfRange(setting: "balance_tolerance_permille", value: balanceTolerancePermille, range: 0...500)
        }
        self.init(uncheckedReplicationFactor: replicationFactor, balanceTolerancePermille: balanceTolerancePermille)
    }

    private init(uncheckedReplicationFactor: Int, balanceTolerancePermille: Int) {
        self.replicationFactor = uncheckedReplicationFactor
        self.balanceTolerancePermille = balanceTolerancePermille
    }

    public var description: String {
        "replication_factor=\(replicationFactor) balance_tolerance=±\(balanceTolerancePermille)‰"
    }
}

public enum PlacementSettingsError: Error, Hashable, CustomStringConvertible {
    case outOfRange(setting: String, value: Int, range: ClosedRange<Int>)

    public var description: String {
        switch self {
        case let .outOfRange(setting, value, range):
            "placement setting \(setting)=\(value) is outside \(range.lowerBound)...\(range.upperBound)"
        }
    }
}
