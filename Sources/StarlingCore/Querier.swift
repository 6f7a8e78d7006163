/// The read interface between query engines (PromQL, the read API, rule evaluation) and the
/// places data lives: a node's local store, or the cluster fan-out over the replicas of every
/// shard. Engines only ever see this protocol, so the same engine runs on one node or a cluster.
///
/// Series come back **sorted by label set** (`Labels.compare`) with **unique label sets**: a
/// fan-out merges replicas by k-way merge and concatenates their chunks. Samples inside a series
/// are carried as encoded chunks that may overlap in time and repeat samples; readers decode them
/// with `StarlingChunk.SeriesSampleIterator`, which merges in time order and drops duplicates.
public protocol Querier: Sendable {
    /// Series whose labels satisfy every matcher and that may have samples in
    /// `[hints.startMs, hints.endMs]`, with their chunks overlapping that range.
    func select(_ matchers: [LabelMatcher], hints: SelectHints) async throws -> any SeriesSet

    /// Label sets of series matching any of `matcherSets` (an empty list selects every series)
    /// with samples in `[startMs, endMs]`; sorted, unique, at most `limit` when set.
    func series(_ matcherSets: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[Labels]>

    /// Label names present on series matching any of `matcherSets`; sorted bytewise.
    func labelNames(_ matcherSets: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[String]>

    /// Values of label `name` on series matching any of `matcherSets`; sorted bytewise.
    func labelValues(_ name: String, _ matcherSets: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[String]>
}

/// A result with the warnings gathered while producing it (a shard without a reachable
/// replica, a limit that truncated the answer). Warnings are returned to the user, never dropped.
public struct QueryResult<Value: Sendable>: Sendable {
    public var value: Value
    public var warnings: [String]
    public init(_ value: Value, warnings: [String] = []) {
        self.value = value
        self.warnings = warnings
    }
}

/// What the caller of `select` will do with the data, so a querier can bound its work.
public struct SelectHints: Sendable, Equatable {
    /// Inclusive start of the time range, ms since epoch.
    public var startMs: Int64
    /// Inclusive end of the time range, ms since epoch.
    public var endMs: Int64
    /// Step of a range query, if any (informational).
    public var stepMs: Int64?
    /// The PromQL function that consumes this selection, if any (informational).
    public var function: String?
    /// Restrict the answer to these shards. `nil` means every shard this querier can reach.
    /// The cluster read path uses it to ask each replica for exactly the shards it should answer.
    public var shards: ShardSet?
    /// Stop after this many series (a partial answer then carries a warning).
    public var limit: Int?

    public init(startMs: Int64, endMs: Int64, stepMs: Int64? = nil, function: String? = nil, shards: ShardSet? = nil, limit: Int? = nil) {
        self.startMs = startMs
        self.endMs = endMs
        self.stepMs = stepMs
        self.function = function
        self.shards = shards
        self.limit = limit
    }
}

/// A stream of series, consumed by one task. `next()` returns nil at the end; `warnings` is final
/// once it has.
public protocol SeriesSet: AnyObject, Sendable {
    func next() async throws -> SeriesChunks?
    var warnings: [String] { get }
}

/// A series' labels and the encoded chunks that hold its samples in the selected range.
public struct SeriesChunks: Sendable {
    public let labels: Labels
    public var chunks: [EncodedChunk]

    public init(labels: Labels, chunks: [EncodedChunk]) {
        self.labels = labels
        self.chunks = chunks
    }
}

/// An encoded chunk as the storage layer hands it out: opaque bytes in a format the chunk codec
/// (`StarlingChunk`) understands, plus the time bounds needed to skip it without decoding.
public struct EncodedChunk: Sendable, Equatable {
    /// Inclusive time bounds of the samples in the chunk, ms since epoch.
    public var minTimeMs: Int64
    public var maxTimeMs: Int64
    /// The complete chunk bytes, starting with the encoding byte.
    public var bytes: [UInt8]

    public init(minTimeMs: Int64, maxTimeMs: Int64, bytes: [UInt8]) {
        self.minTimeMs = minTimeMs
        self.maxTimeMs = maxTimeMs
        self.bytes = bytes
    }

    @inlinable
    public func overlaps(_ startMs: Int64, _ endMs: Int64) -> Bool {
        minTimeMs <= endMs && maxTimeMs >= startMs
    }
}

/// A series set over an array already in memory.
public final class ArraySeriesSet: SeriesSet, @unchecked Sendable {
    private var items: [SeriesChunks]
    private var index = 0
    public let warnings: [String]

    public init(_ items: [SeriesChunks], warnings: [String] = []) {
        self.items = items
        self.warnings = warnings
    }

    public func next() async throws -> SeriesChunks? {
        guard index < items.count else { return nil }
        defer { index += 1 }
        return items[index]
    }
}
