import StarlingCore
import StarlingTestKit
import Testing

@testable import StarlingStorage

@Suite struct RecentChunkCacheTests {
    typealias Key = RecentChunkCache.Key
    let a = Key(id: SeriesID(shard: ShardID(rawValue: 3), low: 7), block: 19_000)
    let b = Key(id: SeriesID(shard: ShardID(rawValue: 4), low: 8), block: 19_000)

    func chunk(_ minT: Int64, _ bytes: Int = 100) -> EncodedChunk {
        EncodedChunk(minTimeMs: minT, maxTimeMs: minT + 60_000, bytes: [UInt8](repeating: 1, count: bytes))
    }

    /// An entry filled from `fromMs` answers reads starting there or later, not earlier ones.
    @Test func answersReadsFromItsStartOn() {
        var c = RecentChunkCache(capacityBytes: 1 << 20)
        c.insert(a, fromMs: 1_000, chunks: [chunk(1_000)], token: c.token)
        #expect(c.lookup(a, startMs: 1_000) == [chunk(1_000)])
        #expect(c.lookup(a, startMs: 5_000) == [chunk(1_000)])
        #expect(c.lookup(a, startMs: 999) == nil)
        #expect(c.lookup(b, startMs: 1_000) == nil)
        #expect(c.hits == 2 && c.misses == 2)
    }

    /// A fill read before an invalidation of its key is refused; after it, accepted. Other
    /// keys' invalidations do not matter.
    @Test func aFillOlderThanAnInvalidationIsRefused() {
        var c = RecentChunkCache(capacityBytes: 1 << 20)
        let before = c.token
        c.invalidate(a)
        c.insert(a, fromMs: 0, chunks: [chunk(0)], token: before)
        #expect(c.lookup(a, startMs: 0) == nil)
        c.insert(b, fromMs: 0, chunks: [chunk(0)], token: before)
        #expect(c.lookup(b, startMs: 0) != nil)
        c.insert(a, fromMs: 0, chunks: [chunk(0)], token: c.token)
        #expect(c.lookup(a, startMs: 0) != nil)
        c.invalidate(a)
        #expect(c.lookup(a, startMs: 0) == nil)
    }

    /// Forgotten tombstones leave a watermark: a fill older than any of them is refused.
    @Test func forgottenTombstonesStillRefuseOldFills() {
        var c = RecentChunkCache(capacityBytes: 1 << 20, maxTombstones: 2)
        let before = c.token
        c.invalidate(a)
        for low in 100..<110 { c.invalidate(Key(id: SeriesID(shard: ShardID(rawValue: 1), low: UInt64(low)), block: 1)) }
        c.insert(a, fromMs: 0, chunks: [chunk(0)], token: before)
        #expect(c.lookup(a, startMs: 0) == nil)
        c.insert(a, fromMs: 0, chunks: [chunk(0)], token: c.token)
        #expect(c.lookup(a, startMs: 0) != nil)
    }

    /// The oldest entries go first when the budget is exceeded, and the charge is exact.
    @Test func evictsOldestBeyondCapacity() {
        let one = RecentChunkCache.perEntryCost + RecentChunkCache.perChunkCost + 100
        var c = RecentChunkCache(capacityBytes: 4 * one)
        let keys = (0..<6).map { Key(id: SeriesID(shard: ShardID(rawValue: 0), low: UInt64($0)), block: 1) }
        for k in keys { c.insert(k, fromMs: 0, chunks: [chunk(0)], token: c.token) }
        #expect(c.count == 4)
        #expect(c.cost == 4 * one)
        #expect(c.lookup(keys[0], startMs: 0) == nil && c.lookup(keys[1], startMs: 0) == nil)
        #expect(c.lookup(keys[5], startMs: 0) != nil)
        // Replacing an entry re-charges it.
        c.insert(keys[5], fromMs: 0, chunks: [chunk(7, 50)], token: c.token)
        #expect(c.cost == 4 * one - 50)
        #expect(c.lookup(keys[5], startMs: 0) == [chunk(7, 50)])
        // An entry larger than a quarter of the budget is not cached (the one there stays:
        // nothing invalidated it, so it is still right).
        c.insert(keys[5], fromMs: 0, chunks: [chunk(0), chunk(60_001)], token: c.token)
        #expect(c.lookup(keys[5], startMs: 0) == [chunk(7, 50)])
    }

    @Test func capacityZeroCachesNothing() {
        var c = RecentChunkCache(capacityBytes: 0)
        c.insert(a, fromMs: 0, chunks: [chunk(0)], token: c.token)
        #expect(c.lookup(a, startMs: 0) == nil)
    }

    /// A written batch drops the (series, block) of every chunk key it puts or deletes, and
    /// everything when a range delete may cover chunk keys; other keys leave entries alone.
    @Test func writtenBatchesDropWhatTheyTouch() {
        var c = RecentChunkCache(capacityBytes: 1 << 20)
        func fill() {
            c.insert(a, fromMs: 0, chunks: [chunk(0)], token: c.token)
            c.insert(b, fromMs: 0, chunks: [chunk(0)], token: c.token)
        }
        fill()
        var other = KVWriteBatch()
        other.put(Keyspace.seriesKey(a.id), [1])
        other.deleteRange(Keyspace.walKey(0), Keyspace.walKey(10))
        other.deleteRange(Keyspace.postingsBlockPrefix(block: 1), Keyspace.postingsBlockPrefix(block: 5))
        c.invalidate(after: other)
        #expect(c.count == 2)

        var put = KVWriteBatch()
        put.put(Keyspace.chunkKey(id: a.id, block: a.block, minTimeMs: 0, uniq: 1, kind: .inOrder), [0])
        c.invalidate(after: put)
        #expect(c.lookup(a, startMs: 0) == nil && c.lookup(b, startMs: 0) != nil)

        fill()
        var del = KVWriteBatch()
        del.delete(Keyspace.chunkKey(id: b.id, block: b.block, minTimeMs: 0, uniq: 1, kind: .compacted))
        c.invalidate(after: del)
        #expect(c.lookup(a, startMs: 0) != nil && c.lookup(b, startMs: 0) == nil)

        fill()
        var range = KVWriteBatch()
        range.deleteRange(Keyspace.chunkShardPrefix(shard: ShardID(rawValue: 9)), Keyspace.prefixEnd(Keyspace.chunkShardPrefix(shard: ShardID(rawValue: 9))))
        let before = c.token
        c.invalidate(after: range)
        #expect(c.count == 0)
        c.insert(a, fromMs: 0, chunks: [chunk(0)], token: before)
        #expect(c.lookup(a, startMs: 0) == nil)
    }

    /// Through the store: a repeated read of the newest block is answered by the cache, and a
    /// chunk closed after the first read (its samples left the head for the store) is seen by
    /// the second; the same reads with the cache off give the same samples.
    @Test(arguments: [64 << 20, 0])
    func storeReadsSeeChunksWrittenAfterAnEntryWasFilled(capacity: Int) async throws {
        var options = TimeSeriesDB.Options()
        options.maxSamplesPerChunk = 16
        options.chunkCacheBytes = capacity
        let db = try TimeSeriesDB(store: MemoryKV(), options: options, nowMs: t0)
        let l = L(["__name__": "m", "i": "1"])
        func read(_ start: Int64, _ end: Int64) async throws -> [Sample] {
            let set = try await db.select([.eq("__name__", "m")], hints: SelectHints(startMs: start, endMs: end))
            guard let s = try await set.next() else { return [] }
            #expect(try await set.next() == nil)
            return try ChunkOps.merge(s.chunks, minTimeMs: start, maxTimeMs: end)
        }
        var want: [Sample] = []
        for k in 0..<40 {
            let batch = [Sample(t0 + Int64(k) * 15_000, Double(k))]
            _ = try db.append([SeriesSamples(labels: l, samples: batch)], nowMs: t0)
            want += batch
            // Two chunks of 16 are closed after 33 samples; read after every append.
            #expect(bitwiseEqual(try await read(t0, t0 + 3_600_000), want), "after \(k + 1) samples")
            #expect(bitwiseEqual(try await read(t0 + 300_000, t0 + 3_600_000), want.filter { $0.timestampMs >= t0 + 300_000 }))
        }
        try db.checkpoint(nowMs: t0)
        _ = try db.maintenance(nowMs: t0 + 2 * 3_600_000)
        #expect(bitwiseEqual(try await read(t0, t0 + 3_600_000), want))
        let stats = db.statistics()
        if capacity > 0 {
            #expect(stats.chunkCacheHits > 0)
            #expect(stats.chunkCacheEntries == 1)
        } else {
            #expect(stats.chunkCacheHits == 0 && stats.chunkCacheEntries == 0)
        }
    }

    /// Windows reach back past midnight: reads starting in the last six hours of the block before
    /// the newest are cached too, earlier reads and older blocks are not, and a late sample
    /// written into the cached day is seen by the next read.
    @Test func theDayBeforeTheNewestIsCachedToo() async throws {
        var options = TimeSeriesDB.Options()
        options.maxSamplesPerChunk = 16
        options.maxOutOfOrderBuffer = 1
        let midnight = (t0 / Millis.day + 2) * Millis.day
        let db = try TimeSeriesDB(store: MemoryKV(), options: options, nowMs: midnight)
        let l = L(["__name__": "m"])
        // Three days of data, one sample a minute around each midnight: blocks N-2, N-1, N.
        var want: [Sample] = []
        for day in [-2, -1, 0] {
            let base = midnight + Int64(day) * Millis.day
            let batch = (0..<40).map { Sample(base - 20 * 60_000 + Int64($0) * 60_000, Double(day * 100 + $0)) }
            _ = try db.append([SeriesSamples(labels: l, samples: batch)], nowMs: midnight)
            want += batch
        }
        _ = try db.maintenance(nowMs: midnight + 3 * Millis.hour)
        func read(_ start: Int64, _ end: Int64) async throws -> [Sample] {
            let set = try await db.select([.eq("__name__", "m")], hints: SelectHints(startMs: start, endMs: end))
            let s = try #require(try await set.next())
            return try ChunkOps.merge(s.chunks, minTimeMs: start, maxTimeMs: end)
        }
        func hits() -> UInt64 { db.statistics().chunkCacheHits }
        let across = (midnight - 30 * 60_000, midnight + 30 * 60_000)  // blocks N-1 and N
        let window = want.filter { $0.timestampMs >= across.0 && $0.timestampMs <= across.1 }
        #expect(bitwiseEqual(try await read(across.0, across.1), window))
        let before = hits()
        #expect(bitwiseEqual(try await read(across.0, across.1), window))
        #expect(hits() == before + 2)  // both blocks from memory
        // A read starting early in the day before (a 24-hour panel) is not cached: it would
        // evict the newest day's entries. Nor is the day before that.
        let older = (midnight - Millis.day - 30 * 60_000, midnight - Millis.day + 30 * 60_000)  // N-2 and N-1
        _ = try await read(older.0, older.1)
        let beforeOlder = hits()
        _ = try await read(older.0, older.1)
        #expect(hits() == beforeOlder)
        let lateInN1 = (midnight - 5 * Millis.hour, midnight - 60_000)  // the last hours of N-1 only
        _ = try await read(lateInN1.0, lateInN1.1)
        let beforeLate = hits()
        _ = try await read(lateInN1.0, lateInN1.1)
        #expect(hits() == beforeLate + 1)
        // A late sample for the day before: written at the next maintenance, seen by the next read.
        let late = Sample(midnight - 90_000, -1)
        _ = try db.append([SeriesSamples(labels: l, samples: [late])], nowMs: midnight + 3 * Millis.hour)
        _ = try db.maintenance(nowMs: midnight + 3 * Millis.hour)
        let withLate = (window + [late]).sorted { $0.timestampMs < $1.timestampMs }
        #expect(bitwiseEqual(try await read(across.0, across.1), withLate))
    }
}
