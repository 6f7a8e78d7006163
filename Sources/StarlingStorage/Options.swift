import StarlingCore

extension TimeSeriesDB {
    /// Storage settings. Those an operator tunes are node config keys (docs/configuration.md),
    /// named in their comments; the rest are fixed by the format or by tests.
    public struct Options: Sendable {
        /// Series → shard mapping; fixed when the data directory is created. Opening a directory
        /// created with another shard count fails rather than silently re-sharding.
        public var shardLayout: ShardLayout = .default
        /// How long samples are kept, ms (default 30 days). Applied in whole blocks (UTC days):
        /// a block is dropped once all of it is older than the retention period. Appends older
        /// than the retention period are rejected (`too_old`).
        public var retentionMs: Int64 = 30 * Millis.day
        /// Maximum number of series the store accepts (`nil`: unlimited). Samples of new series
        /// beyond it are rejected (`series_limit`); existing series keep being written.
        public var maxSeries: Int? = nil
        /// Samples per chunk before the head cuts it. 240 samples is one hour at a 15 s scrape:
        /// long enough to amortise the chunk key and header (~1.3 bytes/sample), short enough
        /// that decoding a whole chunk for a short query stays cheap.
        public var maxSamplesPerChunk = 240
        /// Samples per chunk written by block compaction, at least `maxSamplesPerChunk`
        /// (`compactedChunkSamples`): compaction never cuts chunks shorter than the head does.
        public var maxSamplesPerCompactedChunk = 480
        var compactedChunkSamples: Int { max(maxSamplesPerCompactedChunk, maxSamplesPerChunk) }
        /// The head writes its open chunks and clears the WAL at least this often (ms)…
        public var checkpointIntervalMs: Int64 = 5 * Millis.minute
        /// …or once this many WAL bytes accumulated. Bounds replay time after a crash.
        public var checkpointWALBytes = 64 << 20
        /// Out-of-order samples buffered per series before they are written as a chunk.
        public var maxOutOfOrderBuffer = 240
        /// A block is compacted (its fragmented or out-of-order chunks merged) once it ended
        /// this long ago (ms); late samples arriving after that are merged at the next pass.
        public var compactionDelayMs: Int64 = 1 * Millis.hour
        /// Series-blocks compacted per maintenance call, so compaction never starves ingest.
        public var compactionBatch = 2_000
        /// Label sets of series outside the head that queries keep in memory
        /// (`StoredLabelsCache`; up to twice this many are held, ~200 bytes each). 0 disables it.
        /// Node key `storage.labels_cache_entries`.
        public var storedLabelsCacheEntries = 100_000
        /// Encoded chunk bytes a selection reads ahead in key order before returning its first
        /// series (`LocalSeriesSet`); 0 reads each series when its turn comes. Held per running
        /// selection, so it bounds memory together with the query concurrency: 8 MiB covers the
        /// chunks of tens of thousands of series over an hour. Node key `storage.query_read_ahead`.
        public var queryReadAheadBytes = 8 << 20
        /// Stored chunks of the two newest blocks kept for queries (`RecentChunkCache`), in bytes;
        /// 0 disables the cache. Node key `storage.chunk_cache`.
        public var chunkCacheBytes = 64 << 20
        /// Postings lists kept for queries (`PostingsCache`), in bytes; 0 disables the cache.
        /// Node key `storage.postings_cache`.
        public var postingsCacheBytes = 32 << 20

        public init() {}
    }
}

/// What one `append` did.
public struct AppendReport: Sendable, Equatable {
    /// Samples stored (new data).
    public var accepted = 0
    /// Samples identical to stored ones (same series, timestamp and value bits), dropped.
    public var duplicates = 0
    /// Accepted samples that arrived older than the newest sample of their series.
    public var outOfOrder = 0
    /// Series created by this append.
    public var newSeries = 0
    /// Samples refused, with why.
    public var rejected: [AppendRejection] = []

    public init() {}

    public var rejectedSamples: Int { rejected.reduce(0) { $0 + $1.samples } }
}

/// Samples of one series that the store refused.
public struct AppendRejection: Sendable, Equatable, CustomStringConvertible {
    public enum Reason: String, Sendable, Equatable, CaseIterable {
        /// Creating the series would exceed `Options.maxSeries`.
        case seriesLimit = "series_limit"
        /// Timestamp older than the retention period.
        case tooOld = "too_old"
        /// Timestamp outside the representable block range (±5.8 million years).
        case timestampOutOfRange = "timestamp_out_of_range"
        /// A label name or value contains a NUL byte, which the index layout reserves.
        case invalidLabels = "invalid_labels"
    }

    public var labels: Labels
    public var reason: Reason
    public var samples: Int
    public var detail: String

    public var description: String { "\(labels): \(reason.rawValue): \(detail)" }
}

/// What replaying the write-ahead log did when the store opened.
public struct RecoveryReport: Sendable, Equatable {
    public var walRecords = 0
    public var samples = 0
    public var seriesLoaded = 0
    /// Records that could not be decoded or referenced unknown series (should be zero).
    public var corruptRecords = 0
    public var totalSeries = 0
}

/// What one `maintenance` call did.
public struct MaintenanceReport: Sendable, Equatable {
    public var checkpointed = false
    public var chunksClosed = 0
    public var seriesEvicted = 0
    public var blocksCompacted = 0
    public var blocksDropped = 0
    public var seriesDeleted = 0
}

/// Counters and sizes for `/metrics`.
public struct StorageStatistics: Sendable {
    public var totalSeries = 0
    public var headSeries = 0
    public var samplesAppended: UInt64 = 0
    public var duplicateSamples: UInt64 = 0
    public var outOfOrderSamples: UInt64 = 0
    public var rejectedSamples: [AppendRejection.Reason: UInt64] = [:]
    public var chunksWritten: UInt64 = 0
    public var walBytesSinceCheckpoint = 0
    public var checkpoints: UInt64 = 0
    public var compactions: UInt64 = 0
    public var diskBytes: Int64 = 0
    /// Oldest and newest block holding data (nil when empty).
    public var minBlock: Int32?
    public var maxBlock: Int32?
    /// Recent-chunk cache (`Options.chunkCacheBytes`): lookups answered and missed since the
    /// store opened, and what it holds now.
    public var chunkCacheHits: UInt64 = 0
    public var chunkCacheMisses: UInt64 = 0
    public var chunkCacheBytes = 0
    public var chunkCacheEntries = 0
    /// Postings cache: lookups answered and missed, and what it holds now.
    public var postingsCacheHits: UInt64 = 0
    public var postingsCacheMisses: UInt64 = 0
    public var postingsCacheBytes = 0
}

public enum StorageError: Error, Sendable, CustomStringConvertible {
    /// A write to the underlying store failed; the store refuses further appends until the node
    /// restarts and replays its WAL, so no acknowledged sample is ever lost or half-applied.
    case failed(String)
    /// On-disk data contradicts the format.
    case corrupt(String)
    /// The data directory was created with other settings.
    case incompatible(String)

    public var description: String {
        switch self {
        case .failed(let m): return "storage failed: \(m)"
        case .corrupt(let m): return "storage corrupt: \(m)"
        case .incompatible(let m): return "storage incompatible: \(m)"
        }
    }
}
