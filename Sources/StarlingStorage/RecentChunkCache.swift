import StarlingCore

/// Stored chunks of the two newest blocks (UTC days) that queries read, by series: dashboards and
/// rules ask for the same recent series again and again, and without this each series costs a
/// RocksDB seek per query (a binary search through the memtable and every level, ~3.5 µs: a
/// third of the CPU of an instant aggregation over a hundred series).
///
/// An entry holds *every* stored chunk of one series in one block whose newest sample is at or
/// after `fromMs`, so it answers any read of that block starting at or after `fromMs`. Only the
/// store's chunks are cached; the head's open chunk and out-of-order buffer are read from the
/// head as before.
///
/// **Invalidation.** Every store write that puts or deletes chunk keys drops the entries of the
/// (series, block) pairs it touches (`invalidate(after:)`); a range delete (retention, shard drop)
/// drops everything. Writers do it under the head lock, right after the write. A reader fills an
/// entry from a store iterator whose snapshot may predate a write, so it passes the `token` it
/// read *before* making its iterator, and the entry is refused when its key was invalidated since
/// (a tombstone newer than the token, or the `watermark` that forgotten tombstones leave behind).
///
/// Bounded by `capacityBytes` (chunk bytes plus a per-chunk allowance), evicting in insertion
/// order. Not thread-safe: `TimeSeriesDB` holds it in a mutex.
struct RecentChunkCache {
    struct Key: Hashable {
        var id: SeriesID
        var block: Int32
    }

    private struct Entry {
        var fromMs: Int64
        var chunks: [EncodedChunk]
        var cost: Int
    }

    let capacityBytes: Int
    /// Tombstones kept before the oldest is folded into `watermark`.
    let maxTombstones: Int
    private var entries: [Key: Entry] = [:]
    private var order: [Key] = []
    private var orderHead = 0
    private var tombstones: [Key: UInt64] = [:]
    private var tombstoneOrder: [Key] = []
    private var tombstoneHead = 0
    /// Incremented by every invalidation; what `token` returns.
    private var sequence: UInt64 = 0
    /// Fills with a token below this are refused.
    private var watermark: UInt64 = 0
    private(set) var cost = 0
    private(set) var hits: UInt64 = 0
    private(set) var misses: UInt64 = 0

    /// Bytes an entry is charged beyond its chunk bytes: the chunk's bounds, its array, the key.
    static let perChunkCost = 64
    static let perEntryCost = 96

    init(capacityBytes: Int, maxTombstones: Int = 1 << 16) {
        self.capacityBytes = capacityBytes
        self.maxTombstones = max(1, maxTombstones)
    }

    var isEnabled: Bool { capacityBytes > 0 }
    var count: Int { entries.count }

    /// To read before making the store iterator whose chunks a later `insert` caches.
    var token: UInt64 { sequence }

    /// The cached chunks of `key` that may overlap `[startMs, …]` (a superset: callers filter
    /// by their range), or nil when not cached from `startMs` on.
    mutating func lookup(_ key: Key, startMs: Int64) -> [EncodedChunk]? {
        guard let e = entries[key], e.fromMs <= startMs else {
            misses &+= 1
            return nil
        }
        hits &+= 1
        return e.chunks
    }

    /// Caches the stored chunks of `key` whose newest sample is at or after `fromMs` — all of
    /// them, read from a store snapshot made after `token` was read.
    mutating func insert(_ key: Key, fromMs: Int64, chunks: [EncodedChunk], token: UInt64) {
        guard isEnabled, token >= watermark else { return }
        if let dead = tombstones[key], dead > token { return }
        let c = Self.perEntryCost + chunks.reduce(0) { $0 + $1.bytes.count + Self.perChunkCost }
        guard c <= capacityBytes / 4 else { return }
        if let old = entries.updateValue(Entry(fromMs: fromMs, chunks: chunks, cost: c), forKey: key) {
            cost -= old.cost
        } else {
            order.append(key)
        }
        cost += c
        while cost > capacityBytes, orderHead < order.count {
            let k = order[orderHead]
            orderHead += 1
            if let e = entries.removeValue(forKey: k) { cost -= e.cost }
        }
        compactOrder(&order, &orderHead, live: entries)
    }

    mutating func invalidate(_ key: Key) {
        sequence &+= 1
        if let e = entries.removeValue(forKey: key) {
            cost -= e.cost
            // Its slot in `order` stays; eviction skips keys no longer present.
        }
        if tombstones.updateValue(sequence, forKey: key) == nil { tombstoneOrder.append(key) }
        while tombstones.count > maxTombstones, tombstoneHead < tombstoneOrder.count {
            let k = tombstoneOrder[tombstoneHead]
            tombstoneHead += 1
            if let s = tombstones.removeValue(forKey: k) { watermark = max(watermark, s) }
        }
        if tombstoneHead > 1024, tombstoneHead * 2 > tombstoneOrder.count {
            tombstoneOrder.removeFirst(tombstoneHead)
            tombstoneHead = 0
        }
    }

    mutating func invalidateAll() {
        sequence &+= 1
        watermark = sequence
        entries.removeAll()
        order.removeAll()
        orderHead = 0
        tombstones.removeAll()
        tombstoneOrder.removeAll()
        tombstoneHead = 0
        cost = 0
    }

    /// Drops what `batch` (just written) makes stale: the (series, block) of every chunk key it
    /// puts or deletes; everything for a range delete that may cover chunk keys.
    mutating func invalidate(after batch: KVWriteBatch) {
        guard isEnabled else { return }
        for op in batch.operations {
            switch op {
            case .put(let key, _), .delete(let key):
                guard key.first == Keyspace.chunkPrefix else { continue }
                let parts = key.withUnsafeBytes { Keyspace.parseChunkKey($0) }
                if let parts {
                    invalidate(Key(id: parts.id, block: parts.block))
                } else {
                    invalidateAll()
                    return
                }
            case .deleteRange(let begin, let end):
                let lo = begin.first ?? 0, hi = end.first ?? UInt8.max
                if lo <= Keyspace.chunkPrefix && Keyspace.chunkPrefix <= hi {
                    invalidateAll()
                    return
                }
            }
        }
    }
}
