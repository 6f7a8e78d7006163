/// A shard: the unit of placement, replication, streaming and digesting. A series' shard is its
/// labels' stable hash modulo the cluster-wide shard count.
public struct ShardID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ v: Int) { self.rawValue = UInt16(v) }
    public static func < (a: ShardID, b: ShardID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
}

/// How series map to shards. Fixed when a cluster (or a single node's data directory) is
/// created, and recorded in the data directory: changing it would move every series.
public struct ShardLayout: Sendable, Equatable, Codable {
    /// Number of shards, 1...65_536. Default 1024: enough to spread load over ~100 nodes with
    /// fine-grained rebalancing, small enough that per-shard bookkeeping stays cheap.
    public let shardCount: Int

    public static let defaultShardCount = 1024
    public static let `default` = ShardLayout(shardCount: defaultShardCount)

    public init(shardCount: Int) {
        precondition((1...65_536).contains(shardCount), "shard count must be in 1...65536, got \(shardCount)")
        self.shardCount = shardCount
    }

    /// The shard of a label set with identity hash `hash` (`Labels.stableHash`).
    @inlinable
    public func shard(forHash hash: UInt64) -> ShardID {
        ShardID(rawValue: UInt16(truncatingIfNeeded: hash % UInt64(shardCount)))
    }

    public func shard(for labels: Labels) -> ShardID { shard(forHash: labels.stableHash) }

    /// The preferred series ID for a label set with identity hash `hash`: the shard in the top 16
    /// bits and hash bits 16...63 below. A collision (two label sets with the same preferred ID)
    /// is resolved by the store probing `SeriesID.nextProbe`, so IDs are unique per node while
    /// equal on every replica in all but astronomically rare cases. Peers always exchange label
    /// sets, never bare IDs.
    @inlinable
    public func preferredSeriesID(forHash hash: UInt64) -> SeriesID {
        SeriesID(shard: shard(forHash: hash), low: hash >> 16)
    }
}

/// A node-local series identifier: `shard << 48 | low48`. Sorting by ID groups series by shard,
/// which is what lets the key layout stream, digest and drop one shard.
public struct SeriesID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    @inlinable
    public init(shard: ShardID, low: UInt64) {
        rawValue = UInt64(shard.rawValue) << 48 | (low & 0xFFFF_FFFF_FFFF)
    }

    @inlinable public var shard: ShardID { ShardID(rawValue: UInt16(truncatingIfNeeded: rawValue >> 48)) }
    @inlinable public var low: UInt64 { rawValue & 0xFFFF_FFFF_FFFF }

    /// The next ID to try after a collision, staying in the same shard.
    @inlinable public var nextProbe: SeriesID { SeriesID(shard: shard, low: low &+ 1) }

    public static func < (a: SeriesID, b: SeriesID) -> Bool { a.rawValue < b.rawValue }
    public var description: String {
        let hex = String(rawValue, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
