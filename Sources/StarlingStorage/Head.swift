import StarlingChunk
import StarlingCore

/// A series held in memory because it is receiving samples: its open (in-order) chunk, its
/// out-of-order buffer, and what is already durable about it.
///
/// `@unchecked Sendable`: every access happens under `TimeSeriesDB`'s head lock.
///
/// The mutable properties are `@exclusivity(unchecked)`: the append touches them for every
/// series of every batch, and the runtime check of each access (an access-set insert and
/// removal) cost as much as the work itself; the head lock already orders every access.
final class HeadSeries: @unchecked Sendable {
    let id: SeriesID
    let labels: Labels
    /// `labels.stableHash`, the key of `HeadState.byHash`.
    let labelsHash: UInt64
    /// Whether the series record (`0x02`) is durable.
    @exclusivity(unchecked) var persisted: Bool
    /// Newest block whose postings are durable (`Int32.min` when none).
    @exclusivity(unchecked) var lastIndexedBlock: Int32
    /// Older blocks known to be indexed (out-of-order writes into past days).
    @exclusivity(unchecked) var olderIndexedBlocks: Set<Int32> = []

    /// The chunk receiving in-order appends, its block and key discriminator (the WAL sequence
    /// number of the record that opened it, so a replay rewrites the same key).
    @exclusivity(unchecked) var open: OpenChunk?
    @exclusivity(unchecked) var openBlock: Int32 = 0
    @exclusivity(unchecked) var openUniq: UInt64 = 0
    /// Samples older than the open chunk's newest, sorted by timestamp, unique timestamps.
    @exclusivity(unchecked) var outOfOrder: [Sample] = []
    /// Changed since the last checkpoint.
    @exclusivity(unchecked) var dirty = false

    /// Starts loading what appending to the series touches first (see `OpenChunk.prefetch`).
    @inline(__always)
    func prefetchOpenChunk() { open?.prefetch() }

    init(id: SeriesID, labels: Labels, labelsHash: UInt64? = nil, persisted: Bool, lastIndexedBlock: Int32) {
        self.id = id
        self.labels = labels
        self.labelsHash = labelsHash ?? labels.stableHash
        self.persisted = persisted
        self.lastIndexedBlock = lastIndexedBlock
    }

    /// Whether `a` is kept over `b` at the same timestamp (`StarlingChunk.DuplicateRule`, the
    /// order-independent rule every reader applies, so replicas converge).
    static func wins(_ a: Double, over b: Double) -> Bool {
        a.bitPattern != b.bitPattern && DuplicateRule.preferred(a, b).bitPattern == a.bitPattern
    }

    enum OutOfOrderInsert { case inserted, duplicate, replaced, discarded }

    /// Inserts into the out-of-order buffer keeping it sorted with unique timestamps.
    func insertOutOfOrder(_ s: Sample) -> OutOfOrderInsert {
        var lo = 0, hi = outOfOrder.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if outOfOrder[mid].timestampMs < s.timestampMs { lo = mid + 1 } else { hi = mid }
        }
        if lo < outOfOrder.count && outOfOrder[lo].timestampMs == s.timestampMs {
            let existing = outOfOrder[lo]
            if existing.value.bitPattern == s.value.bitPattern { return .duplicate }
            if Self.wins(s.value, over: existing.value) {
                outOfOrder[lo] = s
                return .replaced
            }
            return .discarded
        }
        outOfOrder.insert(s, at: lo)
        return .inserted
    }
}

/// Mutable in-memory state of the store, guarded by one lock in `TimeSeriesDB`.
struct HeadState {
    /// Series by `Labels.stableHash` — the first registered of each hash; a different label set
    /// with the same 64-bit hash (accidental or crafted) goes to `hashCollisions`, keyed by the
    /// labels themselves (seeded SipHash), so colliding series cannot degrade the probing.
    /// Keyed by the hash rather than the labels because every append looks up every series of
    /// the batch: a `[Labels: …]` probe hashes ~200 bytes through `Hasher` and compares label
    /// bytes of every occupied bucket it passes (a cache miss each), where this hashes with
    /// XXH64 and compares labels once.
    ///
    /// Unretained: `byID` holds every series, and `register` and `evict` change both together.
    /// So the append's prefetch pass (`prefetchSeries`) finds a series object without touching
    /// its reference count, which is an atomic write to a line that is likely out of cache.
    private(set) var byHash: [UInt64: Unmanaged<HeadSeries>] = [:]
    var hashCollisions: [Labels: HeadSeries] = [:]
    var byID: [SeriesID: HeadSeries] = [:]
    /// The same series by shard: anti-entropy and handover ask for one shard at a time, 1,024
    /// times a round, and must not walk every series in memory for each.
    private(set) var byShard: [ShardID: [SeriesID: HeadSeries]] = [:]
    /// Series that changed since the last checkpoint.
    var dirtySeries: [SeriesID: HeadSeries] = [:]

    /// Next WAL / chunk sequence number, and the persisted high-water mark below which numbers
    /// may be handed out without another meta write (allocation in ranges survives restarts).
    var nextSeq: UInt64 = 1
    var seqWatermark: UInt64 = 0
    /// Highest WAL sequence number applied to the head.
    var lastAppliedSeq: UInt64 = 0

    var totalSeries = 0
    var minBlock: Int32? = nil
    var maxBlock: Int32? = nil
    /// Maintenance has closed the open chunks of every block before this one. A chunk opened in
    /// one of them afterwards (a backfill, late samples) may follow a partial chunk of the same
    /// series there, so its series-block is marked for compaction, which merges the pieces.
    var sweptBefore: Int32 = .min

    var walBytesSinceCheckpoint = 0
    var lastCheckpointMs: Int64 = 0
    /// Set when a store write failed: appends are refused until restart.
    var failure: String? = nil
    /// Chunk writes that failed after their samples were made durable in the WAL; retried by
    /// the next checkpoint, which does not clear the WAL until they are written.
    var pendingWrites = KVWriteBatch()

    var stats = StorageStatistics()

    /// The series with exactly `labels` (whose `stableHash` is `hash`), if in memory.
    @inline(__always)
    func series(_ labels: Labels, hash: UInt64) -> HeadSeries? {
        if let u = byHash[hash] {
            let s = u.takeUnretainedValue()
            if s.labels == labels { return s }
        }
        return hashCollisions.isEmpty ? nil : hashCollisions[labels]
    }

    /// The series whose labels hash to `hash`, if in memory, whose object it starts loading; a
    /// candidate for `series(_:hash:candidate:)`, unretained (valid until the next `evict`).
    @inline(__always)
    func prefetchSeries(hash: UInt64) -> Unmanaged<HeadSeries>? {
        guard let u = byHash[hash] else { return nil }
        // The object is ~180 bytes (its open chunk's state is at offsets up to 0x90) and starts
        // anywhere in a line: four lines hold it.
        Prefetch.raw(u.toOpaque(), lines: 4)
        return u
    }

    /// `series(labels, hash: hash)`, given what `prefetchSeries(hash:)` returned for `hash`
    /// since the last `register` or `evict` (`nil` is always a valid candidate).
    @inline(__always)
    func series(_ labels: Labels, hash: UInt64, candidate: Unmanaged<HeadSeries>?) -> HeadSeries? {
        if let s = candidate?.takeUnretainedValue(), s.labels == labels { return s }
        return series(labels, hash: hash)
    }

    /// Counts every time chunk data leaves the head for the store (a chunk closed, an
    /// out-of-order buffer flushed, a series evicted). A reader's store iterator is a snapshot:
    /// one made before a move misses the moved chunk, which the head no longer holds, so
    /// readers make a new iterator when this changed since theirs was made.
    var chunkMoves: UInt64 = 0

    /// - Precondition: no series with `s.labels` is registered.
    mutating func register(_ s: HeadSeries) {
        if byHash[s.labelsHash] == nil { byHash[s.labelsHash] = .passUnretained(s) } else { hashCollisions[s.labels] = s }
        byID[s.id] = s
        byShard[s.id.shard, default: [:]][s.id] = s
    }

    /// The series of `shard` in memory.
    func series(inShard shard: ShardID) -> Dictionary<SeriesID, HeadSeries>.Values {
        (byShard[shard] ?? [:]).values
    }

    mutating func evict(_ s: HeadSeries) {
        chunkMoves &+= 1
        if byHash[s.labelsHash]?.toOpaque() == Unmanaged.passUnretained(s).toOpaque() {
            byHash[s.labelsHash] = nil
        } else {
            hashCollisions[s.labels] = nil
        }
        byID[s.id] = nil
        byShard[s.id.shard]?[s.id] = nil
        if byShard[s.id.shard]?.isEmpty == true { byShard[s.id.shard] = nil }
        dirtySeries[s.id] = nil
    }
}
