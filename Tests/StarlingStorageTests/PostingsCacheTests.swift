import StarlingCore
import StarlingTestKit
import Testing

@testable import StarlingStorage

@Suite struct PostingsCacheTests {
    let k1 = PostingsCache.Key(block: 10, name: "job", value: "a")
    let k2 = PostingsCache.Key(block: 11, name: "job", value: "a")

    func postingPut(block: Int32) -> KVWriteBatch {
        var b = KVWriteBatch()
        b.put(Keyspace.postingKey(block: block, nameBytes: UnsafeRawBufferPointer(start: nil, count: 0),
                                  valueBytes: UnsafeRawBufferPointer(start: nil, count: 0), id: SeriesID(rawValue: 1)), [])
        return b
    }

    @Test func answersUntilItsBlockChanges() {
        let c = PostingsCache(capacityBytes: 1 << 20)
        c.insert(k1, [1, 2, 3], token: c.token)
        c.insert(k2, [4], token: c.token)
        #expect(c.lookup(k1) == .ids([1, 2, 3]))
        // A posting written in block 11 leaves block 10's lists alone.
        c.invalidate(after: postingPut(block: 11))
        #expect(c.lookup(k1) == .ids([1, 2, 3]))
        #expect(c.lookup(k2) == nil)
        c.invalidate(after: postingPut(block: 10))
        #expect(c.lookup(k1) == nil)
        let s = c.statistics
        #expect(s.hits == 2 && s.misses == 2)
    }

    /// A list read from a snapshot older than a change of its block is not stored.
    @Test func aReadOlderThanAChangeIsRefused() {
        let c = PostingsCache(capacityBytes: 1 << 20)
        let before = c.token
        c.invalidate(after: postingPut(block: 10))
        c.insert(k1, [1], token: before)
        c.insert(k2, [2], token: before)
        #expect(c.lookup(k1) == nil)
        #expect(c.lookup(k2) == .ids([2]))
        c.insert(k1, [1], token: c.token)
        #expect(c.lookup(k1) == .ids([1]))
    }

    /// Retention's range delete of postings makes every list stale; other range deletes and
    /// writes of other keys do not.
    @Test func rangeDeletesOfPostingsDropEverything() {
        let c = PostingsCache(capacityBytes: 1 << 20)
        c.insert(k1, [1], token: c.token)
        var other = KVWriteBatch()
        other.deleteRange(Keyspace.walKey(0), Keyspace.walKey(9))
        other.put(Keyspace.chunkKey(id: SeriesID(rawValue: 1), block: 10, minTimeMs: 0, uniq: 0, kind: .inOrder), [])
        c.invalidate(after: other)
        #expect(c.lookup(k1) == .ids([1]))
        let before = c.token
        var retention = KVWriteBatch()
        retention.deleteRange(Keyspace.postingsBlockPrefix(block: 1), Keyspace.postingsBlockPrefix(block: 12))
        c.invalidate(after: retention)
        #expect(c.lookup(k1) == nil)
        c.insert(k1, [1], token: before)
        #expect(c.lookup(k1) == nil)
    }

    @Test func longListsAreRememberedAsLongAndTheBudgetHolds() {
        let c = PostingsCache(capacityBytes: 4_096, maxListIDs: 4)
        c.insert(k1, [1, 2, 3, 4, 5], token: c.token)
        #expect(c.lookup(k1) == .tooLong)
        for v in 0..<100 {
            c.insert(PostingsCache.Key(block: 3, name: "i", value: String(v)), [1, 2, 3], token: c.token)
        }
        #expect(c.statistics.bytes <= 4_096)
        #expect(c.lookup(PostingsCache.Key(block: 3, name: "i", value: "99")) == .ids([1, 2, 3]))
        #expect(c.lookup(PostingsCache.Key(block: 3, name: "i", value: "0")) == nil)
        let off = PostingsCache(capacityBytes: 0)
        off.insert(k1, [1], token: off.token)
        #expect(off.lookup(k1) == nil)
    }

    /// The index answers the same with and without the cache, read twice (from the store, then
    /// from memory), with lists short enough to join in memory and too long for the cache; and
    /// after new series arrive in a cached block.
    @Test func theIndexAnswersTheSameWithTheCache() async throws {
        let kv = MemoryKV()
        let db = try TimeSeriesDB(store: kv, nowMs: t0)
        func add(_ range: Range<Int>) throws {
            var batch: [SeriesSamples] = []
            for i in range {
                batch.append(SeriesSamples(labels: L(["__name__": i % 3 == 0 ? "a" : "b", "host": "h\(i % 7)", "i": String(i)]),
                                           samples: [Sample(t0, Double(i))]))
            }
            _ = try db.append(batch, nowMs: t0)
        }
        try add(0..<60)
        let block = Keyspace.block(ofMs: t0)
        let matcherSets: [[LabelMatcher]] = [
            [.eq("__name__", "a"), .eq("host", "h3")],
            [.eq("__name__", "b"), .eq("host", "h1"), .eq("i", "22")],
            [.eq("__name__", "a"), .eq("host", "nope")],
            [.eq("host", "h2")],
            [try LabelMatcher(.notEqual, "host", "h2")],
            [try LabelMatcher(.regexMatch, "host", "h1|h4"), .eq("__name__", "b")],
        ]
        let plain = IndexReader(store: kv)
        let cache = PostingsCache(capacityBytes: 1 << 20, maxListIDs: 12)
        let cached = IndexReader(store: kv, cache: cache)
        for round in 0..<3 {
            let before = cache.statistics.hits
            for m in matcherSets {
                let want = try plain.postings(block: block, matchers: m)
                #expect(!want.isEmpty || m.contains { $0.value == "nope" })
                for _ in 0..<2 {
                    #expect(try cached.postings(block: block, matchers: m) == want, "round \(round): \(m)")
                }
            }
            #expect(cache.statistics.hits > before, "round \(round): the second reads come from the cache")
            // New series in the block: the cached lists of the block must not hide them.
            try add((60 + 20 * round)..<(80 + 20 * round))
            // The store's own cache saw the write; this reader's cache is separate, so tell it.
            var b = KVWriteBatch()
            b.put(Keyspace.allPostingKey(block: block, id: SeriesID(rawValue: 0)), [])
            cache.invalidate(after: b)
        }
        // The store's own reads see new series through its cache (invalidated by the append).
        let set = try await db.select([.eq("__name__", "a"), .eq("host", "h3")], hints: SelectHints(startMs: t0, endMs: t0))
        var n = 0
        while try await set.next() != nil { n += 1 }
        #expect(n == (0..<120).filter { $0 % 3 == 0 && $0 % 7 == 3 }.count)
        try add(120..<141)
        let again = try await db.select([.eq("__name__", "a"), .eq("host", "h3")], hints: SelectHints(startMs: t0, endMs: t0))
        var m = 0
        while try await again.next() != nil { m += 1 }
        #expect(m == (0..<141).filter { $0 % 3 == 0 && $0 % 7 == 3 }.count)
        // Nothing changed since: the same selection is answered from the cache.
        #expect(db.statistics().postingsCacheHits == 0)
        _ = try await db.select([.eq("__name__", "a"), .eq("host", "h3")], hints: SelectHints(startMs: t0, endMs: t0))
        #expect(db.statistics().postingsCacheHits == 2)
    }

    /// Label values that are canonically equivalent but differ in bytes are different series:
    /// the cache must not answer one's list for the other (Swift `String` equality would).
    @Test func canonicallyEquivalentValuesStayDistinct() async throws {
        let db = try TimeSeriesDB(store: MemoryKV(), nowMs: t0)
        let nfc = "Z\u{FC}rich", nfd = "Zu\u{308}rich"
        #expect(nfc == nfd && Array(nfc.utf8) != Array(nfd.utf8))
        _ = try db.append([
            SeriesSamples(labels: L(["__name__": "m", "city": nfc]), samples: [Sample(t0, 1)]),
            SeriesSamples(labels: L(["__name__": "m", "city": nfd]), samples: [Sample(t0, 2)]),
        ], nowMs: t0)
        for _ in 0..<2 {
            for (value, want) in [(nfc, 1.0), (nfd, 2.0)] {
                let set = try await db.select([.eq("__name__", "m"), .eq("city", value)], hints: SelectHints(startMs: t0, endMs: t0))
                let s = try #require(try await set.next())
                #expect(try ChunkOps.merge(s.chunks, minTimeMs: t0, maxTimeMs: t0).map(\.value) == [want])
                #expect(try await set.next() == nil)
            }
        }
    }
}
