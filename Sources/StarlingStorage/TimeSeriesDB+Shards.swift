import StarlingChunk
import StarlingCore

/// The digest of one series' samples in one block: what replicas compare during anti-entropy.
/// `content` depends only on the merged samples (timestamps and value bits), never on how they
/// are cut into chunks or the order writes arrived in, so two replicas holding the same data
/// agree whatever their history.
public struct SeriesDigest: Sendable, Equatable {
    public var labels: Labels
    public var sampleCount: Int
    /// XXH64 over the merged samples (`i64 LE timestamp, u64 LE value bits` each).
    public var content: UInt64

    /// This series' term in a shard-block digest.
    public var combined: UInt64 {
        var b = labels.bytes
        b.appendLittleEndian(content)
        return XXH64.hash(b)
    }
}

/// The digest of one shard's data in one block: the wrapping sum of its series' combined
/// digests (order-independent), and how many series and samples went into it.
public struct ShardBlockDigest: Sendable, Equatable {
    public var shard: ShardID
    public var block: Int32
    public var series: Int
    public var samples: Int
    public var value: UInt64

    public static func of(shard: ShardID, block: Int32, _ series: [SeriesDigest]) -> ShardBlockDigest {
        ShardBlockDigest(
            shard: shard, block: block, series: series.count,
            samples: series.reduce(0) { $0 + $1.sampleCount },
            value: series.reduce(0) { $0 &+ $1.combined })
    }
}

extension TimeSeriesDB {
    /// Shards this node holds any data of (stored chunks or head samples). A skip-scan: one seek
    /// per shard.
    public func heldShards() throws -> Set<ShardID> {
        var shards = head.withLock { h in Set(h.byID.values.filter { $0.open != nil || !$0.outOfOrder.isEmpty }.map(\.id.shard)) }
        let it = try store.makeIterator(lowerBound: [Keyspace.chunkPrefix], upperBound: [Keyspace.chunkPrefix + 1])
        it.seekToFirst()
        while it.isValid {
            let shard: UInt16 = it.withKey { k in k.count >= 3 ? UInt16(k[1]) << 8 | UInt16(k[2]) : 0 }
            shards.insert(ShardID(rawValue: shard))
            if shard == UInt16.max { break }
            it.seek(Keyspace.chunkShardPrefix(shard: ShardID(rawValue: shard + 1)))
        }
        try it.checkError()
        return shards
    }

    /// Blocks in which `shard` has data, ascending (stored chunks and head samples).
    public func blocks(of shard: ShardID) throws -> [Int32] {
        var blocks = Set<Int32>(head.withLock { h in
            h.series(inShard: shard).flatMap { s -> [Int32] in
                (s.open != nil ? [s.openBlock] : []) + s.outOfOrder.map { Keyspace.block(ofMs: $0.timestampMs) }
            }
        })
        let prefix = Keyspace.chunkShardPrefix(shard: shard)
        let it = try store.makeIterator(lowerBound: prefix, upperBound: Keyspace.prefixEnd(prefix))
        it.seekToFirst()
        while it.isValid {
            let block: Int32 = it.withKey { Keyspace.readBlock($0, 3) }
            blocks.insert(block)
            if block == Int32.max { break }
            it.seek(Keyspace.chunkShardBlockPrefix(shard: shard, block: block + 1))
        }
        try it.checkError()
        return blocks.sorted()
    }

    /// Every series of `shard` with samples in `block`, with its chunks in that block (head chunks
    /// included), sorted by labels; optionally only the series in `only`. What a peer streams to
    /// bootstrap or repair a replica.
    public func series(of shard: ShardID, block: Int32, only: Set<Labels>? = nil) throws -> [SeriesChunks] {
        let startMs = Keyspace.blockStartMs(block)
        let endMs = startMs + Keyspace.blockDurationMs - 1
        // Series IDs with stored chunks in the block, then head series with samples in it.
        var ids = Set<SeriesID>()
        let prefix = Keyspace.chunkShardBlockPrefix(shard: shard, block: block)
        let it = try store.makeIterator(lowerBound: prefix, upperBound: Keyspace.prefixEnd(prefix))
        it.seekToFirst()
        while it.isValid {
            let parts = it.withKey { Keyspace.parseChunkKey($0) }
            guard let parts else { it.next(); continue }
            ids.insert(parts.id)
            // Skip the rest of this series' chunks in the block.
            var next = Keyspace.chunkSeriesBlockPrefix(id: parts.id, block: block)
            next = Keyspace.prefixEnd(next)
            it.seek(next)
        }
        try it.checkError()
        head.withLock { h in
            for s in h.series(inShard: shard) {
                if (s.open != nil && s.openBlock == block) || s.outOfOrder.contains(where: { Keyspace.block(ofMs: $0.timestampMs) == block }) {
                    ids.insert(s.id)
                }
            }
        }
        var out: [SeriesChunks] = []
        var iterator = ChunkIteratorCache()
        for (id, labels) in try labels(for: ids.map(\.rawValue).sorted()) {
            if let only, !only.contains(labels) { continue }
            let chunks = try chunks(of: id, startMs: startMs, endMs: endMs, iterator: &iterator)
            if !chunks.isEmpty { out.append(SeriesChunks(labels: labels, chunks: chunks)) }
        }
        out.sort { $0.labels < $1.labels }
        return out
    }

    /// Per-series digests of `shard` in `block`, sorted by labels, over samples at or before
    /// `untilMs` only: anti-entropy compares the settled past, not the last seconds that are
    /// still in flight between replicas. Series without such samples are left out.
    public func seriesDigests(of shard: ShardID, block: Int32, untilMs: Int64 = .max) throws -> [SeriesDigest] {
        let startMs = Keyspace.blockStartMs(block)
        let endMs = min(startMs + Keyspace.blockDurationMs - 1, untilMs)
        guard endMs >= startMs else { return [] }
        return try series(of: shard, block: block).compactMap { s in
            var it = SeriesSampleIterator(chunks: s.chunks, minTimeMs: startMs, maxTimeMs: endMs)
            var bytes: [UInt8] = []
            var count = 0
            while try it.next() {
                bytes.appendLittleEndian(it.timestampMs)
                bytes.appendLittleEndian(it.value.bitPattern)
                count += 1
            }
            return count == 0 ? nil : SeriesDigest(labels: s.labels, sampleCount: count, content: XXH64.hash(bytes))
        }
    }

    /// The digest of `shard` in `block`, over samples at or before `untilMs`.
    public func digest(of shard: ShardID, block: Int32, untilMs: Int64 = .max) throws -> ShardBlockDigest {
        .of(shard: shard, block: block, try seriesDigests(of: shard, block: block, untilMs: untilMs))
    }

    /// Stores samples received as chunks from a peer (bootstrap, repair, hint replay of chunked
    /// data): decoded and appended through the normal, durable path, so duplicates are dropped
    /// and everything the report counts as accepted is in the WAL.
    public func append(chunks items: [SeriesChunks], nowMs: Int64) throws -> AppendReport {
        try append(Self.samples(of: items), nowMs: nowMs)
    }

    /// The samples of chunks received from a peer, per series (series without any left out):
    /// what `append(chunks:nowMs:)` stores. Callers that append on a dedicated thread decode
    /// with this first, elsewhere.
    public static func samples(of items: [SeriesChunks]) throws -> [SeriesSamples] {
        var batch: [SeriesSamples] = []
        batch.reserveCapacity(items.count)
        for item in items {
            let samples = try SeriesSampleIterator.collect(chunks: item.chunks)
            if !samples.isEmpty { batch.append(SeriesSamples(labels: item.labels, samples: samples)) }
        }
        return batch
    }

    /// Deletes everything this node stores of `shard`: chunks of every block, dirty markers,
    /// series and last-block records (contiguous because a series ID starts with its shard), and
    /// the head's series of the shard. The head is checkpointed first, in the same critical
    /// section, so no WAL record refers to a deleted series. Postings of the shard's series stay
    /// until retention drops their blocks; readers skip postings whose series record is gone.
    /// Returns the number of series deleted.
    @discardableResult
    public func dropShard(_ shard: ShardID, nowMs: Int64) throws -> Int {
        let lowID = SeriesID(shard: shard, low: 0)
        let highID = SeriesID(shard: shard, low: 0xFFFF_FFFF_FFFF)
        return try head.withLock { (h: inout HeadState) throws -> Int in
            try checkpointLocked(&h, nowMs: nowMs)
            var kv = KVWriteBatch()
            let chunkPrefix = Keyspace.chunkShardPrefix(shard: shard)
            kv.deleteRange(chunkPrefix, Keyspace.prefixEnd(chunkPrefix))
            var dirty: [UInt8] = [Keyspace.dirtyPrefix]
            dirty.appendBigEndian(shard.rawValue)
            kv.deleteRange(dirty, Keyspace.prefixEnd(dirty))
            var deleted = 0
            let seriesEnd = Keyspace.prefixEnd(Keyspace.seriesKey(highID))
            let it = try store.makeIterator(lowerBound: Keyspace.seriesKey(lowID), upperBound: seriesEnd)
            it.seekToFirst()
            while it.isValid {
                deleted += 1
                it.next()
            }
            try it.checkError()
            kv.deleteRange(Keyspace.seriesKey(lowID), seriesEnd)
            kv.deleteRange(Keyspace.lastBlockKey(lowID), Keyspace.prefixEnd(Keyspace.lastBlockKey(highID)))
            try writeChunkBatch(kv)
            storedLabels.withLock { $0.invalidate() }
            // After the checkpoint every head series is persisted, so `deleted` counts them all.
            for s in h.series(inShard: shard) { h.evict(s) }
            h.totalSeries -= deleted
            return deleted
        }
    }
}
