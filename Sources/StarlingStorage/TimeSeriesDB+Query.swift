import StarlingCore
import Synchronization

extension TimeSeriesDB {
    /// Blocks to consult for `[startMs, endMs]`, clamped to the blocks that hold data and to the
    /// retention period (an unbounded range must not walk millions of empty days).
    func blocks(startMs: Int64, endMs: Int64) -> ClosedRange<Int32>? {
        let (minBlock, maxBlock) = head.withLock { ($0.minBlock, $0.maxBlock) }
        guard let minBlock, let maxBlock, startMs <= endMs else { return nil }
        let lo = max(Keyspace.block(ofMs: max(startMs, -Self.maxTimestampMs)), minBlock)
        let hi = min(Keyspace.block(ofMs: min(endMs, Self.maxTimestampMs)), maxBlock)
        return lo <= hi ? lo...hi : nil
    }

    /// Series IDs matching `matchers` in any block of the range, optionally limited to shards.
    func postings(_ matchers: [LabelMatcher], startMs: Int64, endMs: Int64, shards: ShardSet?) throws -> [UInt64] {
        guard let range = blocks(startMs: startMs, endMs: endMs) else { return [] }
        let index = IndexReader(store: store, cache: postingsCache)
        var ids: [UInt64] = []
        for b in range {
            let p = try index.postings(block: b, matchers: matchers)
            ids = ids.isEmpty ? p : Postings.union(ids, p)
        }
        if let shards {
            ids = ids.filter { shards.contains(SeriesID(rawValue: $0).shard) }
        }
        return ids
    }

    /// Label sets of `ids`, from the head when resident, else from the stored-labels cache, else
    /// from the store.
    func labels(for ids: [UInt64]) throws -> [(SeriesID, Labels)] {
        var out: [(SeriesID, Labels)] = []
        out.reserveCapacity(ids.count)
        var missing: [SeriesID] = []
        head.withLock { h in
            for raw in ids {
                let id = SeriesID(rawValue: raw)
                if let s = h.byID[id] { out.append((id, s.labels)) } else { missing.append(id) }
            }
        }
        if missing.isEmpty { return out }
        var unknown: [SeriesID] = []
        let generation = storedLabels.withLock { c in
            for id in missing {
                if let l = c.get(id) { out.append((id, l)) } else { unknown.append(id) }
            }
            return c.generation
        }
        if unknown.isEmpty { return out }
        var read: [(SeriesID, Labels)] = []
        for id in unknown {
            guard let bytes = try store.get(Keyspace.seriesKey(id)) else { continue }  // deleted by retention meanwhile
            read.append((id, try Labels.validatingCanonicalBytes(bytes)))
        }
        storedLabels.withLock { c in
            for (id, l) in read { c.insert(id, l, ifGeneration: generation) }
        }
        out += read
        return out
    }

    /// The chunks of series `id` overlapping `[startMs, endMs]`: head chunks first, then the
    /// store's (see the read-path note on `TimeSeriesDB`). `iterator` caches the store iterator
    /// across calls of one query; it is replaced when chunks left the head since it was made,
    /// because its snapshot of the store would not hold them.
    func chunks(of id: SeriesID, startMs: Int64, endMs: Int64, iterator: inout ChunkIteratorCache) throws -> [EncodedChunk] {
        let (headChunks, moves, newest): ([EncodedChunk], UInt64, Int32?) = head.withLock { h in
            guard let s = h.byID[id] else { return ([], h.chunkMoves, h.maxBlock) }
            var c: [EncodedChunk] = []
            if let open = s.open, open.maxTimeMs >= startMs, open.minTimeMs <= endMs { c.append(open.snapshot()) }
            let ooo = s.outOfOrder.filter { $0.timestampMs >= startMs && $0.timestampMs <= endMs }
            if !ooo.isEmpty { c += ChunkOps.encode(ooo, maxPerChunk: Int.max) }
            return (c, h.chunkMoves, h.maxBlock)
        }
        var out = headChunks
        guard let range = blocks(startMs: startMs, endMs: endMs) else { return out }
        if iterator.chunkMoves != moves {
            // The cached iterators serve every series of a read as long as no chunk moves from
            // the head to the store meanwhile: their snapshot would not hold it.
            iterator = ChunkIteratorCache(chunkMoves: moves)
        }
        for b in range {
            // The newest block is what dashboards and rules read over and over, and the block
            // before it too while their windows reach back past midnight: a series' chunks there
            // come from the cache, or are read in full (from `startMs` on) and cached. Only the
            // last quarter of the day before: a read of that whole day (a 24-hour panel) would
            // otherwise pour it into the cache and evict the newest day's entries.
            let cacheKey = RecentChunkCache.Key(id: id, block: b)
            let cacheable = options.chunkCacheBytes > 0 && newest.map { newest in
                b == newest || (b == newest - 1 && startMs >= Keyspace.blockStartMs(newest) - Keyspace.blockDurationMs / 4)
            } == true
            if cacheable, let cached = chunkCache.withLock({ $0.lookup(cacheKey, startMs: startMs) }) {
                for c in cached where c.minTimeMs <= endMs && c.maxTimeMs >= startMs { out.append(c) }
                continue
            }
            let (it, token) = try iterator.iterator(forBlock: b, store: store, cache: chunkCache)
            let prefix = Keyspace.chunkSeriesBlockPrefix(id: id, block: b)
            let steps = iterator.steps
            let wasPositioned = it.isValid
            let stepped = it.advance(to: prefix, steps: steps)
            if wasPositioned { iterator.record(steps: steps, steppedThere: stepped) }
            var fill: [EncodedChunk] = []
            while it.isValid {
                let parts: Keyspace.ChunkKeyParts? = it.withKey { k in
                    k.starts(with: prefix) ? Keyspace.parseChunkKey(k) : nil
                }
                guard let parts else { break }
                if parts.minTimeMs > endMs && !cacheable { break }
                let chunk = try Keyspace.decodeChunkValue(it.value, minTimeMs: parts.minTimeMs)
                if chunk.maxTimeMs >= startMs {
                    if parts.minTimeMs <= endMs { out.append(chunk) }
                    if cacheable { fill.append(chunk) }
                }
                it.next()
            }
            try it.checkError()
            if cacheable {
                chunkCache.withLock { $0.insert(cacheKey, fromMs: startMs, chunks: fill, token: token) }
            }
        }
        return out
    }

    // MARK: - Querier

    public func select(_ matchers: [LabelMatcher], hints: SelectHints) async throws -> any SeriesSet {
        let ids = try postings(matchers, startMs: hints.startMs, endMs: hints.endMs, shards: hints.shards)
        var items = try labels(for: ids).filter { matchers.matches($0.1) }
        items.sortByLabels { $0.1 }
        return LocalSeriesSet(db: self, items: items, startMs: hints.startMs, endMs: hints.endMs, limit: hints.limit)
    }

    public func series(_ matcherSets: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[Labels]> {
        var ids: [UInt64] = []
        for set in matcherSets.isEmpty ? [[]] : matcherSets {
            ids = Postings.union(ids, try postings(set, startMs: startMs, endMs: endMs, shards: nil))
        }
        var found: [Labels] = []
        var iterator = ChunkIteratorCache()
        for (id, labels) in try labels(for: ids) {
            guard matcherSets.isEmpty || matcherSets.contains(where: { $0.matches(labels) }) else { continue }
            if try !chunks(of: id, startMs: startMs, endMs: endMs, iterator: &iterator).isEmpty { found.append(labels) }
        }
        found.sort()
        var warnings: [String] = []
        if let limit, found.count > limit {
            found.removeLast(found.count - limit)
            warnings.append("results truncated due to limit")
        }
        return QueryResult(found, warnings: warnings)
    }

    public func labelNames(_ matcherSets: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[String]> {
        var names = Set<String>()
        if matcherSets.isEmpty {
            if let range = blocks(startMs: startMs, endMs: endMs) {
                let index = IndexReader(store: store, cache: postingsCache)
                for b in range { names.formUnion(try index.labelNames(block: b)) }
            }
        } else {
            for set in matcherSets {
                let ids = try postings(set, startMs: startMs, endMs: endMs, shards: nil)
                for (_, l) in try labels(for: ids) { for label in l.array { names.insert(label.name) } }
            }
        }
        return Self.sortedLimited(names, limit)
    }

    public func labelValues(_ name: String, _ matcherSets: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[String]> {
        var values = Set<String>()
        if matcherSets.isEmpty {
            if let range = blocks(startMs: startMs, endMs: endMs) {
                let index = IndexReader(store: store, cache: postingsCache)
                for b in range { values.formUnion(try index.labelValues(block: b, name: name)) }
            }
        } else {
            for set in matcherSets {
                let ids = try postings(set, startMs: startMs, endMs: endMs, shards: nil)
                for (_, l) in try labels(for: ids) { if let v = l.get(name) { values.insert(v) } }
            }
        }
        return Self.sortedLimited(values, limit)
    }

    static func sortedLimited(_ set: Set<String>, _ limit: Int?) -> QueryResult<[String]> {
        var out = set.sorted(by: utf8Less)
        var warnings: [String] = []
        if let limit, out.count > limit {
            out.removeLast(out.count - limit)
            warnings.append("results truncated due to limit")
        }
        return QueryResult(out, warnings: warnings)
    }
}

/// Streams the series of one `select`, reading each series' chunks when it is reached. Series
/// without samples in the range (the index is per day) are skipped.
final class LocalSeriesSet: SeriesSet, @unchecked Sendable {
    // @unchecked: consumed by one task at a time, as the SeriesSet contract says.
    private let db: TimeSeriesDB
    private let items: [(SeriesID, Labels)]
    private let startMs: Int64
    private let endMs: Int64
    private let limit: Int?
    private var index = 0
    private var returned = 0
    private var iterator = ChunkIteratorCache()
    /// Chunks of `items[i]`, read ahead; nil where not read yet.
    private var prefetched: [[EncodedChunk]?] = []
    private var readAhead = false
    private(set) var warnings: [String] = []

    init(db: TimeSeriesDB, items: [(SeriesID, Labels)], startMs: Int64, endMs: Int64, limit: Int?) {
        self.db = db
        self.items = items
        self.startMs = startMs
        self.endMs = endMs
        self.limit = limit
    }

    /// Series come out in label order, but their chunks lie in ID order (`05|shard|block|low48`):
    /// reading them in label order costs a seek per series, through the memtable and every
    /// level. Before the first series, the chunks of the selection are read in ID order — each
    /// series a few `next` steps after the previous one — up to `Options.queryReadAheadBytes`;
    /// series beyond it are read when their turn comes. Not with a limit, which may stop early.
    private func prefetch() throws {
        let budget = db.options.queryReadAheadBytes
        guard limit == nil, items.count > 1, budget > 0 else { return }
        prefetched = Array(repeating: nil, count: items.count)
        let order = items.indices.sorted { items[$0].0.rawValue < items[$1].0.rawValue }
        var bytes = 0
        var scan = ChunkIteratorCache()
        for (n, i) in order.enumerated() {
            if n & 1023 == 1023 { try Task.checkCancellation() }
            let chunks = try db.chunks(of: items[i].0, startMs: startMs, endMs: endMs, iterator: &scan)
            prefetched[i] = chunks
            for c in chunks { bytes += c.bytes.count }
            if bytes > budget { break }
        }
    }

    func next() async throws -> SeriesChunks? {
        if !readAhead {
            readAhead = true
            try prefetch()
        }
        while index < items.count {
            try Task.checkCancellation()
            let (id, labels) = items[index]
            let chunks: [EncodedChunk]
            if index < prefetched.count, let ahead = prefetched[index] {
                chunks = ahead
                prefetched[index] = nil
            } else {
                chunks = try db.chunks(of: id, startMs: startMs, endMs: endMs, iterator: &iterator)
            }
            index += 1
            if chunks.isEmpty { continue }
            if let limit, returned >= limit {
                warnings.append("results truncated due to limit of \(limit) series")
                index = items.count
                return nil
            }
            returned += 1
            return SeriesChunks(labels: labels, chunks: chunks)
        }
        iterator = ChunkIteratorCache()
        prefetched = []
        return nil
    }
}

/// Store iterators kept across the series of one read, with the head's `chunkMoves` count at
/// the time they were made. One per block (up to `maxPerBlock`, then one shared): a read in ID
/// order then moves each iterator forward within its block by `next` steps, where a single
/// iterator would seek back and forth between the blocks of every series.
struct ChunkIteratorCache {
    static let maxPerBlock = 16
    var chunkMoves: UInt64 = 0
    /// Of recent advances allowed 8 steps: how many got there by steps, how many had to seek
    /// (halved as they grow). A sparse selection (200 series among 10,000) would waste 8 steps
    /// before nearly every seek: while seeks are the majority, advances try one step, and every
    /// eighth still tries 8 to notice when the selection gets dense again.
    private var stepped = 0
    private var sought = 0
    private var advances = 0
    /// Each iterator with the chunk cache's token read just before it was made: what it reads
    /// may be cached under that token (`RecentChunkCache.insert`).
    private var perBlock: [(block: Int32, iterator: any KVIterator, token: UInt64)] = []
    private var shared: (iterator: any KVIterator, token: UInt64)? = nil

    init(chunkMoves: UInt64 = 0) {
        self.chunkMoves = chunkMoves
    }

    /// Steps the next advance may take before it seeks.
    var steps: Int { sought > stepped && advances % 8 != 0 ? 1 : 8 }

    mutating func record(steps: Int, steppedThere: Bool) {
        advances &+= 1
        guard steps == 8 else { return }
        if steppedThere { stepped += 1 } else { sought += 1 }
        if stepped + sought >= 64 {
            stepped /= 2
            sought /= 2
        }
    }

    mutating func iterator(forBlock b: Int32, store: any KeyValueStore, cache: borrowing Mutex<RecentChunkCache>) throws -> (any KVIterator, token: UInt64) {
        for e in perBlock where e.block == b { return (e.iterator, e.token) }
        if perBlock.count >= Self.maxPerBlock, let shared { return shared }
        let token = cache.withLock { $0.token }
        let it = try store.makeIterator(lowerBound: [Keyspace.chunkPrefix], upperBound: [Keyspace.chunkPrefix + 1])
        if perBlock.count < Self.maxPerBlock {
            perBlock.append((b, it, token))
        } else {
            shared = (it, token)
        }
        return (it, token)
    }
}
