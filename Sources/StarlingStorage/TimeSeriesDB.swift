import StarlingChunk
import StarlingCore
import Synchronization

/// A node's time-series store: series, inverted index, chunks, write-ahead log, over a
/// `KeyValueStore` (RocksDB in production). Pure logic: it never reads a clock (callers pass
/// `nowMs`) and performs I/O only through the store.
///
/// **Write path.** `append` resolves each series (creating its record and index entries when
/// new), then writes one WAL record with all the batch's samples, atomically with those records.
/// Only when that write succeeded are the samples applied to the in-memory head (open chunks and
/// out-of-order buffers), so what a reader sees is always durable. Chunks the head closes are
/// written right away; the WAL is cleared by checkpoints, which write the head's open chunks.
///
/// **Read path.** Postings of every block (UTC day) in the range, intersected per the matchers;
/// for each series, the head's chunks are copied first and the store's chunks read second, so a
/// chunk moving from head to store during a read is seen at least once (readers de-duplicate).
///
/// Thread-safe. Appends, checkpoints and compaction serialize on one lock; reads take it only
/// to copy head chunks. Calls block on store I/O: run them off the event loops.
public final class TimeSeriesDB: Querier, Sendable {
    public let options: Options
    let store: any KeyValueStore
    /// The key-value store under this database, for stores that share it in their own keyspace
    /// prefix (the hint store, `0x09`).
    public var keyValueStore: any KeyValueStore { store }
    let head: BlockingMutex<HeadState>
    /// Label sets of series read from the store by queries.
    let storedLabels: Mutex<StoredLabelsCache>
    /// Stored chunks of the newest block that queries read.
    let chunkCache: Mutex<RecentChunkCache>
    /// Postings lists that queries read.
    let postingsCache: PostingsCache
    /// What replaying the WAL did when this instance opened.
    public let recovery: RecoveryReport

    static let formatVersion: UInt8 = 1
    static let seqAllocationStep: UInt64 = 1 << 20

    public init(store: any KeyValueStore, options: Options = .init(), nowMs: Int64) throws {
        self.store = store
        self.options = options
        var state = HeadState()
        state.lastCheckpointMs = nowMs
        var report = RecoveryReport()
        try Self.openMeta(store: store, options: options, state: &state)
        state.totalSeries = try Self.countSeries(store)
        report.totalSeries = state.totalSeries
        // Replay runs on a local state, which then becomes the head.
        try Self.replay(store: store, options: options, state: &state, report: &report)
        self.recovery = report
        self.head = BlockingMutex(state)
        self.storedLabels = Mutex(StoredLabelsCache(capacity: options.storedLabelsCacheEntries))
        self.chunkCache = Mutex(RecentChunkCache(capacityBytes: options.chunkCacheBytes))
        self.postingsCache = PostingsCache(capacityBytes: options.postingsCacheBytes)
        // Make the replayed state durable and clear the WAL so the next start is fast.
        try checkpoint(nowMs: nowMs)
    }

    // MARK: - Open and replay

    private static func openMeta(store: any KeyValueStore, options: Options, state: inout HeadState) throws {
        let versionKey = Keyspace.metaKey("format")
        let shardKey = Keyspace.metaKey("shard_count")
        let blockKey = Keyspace.metaKey("block_ms")
        if let v = try store.get(versionKey) {
            guard v == [formatVersion] else {
                throw StorageError.incompatible("data format version \(v.first ?? 0), this build reads \(formatVersion)")
            }
            let shards = try store.get(shardKey).map { ByteReader($0) }
            var r = shards ?? ByteReader([])
            let count = (try? r.readBigEndian(UInt32.self)) ?? 0
            guard Int(count) == options.shardLayout.shardCount else {
                throw StorageError.incompatible(
                    "data directory was created with \(count) shards, configured \(options.shardLayout.shardCount); the shard count cannot change")
            }
            var br = ByteReader(try store.get(blockKey) ?? [])
            let blockMs = (try? br.readBigEndian(UInt64.self)) ?? 0
            guard Int64(blockMs) == Keyspace.blockDurationMs else {
                throw StorageError.incompatible("data directory uses \(blockMs) ms blocks, this build \(Keyspace.blockDurationMs)")
            }
        } else {
            var b = KVWriteBatch()
            b.put(versionKey, [formatVersion])
            var s: [UInt8] = []
            s.appendBigEndian(UInt32(options.shardLayout.shardCount))
            b.put(shardKey, s)
            var bm: [UInt8] = []
            bm.appendBigEndian(UInt64(Keyspace.blockDurationMs))
            b.put(blockKey, bm)
            try store.write(b, sync: true)
        }
        if let w = try store.get(Keyspace.metaKey("seq")) {
            var r = ByteReader(w)
            state.seqWatermark = try r.readBigEndian(UInt64.self, "seq watermark")
            state.nextSeq = state.seqWatermark
        }
        if let m = try store.get(Keyspace.metaKey("min_block")) {
            var r = ByteReader(m)
            state.minBlock = Int32(bitPattern: try r.readBigEndian(UInt32.self, "min block"))
        }
        if let m = try store.get(Keyspace.metaKey("max_block")) {
            var r = ByteReader(m)
            state.maxBlock = Int32(bitPattern: try r.readBigEndian(UInt32.self, "max block"))
        }
    }

    private static func countSeries(_ store: any KeyValueStore) throws -> Int {
        var n = 0
        let it = try store.makeIterator(lowerBound: [Keyspace.seriesPrefix], upperBound: [Keyspace.seriesPrefix + 1])
        it.seekToFirst()
        while it.isValid {
            n += 1
            it.next()
        }
        try it.checkError()
        return n
    }

    private static func replay(store: any KeyValueStore, options: Options, state: inout HeadState, report: inout RecoveryReport) throws {
        let it = try store.makeIterator(lowerBound: [Keyspace.walPrefix], upperBound: [Keyspace.walPrefix + 1])
        it.seekToFirst()
        var out = KVWriteBatch()
        while it.isValid {
            let seq = it.withKey { Keyspace.walSeq(fromKey: $0) }
            let value = it.value
            state.walBytesSinceCheckpoint += value.count
            report.walRecords += 1
            let entries: [WALRecord.Entry]
            do {
                entries = try WALRecord.decode(value)
            } catch {
                report.corruptRecords += 1
                it.next()
                continue
            }
            for e in entries {
                let series: HeadSeries
                if let s = state.byID[e.id] {
                    series = s
                } else {
                    guard let bytes = try store.get(Keyspace.seriesKey(e.id)) else {
                        report.corruptRecords += 1
                        continue
                    }
                    let labels = try Labels.validatingCanonicalBytes(bytes)
                    series = HeadSeries(id: e.id, labels: labels, persisted: true,
                                        lastIndexedBlock: try Self.readLastBlock(store, e.id))
                    state.register(series)
                    report.seriesLoaded += 1
                }
                report.samples += e.samples.count
                var ignored = AppendReport()
                e.samples.withUnsafeBufferPointer {
                    Self.apply($0, to: series, seq: seq, replaying: true, options: options, state: &state, out: &out, report: &ignored)
                }
            }
            state.lastAppliedSeq = max(state.lastAppliedSeq, seq)
            state.nextSeq = max(state.nextSeq, seq + 1)
            if out.byteCount > 4 << 20 {
                try store.write(out, sync: false)
                out = KVWriteBatch()
            }
            it.next()
        }
        try it.checkError()
        if !out.isEmpty { try store.write(out, sync: false) }
    }

    static func readLastBlock(_ store: any KeyValueStore, _ id: SeriesID) throws -> Int32 {
        guard let v = try store.get(Keyspace.lastBlockKey(id)) else { return Int32.min }
        var r = ByteReader(v)
        return Int32(bitPattern: try r.readBigEndian(UInt32.self, "last block"))
    }

    // MARK: - Append

    /// Stores `batch`. When this returns without throwing, every accepted sample is durable
    /// (it survives `kill -9` of the process) and visible to readers.
    ///
    /// One pass over the batch does everything a series needs while its objects are in cache:
    /// find or create it, index new blocks, encode its WAL entry and apply its samples to the
    /// head. Only then is the WAL record written. The head therefore holds a batch's samples a
    /// moment before they are durable; if that write fails, the store refuses every further
    /// append until a restart (which replays the WAL), so nothing is acknowledged that is not
    /// durable, and the in-memory head of a failed store is only read, never built upon.
    public func append(_ batch: [SeriesSamples], nowMs: Int64) throws -> AppendReport {
        var report = AppendReport()
        let oldestAllowed = nowMs - options.retentionMs
        try head.withLock { (h: inout HeadState) throws in
            if let failure = h.failure { throw StorageError.failed(failure) }
            var kv = KVWriteBatch()
            var out = KVWriteBatch()
            var wal = WALRecord.Writer(expectedSeries: batch.count, expectedSamples: batch.count)
            var newlyCreated: [HeadSeries] = []
            // Allocated when the first series is applied (0: none yet; numbers start at 1).
            var seq: UInt64 = 0

            do {
                // Software pipelining of the cache misses (see `Prefetch`): while item `i` is
                // stored, item `i + far` has its sample array and its series object requested
                // (the object found through the hash map is its candidate, so the series is
                // looked up only once), and item `i + near`, whose object has arrived by then,
                // its open chunk's buffer. A batch-wide first pass instead overflowed the caches:
                // the objects were gone again when their turn came. The label array is not
                // fetched: a known series matches by the array's identity alone.
                let far = Self.prefetchDistance, near = Self.prefetchDistance / 2
                var candidates = [Unmanaged<HeadSeries>?](repeating: nil, count: batch.count)
                for j in 0..<min(far, batch.count) { candidates[j] = Self.prefetch(batch, j, h) }
                for i in batch.indices {
                    if i + far < batch.count { candidates[i + far] = Self.prefetch(batch, i + far, h) }
                    // Candidates stay registered: an evict happens only on the failure path,
                    // after this loop.
                    if i + near < batch.count, let u = candidates[i + near] {
                        u._withUnsafeGuaranteedRef { $0.prefetchOpenChunk() }
                    }
                    guard batch[i].sampleCount > 0 else { continue }
                    // The common case passes the item's own sample array on, without a copy.
                    var fixed: [Sample]? = nil
                    if !Self.admissible(Self.samplesBuffer(batch, i), oldestAllowed: oldestAllowed) {
                        guard let admitted = admit(batch[i], oldestAllowed: oldestAllowed, report: &report) else { continue }
                        fixed = admitted
                    }
                    let series: HeadSeries
                    if let c = candidates[i], c._withUnsafeGuaranteedRef({ $0.labels.storageIdentity }) == Self.labelsIdentity(batch, i) {
                        // The item carries the very label array the series holds (both come
                        // from the ingest series cache): no comparison, and no reference count
                        // change on an array the decoding threads retain and release too.
                        series = c.takeUnretainedValue()
                    } else if let s = try findOrCreateSeries(batch[i], candidate: candidates[i], samples: fixed?.count ?? batch[i].sampleCount,
                                                             h: &h, newlyCreated: &newlyCreated, report: &report) {
                        series = s
                    } else {
                        continue
                    }
                    if seq == 0 { seq = allocateSeq(&h, &kv) }
                    if let fixed {
                        try fixed.withUnsafeBufferPointer {
                            try appendSamples($0, to: series, seq: seq, h: &h, kv: &kv, out: &out, wal: &wal, report: &report)
                        }
                    } else {
                        try appendSamples(Self.samplesBuffer(batch, i), to: series, seq: seq, h: &h, kv: &kv, out: &out, wal: &wal, report: &report)
                    }
                }
                if seq != 0 {
                    let record = wal.finish()
                    kv.put(Keyspace.walKey(seq), record)
                    // Series, postings and the WAL record: new postings make cached lists stale.
                    defer { postingsCache.invalidate(after: kv) }
                    try store.write(kv, sync: false)
                    h.walBytesSinceCheckpoint += record.count
                    h.lastAppliedSeq = seq
                }
            } catch {
                // Before any series was applied nothing changed but series created in memory,
                // which stay unpersisted. After, the head is ahead of the WAL: refuse further
                // appends; a restart replays a consistent WAL.
                if seq != 0 {
                    h.failure = "\(error)"
                    for s in newlyCreated { h.evict(s) }
                    h.totalSeries -= newlyCreated.count
                    // Chunks closed by this batch hold samples made durable by earlier ones.
                    if !out.isEmpty { writeChunks(out, &h) }
                }
                throw StorageError.failed("\(error)")
            }

            h.stats.samplesAppended += UInt64(report.accepted)
            h.stats.duplicateSamples += UInt64(report.duplicates)
            h.stats.outOfOrderSamples += UInt64(report.outOfOrder)
            for r in report.rejected { h.stats.rejectedSamples[r.reason, default: 0] += UInt64(r.samples) }
            if !out.isEmpty { writeChunks(out, &h) }
        }
        return report
    }

    /// The series of `item`, found in the head (`candidate` is what the prefetch pass found for
    /// its hash), read back from the store or created; `nil` if it may not be created (the
    /// rejection of its `samples` samples is added to `report`).
    private func findOrCreateSeries(_ item: SeriesSamples, candidate: Unmanaged<HeadSeries>?, samples: Int, h: inout HeadState,
                                    newlyCreated: inout [HeadSeries], report: inout AppendReport) throws -> HeadSeries? {
        if let s = h.series(item.labels, hash: item.labelsHash, candidate: candidate) { return s }
        switch try resolve(item.labels, hash: item.labelsHash, &h) {
        case .series(let s, let created):
            if created {
                newlyCreated.append(s)
                report.newSeries += 1
            }
            return s
        case .rejected(let reason, let detail):
            report.rejected.append(AppendRejection(labels: item.labels, reason: reason, samples: samples, detail: detail))
            return nil
        }
    }

    /// Indexes new blocks of `series`, adds its WAL entry and applies `samples` (sorted, within
    /// the storable range) to the head.
    private func appendSamples(_ samples: UnsafeBufferPointer<Sample>, to series: HeadSeries, seq: UInt64, h: inout HeadState, kv: inout KVWriteBatch,
                               out: inout KVWriteBatch, wal: inout WALRecord.Writer, report: inout AppendReport) throws {
        if !series.persisted {
            kv.put(Keyspace.seriesKey(series.id), series.labels.bytes)
            series.persisted = true
        }
        try indexBlocks(for: series, samples: samples, into: &kv, h: &h)
        wal.add(series.id, samples)
        Self.apply(samples, to: series, seq: seq, replaying: false, options: options, state: &h, out: &out, report: &report)
    }

    /// Requests the lines storing `batch[j]` touches first: its sample array (if not inline)
    /// and its series object, which it returns as the candidate for the lookup.
    @inline(__always)
    private static func prefetch(_ batch: [SeriesSamples], _ j: Int, _ h: borrowing HeadState) -> Unmanaged<HeadSeries>? {
        if let p = batch[j].samplesStorageIdentity { Prefetch.raw(UnsafeMutableRawPointer(mutating: p)) }
        return h.prefetchSeries(hash: batch[j].labelsHash)
    }

    /// The samples of `batch[i]`, read without retaining their array (whose line the decoding
    /// thread's allocations next to it keep taking away). Valid while `batch` is, which `append`
    /// neither changes nor outlives (see `SeriesSamples.samples(in:at:)`).
    @inline(__always)
    private static func samplesBuffer(_ batch: [SeriesSamples], _ i: Int) -> UnsafeBufferPointer<Sample> {
        batch.withUnsafeBufferPointer { SeriesSamples.samples(in: $0, at: i) }
    }

    /// The identity of `batch[i]`'s label array (see `Labels.storageIdentity`), read without
    /// retaining it.
    @inline(__always)
    private static func labelsIdentity(_ batch: [SeriesSamples], _ i: Int) -> UnsafeRawPointer {
        batch.withUnsafeBufferPointer { $0[i].labels.storageIdentity }
    }

    /// Whether every sample may be stored as is: sorted, none too old or beyond the key range.
    @inline(__always)
    private static func admissible(_ samples: UnsafeBufferPointer<Sample>, oldestAllowed: Int64) -> Bool {
        guard let first = samples.first, first.timestampMs >= oldestAllowed else { return false }
        var prev = first.timestampMs
        for s in samples.dropFirst() {
            if s.timestampMs < prev { return false }
            prev = s.timestampMs
        }
        return prev <= maxTimestampMs
    }

    /// The samples of `item` that may be stored, sorted by timestamp: those older than the
    /// retention period or beyond the key layout's range are reported in `report` and dropped.
    /// `nil` when none is left.
    private func admit(_ item: SeriesSamples, oldestAllowed: Int64, report: inout AppendReport) -> [Sample]? {
        var samples = item.samples
        if !Self.isSorted(samples) { samples.sort { $0.timestampMs < $1.timestampMs } }
        guard let first = samples.first, let last = samples.last else { return nil }
        if first.timestampMs < oldestAllowed {
            var cut = 0
            while cut < samples.count && samples[cut].timestampMs < oldestAllowed { cut += 1 }
            report.rejected.append(AppendRejection(
                labels: item.labels, reason: .tooOld, samples: cut,
                detail: "\(cut) sample(s) older than the retention period (oldest allowed \(oldestAllowed) ms)"))
            samples.removeFirst(cut)
        }
        if last.timestampMs > Self.maxTimestampMs {
            let bad = samples.filter { $0.timestampMs > Self.maxTimestampMs }.count
            report.rejected.append(AppendRejection(
                labels: item.labels, reason: .timestampOutOfRange, samples: bad,
                detail: "timestamp \(last.timestampMs) ms is beyond the supported range"))
            samples.removeLast(bad)
        }
        return samples.isEmpty ? nil : samples
    }

    /// How many series ahead the append requests a series' object and arrays; at half that
    /// distance, its open chunk's buffer. Far enough for a load from memory to finish while the
    /// series in between are stored, near enough that the lines are still in cache.
    static let prefetchDistance = 16

    /// Largest timestamp whose block number fits the key layout.
    static let maxTimestampMs: Int64 = Int64(Int32.max - 1) * Keyspace.blockDurationMs

    private static func isSorted(_ s: [Sample]) -> Bool {
        var prev = Int64.min
        for x in s {
            if x.timestampMs < prev { return false }
            prev = x.timestampMs
        }
        return true
    }

    private enum Resolution {
        case series(HeadSeries, created: Bool)
        case rejected(AppendRejection.Reason, String)
    }

    /// Finds or creates the series for `labels`: tries the preferred ID derived from the label
    /// hash and probes forward past IDs taken by other label sets (a 48-bit collision).
    private func resolve(_ labels: Labels, hash: UInt64, _ h: inout HeadState) throws -> Resolution {
        var id = options.shardLayout.preferredSeriesID(forHash: hash)
        while true {
            if let s = h.byID[id] {
                if s.labels == labels { return .series(s, created: false) }
                id = id.nextProbe
                continue
            }
            if let bytes = try store.get(Keyspace.seriesKey(id)) {
                if bytes == labels.bytes {
                    let s = HeadSeries(id: id, labels: labels, labelsHash: hash, persisted: true,
                                       lastIndexedBlock: try Self.readLastBlock(store, id))
                    h.register(s)
                    return .series(s, created: false)
                }
                id = id.nextProbe
                continue
            }
            if let max = options.maxSeries, h.totalSeries >= max {
                return .rejected(.seriesLimit, "the store holds \(h.totalSeries) series, the limit (storage.max_series) is \(max)")
            }
            var hasNUL = false
            labels.forEachRaw { n, v in if n.contains(0) || v.contains(0) { hasNUL = true } }
            if hasNUL { return .rejected(.invalidLabels, "label names and values must not contain NUL bytes") }
            let s = HeadSeries(id: id, labels: labels, labelsHash: hash, persisted: false, lastIndexedBlock: Int32.min)
            h.register(s)
            h.totalSeries += 1
            return .series(s, created: true)
        }
    }

    /// Adds postings to `kv` for every block of `samples` the series is not yet indexed in, and
    /// records them as indexed (`append` refuses further work if `kv` then fails to be written).
    private func indexBlocks(for s: HeadSeries, samples: UnsafeBufferPointer<Sample>, into kv: inout KVWriteBatch, h: inout HeadState) throws {
        var blocks: [Int32] = []
        var last: Int32? = nil
        for sample in samples {
            let b = Keyspace.block(ofMs: sample.timestampMs)
            if b == last { continue }
            last = b
            if b == s.lastIndexedBlock || s.olderIndexedBlocks.contains(b) || blocks.contains(b) { continue }
            if b < s.lastIndexedBlock, try store.get(Keyspace.allPostingKey(block: b, id: s.id)) != nil {
                s.olderIndexedBlocks.insert(b)
                continue
            }
            blocks.append(b)
        }
        guard !blocks.isEmpty else { return }
        var newest = s.lastIndexedBlock
        for b in blocks {
            for key in Keyspace.postingKeys(block: b, labels: s.labels, id: s.id) { kv.put(key, []) }
            newest = max(newest, b)
        }
        if newest > s.lastIndexedBlock {
            var v: [UInt8] = []
            v.appendBigEndian(UInt32(bitPattern: newest))
            kv.put(Keyspace.lastBlockKey(s.id), v)
        }
        // Track the block range holding data.
        let lo = blocks.min()!, hi = blocks.max()!
        if h.minBlock == nil || lo < h.minBlock! {
            h.minBlock = lo
            var v: [UInt8] = []
            v.appendBigEndian(UInt32(bitPattern: lo))
            kv.put(Keyspace.metaKey("min_block"), v)
        }
        if h.maxBlock == nil || hi > h.maxBlock! {
            h.maxBlock = hi
            var v: [UInt8] = []
            v.appendBigEndian(UInt32(bitPattern: hi))
            kv.put(Keyspace.metaKey("max_block"), v)
        }
        for b in blocks where b <= s.lastIndexedBlock { s.olderIndexedBlocks.insert(b) }
        s.lastIndexedBlock = max(s.lastIndexedBlock, newest)
    }

    /// Hands out a sequence number, persisting a new high-water mark every `seqAllocationStep`
    /// numbers so numbers are never reused after a restart.
    private func allocateSeq(_ h: inout HeadState, _ kv: inout KVWriteBatch) -> UInt64 {
        let seq = h.nextSeq
        h.nextSeq += 1
        if h.nextSeq >= h.seqWatermark {
            h.seqWatermark = h.nextSeq + Self.seqAllocationStep
            var v: [UInt8] = []
            v.appendBigEndian(h.seqWatermark)
            kv.put(Keyspace.metaKey("seq"), v)
        }
        return seq
    }

    /// Applies durable samples (sorted by time) to a series' head state. Closed chunks and
    /// out-of-order flushes are added to `out`.
    static func apply(_ samples: UnsafeBufferPointer<Sample>, to s: HeadSeries, seq: UInt64, replaying: Bool, options: Options,
                      state h: inout HeadState, out: inout KVWriteBatch, report: inout AppendReport) {
        for sample in samples {
            let b = Keyspace.block(ofMs: sample.timestampMs)
            // The open chunk is mutated in place (`s.open!.append`), never copied out into a
            // local: a second reference to its bytes would make every append copy the whole
            // chunk (copy-on-write), turning the hot path quadratic in the chunk size.
            if let maxTimeMs = s.open?.maxTimeMs {
                if sample.timestampMs > maxTimeMs {
                    if b == s.openBlock && s.open!.count < options.maxSamplesPerChunk {
                        s.open!.append(sample)
                    } else {
                        closeOpen(s, &h, &out)
                        startOpen(s, sample, block: b, seq: seq, replaying: replaying, sweptBefore: h.sweptBefore, options: options, out: &out)
                    }
                    report.accepted += 1
                } else if sample.timestampMs == maxTimeMs && sample.value.bitPattern == s.open!.lastValueBits {
                    report.duplicates += 1
                } else if sample.timestampMs >= s.open!.minTimeMs && s.open!.contains(sample) {
                    report.duplicates += 1
                } else {
                    switch s.insertOutOfOrder(sample) {
                    case .duplicate: report.duplicates += 1
                    case .inserted, .replaced, .discarded:
                        report.accepted += 1
                        report.outOfOrder += 1
                    }
                }
            } else {
                startOpen(s, sample, block: b, seq: seq, replaying: replaying, sweptBefore: h.sweptBefore, options: options, out: &out)
                report.accepted += 1
            }
        }
        if s.outOfOrder.count >= options.maxOutOfOrderBuffer {
            flushOutOfOrder(s, uniq: seq, options: options, state: &h, out: &out)
        }
        if !s.dirty {
            s.dirty = true
            h.dirtySeries[s.id] = s
        }
    }

    private static func startOpen(_ s: HeadSeries, _ sample: Sample, block: Int32, seq: UInt64, replaying: Bool, sweptBefore: Int32,
                                  options: Options, out: inout KVWriteBatch) {
        // Room for the default chunk size up front; a longer chunk grows its buffer as it fills,
        // so a large `maxSamplesPerChunk` does not reserve its full size for every series.
        s.open = OpenChunk(sample, expectedSamples: min(options.maxSamplesPerChunk, ChunkCodec.defaultSamplesPerChunk))
        s.openBlock = block
        s.openUniq = seq
        if replaying || block < sweptBefore {
            // The chunk open before the crash may overlap this one, or maintenance closed a
            // partial chunk of this series in this ended block: merge them at compaction.
            out.put(Keyspace.dirtyKey(id: s.id, block: block), [])
        }
    }

    static func closeOpen(_ s: HeadSeries, _ h: inout HeadState, _ out: inout KVWriteBatch) {
        guard let open = s.open else { return }
        let chunk = open.close()
        out.put(Keyspace.chunkKey(id: s.id, block: s.openBlock, minTimeMs: chunk.minTimeMs, uniq: s.openUniq, kind: .inOrder),
                Keyspace.chunkValue(chunk))
        h.stats.chunksWritten += 1
        h.chunkMoves &+= 1
        s.open = nil
    }

    static func flushOutOfOrder(_ s: HeadSeries, uniq: UInt64, options: Options, state h: inout HeadState, out: inout KVWriteBatch) {
        guard !s.outOfOrder.isEmpty else { return }
        var start = 0
        while start < s.outOfOrder.count {
            let b = Keyspace.block(ofMs: s.outOfOrder[start].timestampMs)
            var end = start
            while end < s.outOfOrder.count && Keyspace.block(ofMs: s.outOfOrder[end].timestampMs) == b { end += 1 }
            for chunk in ChunkOps.encode(Array(s.outOfOrder[start..<end]), maxPerChunk: options.maxSamplesPerChunk) {
                out.put(Keyspace.chunkKey(id: s.id, block: b, minTimeMs: chunk.minTimeMs, uniq: uniq, kind: .outOfOrder),
                        Keyspace.chunkValue(chunk))
                h.stats.chunksWritten += 1
            }
            out.put(Keyspace.dirtyKey(id: s.id, block: b), [])
            start = end
        }
        s.outOfOrder.removeAll(keepingCapacity: false)
        h.chunkMoves &+= 1
    }

    /// Writes chunks whose samples are already durable in the WAL. A failure is not the
    /// caller's problem: the writes are kept and retried by the next checkpoint, which keeps
    /// the WAL until they succeed.
    private func writeChunks(_ out: KVWriteBatch, _ h: inout HeadState) {
        do {
            try writeChunkBatch(out)
        } catch {
            h.pendingWrites.append(contentsOf: out)
        }
    }

    /// Writes a batch that puts or deletes chunk keys (or postings), then drops the cached chunks
    /// and postings it makes stale (`RecentChunkCache`, `PostingsCache`). Called under the head
    /// lock, which readers hold while they copy head chunks, so a reader never pairs a cached
    /// entry with a head it no longer matches.
    func writeChunkBatch(_ kv: KVWriteBatch) throws {
        defer {
            chunkCache.withLock { $0.invalidate(after: kv) }
            postingsCache.invalidate(after: kv)
        }
        try store.write(kv, sync: false)
    }

    // MARK: - Maintenance

    /// Periodic work; call every few seconds. Closes chunks of finished blocks, evicts idle
    /// series from memory, checkpoints when due, compacts finished blocks with fragmented or
    /// out-of-order chunks (bounded per call) and drops blocks past retention.
    public func maintenance(nowMs: Int64) throws -> MaintenanceReport {
        var report = MaintenanceReport()
        let currentBlock = Keyspace.block(ofMs: nowMs)
        let due: Bool = try head.withLock { (h: inout HeadState) throws in
            if let failure = h.failure { throw StorageError.failed(failure) }
            // Close open chunks of blocks that ended; evict series with nothing in memory.
            var out = KVWriteBatch()
            var evict: [HeadSeries] = []
            h.sweptBefore = max(h.sweptBefore, currentBlock)
            for s in h.byID.values {
                if s.open != nil, s.openBlock < currentBlock {
                    Self.closeOpen(s, &h, &out)
                    report.chunksClosed += 1
                }
                if s.open == nil {
                    if !s.outOfOrder.isEmpty {
                        Self.flushOutOfOrder(s, uniq: allocateSeq(&h, &out), options: options, state: &h, out: &out)
                    }
                    evict.append(s)
                }
            }
            if !out.isEmpty { writeChunks(out, &h) }
            for s in evict where !s.dirty { h.evict(s) }
            report.seriesEvicted = evict.filter { !$0.dirty }.count
            return nowMs - h.lastCheckpointMs >= options.checkpointIntervalMs
                || h.walBytesSinceCheckpoint >= options.checkpointWALBytes
        }
        if due {
            try checkpoint(nowMs: nowMs)
            report.checkpointed = true
        }
        report.blocksCompacted = try compactDirtyBlocks(nowMs: nowMs)
        let (dropped, deleted) = try applyRetention(nowMs: nowMs)
        report.blocksDropped = dropped
        report.seriesDeleted = deleted
        return report
    }

    /// Writes every changed open chunk and out-of-order buffer, then deletes the WAL records
    /// they cover — all in one atomic write. Afterwards a restart replays only newer records.
    public func checkpoint(nowMs: Int64) throws {
        try head.withLock { (h: inout HeadState) throws in try checkpointLocked(&h, nowMs: nowMs) }
    }

    func checkpointLocked(_ h: inout HeadState, nowMs: Int64) throws {
        if let failure = h.failure { throw StorageError.failed(failure) }
        var kv = h.pendingWrites
        for s in h.dirtySeries.values {
            if let open = s.open {
                // The smallest encoding, as when the chunk closes: a checkpointed partial chunk
                // is what the disk holds until the chunk fills, and after a flush or shutdown
                // often for good. Costs one decode (and a decimal encode) per changed series
                // per checkpoint, under the lock — milliseconds per 10,000 series.
                let chunk = open.close()
                kv.put(Keyspace.chunkKey(id: s.id, block: s.openBlock, minTimeMs: chunk.minTimeMs, uniq: s.openUniq, kind: .inOrder),
                       Keyspace.chunkValue(chunk))
            }
            if !s.outOfOrder.isEmpty {
                Self.flushOutOfOrder(s, uniq: allocateSeq(&h, &kv), options: options, state: &h, out: &kv)
            }
            s.dirty = false
        }
        let upTo = h.lastAppliedSeq
        kv.deleteRange(Keyspace.walKey(0), Keyspace.walKey(upTo + 1))
        var v: [UInt8] = []
        v.appendBigEndian(upTo)
        kv.put(Keyspace.metaKey("checkpoint"), v)
        do {
            try writeChunkBatch(kv)
        } catch {
            // Head state is intact and the WAL still holds everything; try again later.
            for s in h.dirtySeries.values { s.dirty = true }
            throw error
        }
        h.pendingWrites = KVWriteBatch()
        h.dirtySeries.removeAll(keepingCapacity: true)
        h.walBytesSinceCheckpoint = 0
        h.lastCheckpointMs = nowMs
        h.stats.checkpoints += 1
    }

    /// Merges the chunks of series-blocks marked dirty (out-of-order data, chunks cut by a
    /// restart or by maintenance in a backfilled block) into non-overlapping chunks, once their
    /// block ended `compactionDelayMs` ago.
    func compactDirtyBlocks(nowMs: Int64) throws -> Int {
        let latestCompactable = Keyspace.block(ofMs: nowMs - options.compactionDelayMs) - 1
        var candidates: [(SeriesID, Int32, [UInt8])] = []
        try store.scan(prefix: [Keyspace.dirtyPrefix]) { k, _ in
            let parsed = k.withUnsafeBytes { Keyspace.parseDirtyKey($0) }
            if let (id, block) = parsed, block <= latestCompactable { candidates.append((id, block, k)) }
            return candidates.count < options.compactionBatch
        }
        var compacted = 0
        for (id, block, dirtyKey) in candidates {
            try head.withLock { (h: inout HeadState) throws in
                // The head never writes in-order chunks into a finished block; out-of-order
                // flushes happen under this lock, so the chunk set is stable while we hold it.
                if let s = h.byID[id], s.open != nil, s.openBlock == block { return }
                var keys: [[UInt8]] = []
                var chunks: [EncodedChunk] = []
                let prefix = Keyspace.chunkSeriesBlockPrefix(id: id, block: block)
                try store.scan(prefix: prefix) { k, v in
                    guard let parts = k.withUnsafeBytes({ Keyspace.parseChunkKey($0) }) else { return true }
                    keys.append(k)
                    if let c = try? Keyspace.decodeChunkValue(v, minTimeMs: parts.minTimeMs) { chunks.append(c) }
                    return true
                }
                var kv = KVWriteBatch()
                for k in keys { kv.delete(k) }
                kv.delete(dirtyKey)
                if !chunks.isEmpty {
                    let uniq = allocateSeq(&h, &kv)
                    for c in try ChunkEncoder.compact(chunks, maxSamplesPerChunk: options.compactedChunkSamples) {
                        kv.put(Keyspace.chunkKey(id: id, block: block, minTimeMs: c.minTimeMs, uniq: uniq, kind: .compacted),
                               Keyspace.chunkValue(c))
                    }
                }
                try writeChunkBatch(kv)
                h.stats.compactions += 1
                compacted += 1
            }
        }
        return compacted
    }

    /// Drops whole blocks older than the retention period: chunks and dirty markers of every
    /// shard and the blocks' index with range deletes, then the records of series that have no
    /// data left. Returns (blocks dropped, series deleted).
    func applyRetention(nowMs: Int64) throws -> (Int, Int) {
        let cutoff = Keyspace.block(ofMs: nowMs - options.retentionMs)
        let (oldest, seriesToCheck): (Int32?, Bool) = head.withLock { h in (h.minBlock, h.minBlock.map { $0 < cutoff } ?? false) }
        guard let oldest, seriesToCheck else { return (0, 0) }
        var kv = KVWriteBatch()
        for shard in 0..<options.shardLayout.shardCount {
            let sid = ShardID(shard)
            kv.deleteRange(Keyspace.chunkShardBlockPrefix(shard: sid, block: oldest),
                           Keyspace.chunkShardBlockPrefix(shard: sid, block: cutoff))
            var dirtyFrom: [UInt8] = [Keyspace.dirtyPrefix]
            dirtyFrom.appendBigEndian(sid.rawValue)
            var dirtyTo = dirtyFrom
            Keyspace.appendBlock(&dirtyFrom, oldest)
            Keyspace.appendBlock(&dirtyTo, cutoff)
            kv.deleteRange(dirtyFrom, dirtyTo)
        }
        kv.deleteRange(Keyspace.postingsBlockPrefix(block: oldest), Keyspace.postingsBlockPrefix(block: cutoff))
        var v: [UInt8] = []
        v.appendBigEndian(UInt32(bitPattern: cutoff))
        kv.put(Keyspace.metaKey("min_block"), v)

        // Series whose newest indexed block is gone have no data left.
        var deleted = 0
        try head.withLock { (h: inout HeadState) throws in
            try store.scan(prefix: [Keyspace.lastBlockPrefix]) { k, value in
                var r = ByteReader(value)
                let last = Int32(bitPattern: try r.readBigEndian(UInt32.self, "last block"))
                if last < cutoff {
                    let id = k.withUnsafeBytes { Keyspace.seriesID(fromSeriesKey: $0) }
                    if let s = h.byID[id], s.open != nil || !s.outOfOrder.isEmpty { return true }
                    if let s = h.byID[id] { h.evict(s) }
                    kv.delete(Keyspace.seriesKey(id))
                    kv.delete(k)
                    deleted += 1
                }
                return true
            }
            try writeChunkBatch(kv)
            if deleted > 0 { storedLabels.withLock { $0.invalidate() } }
            h.totalSeries -= deleted
            h.minBlock = cutoff
        }
        // Reclaim the space now rather than whenever compaction happens to reach these ranges.
        try store.compactRange(begin: [Keyspace.chunkPrefix], end: [Keyspace.chunkPrefix + 1])
        try store.compactRange(begin: Keyspace.postingsBlockPrefix(block: oldest), end: Keyspace.postingsBlockPrefix(block: cutoff))
        return (Int(cutoff) - Int(oldest), deleted)
    }

    /// Writes everything held in memory to the store and flushes the store's buffers, so that
    /// on-disk figures are complete (benchmarks) and a restart replays nothing (shutdown).
    /// With `compact`, first does what maintenance would over time — merges every marked
    /// series-block that is due (`compactDirtyBlocks`, batch after batch) — and afterwards
    /// compacts the whole store, so deleted WAL records and overwritten chunk versions stop
    /// taking space: the steady-state size, for benchmarks and operators (it rewrites every
    /// file: expensive on large stores).
    public func flush(nowMs: Int64, compact: Bool = false) throws {
        try checkpoint(nowMs: nowMs)
        if compact {
            while try compactDirtyBlocks(nowMs: nowMs) > 0 {}
        }
        try store.flush()
        if compact { try store.compactRange(begin: nil, end: nil) }
    }

    public func close(nowMs: Int64) throws {
        try flush(nowMs: nowMs)
    }

    public func statistics() -> StorageStatistics {
        var s = head.withLock { h in
            var s = h.stats
            s.totalSeries = h.totalSeries
            s.headSeries = h.byID.count
            s.walBytesSinceCheckpoint = h.walBytesSinceCheckpoint
            s.minBlock = h.minBlock
            s.maxBlock = h.maxBlock
            return s
        }
        chunkCache.withLock { c in
            s.chunkCacheHits = c.hits
            s.chunkCacheMisses = c.misses
            s.chunkCacheBytes = c.cost
            s.chunkCacheEntries = c.count
        }
        let p = postingsCache.statistics
        s.postingsCacheHits = p.hits
        s.postingsCacheMisses = p.misses
        s.postingsCacheBytes = p.bytes
        s.diskBytes = store.diskUsageBytes()
        return s
    }
}
