import StarlingCore
import StarlingTestKit
import Testing

@testable import StarlingStorage

@Suite struct StoredLabelsCacheTests {
    func labels(_ i: Int) -> Labels { Labels([Label("__name__", "m"), Label("i", String(i))]) }

    @Test func keepsAtMostTwoGenerationsAndPromotesColdHits() {
        var c = StoredLabelsCache(capacity: 3)
        for i in 0..<3 { c.insert(SeriesID(rawValue: UInt64(i)), labels(i), ifGeneration: c.generation) }
        // The fourth insert turns the full hot generation cold.
        c.insert(SeriesID(rawValue: 3), labels(3), ifGeneration: c.generation)
        #expect(c.count == 4)
        // A cold hit moves back to hot; the rest of cold goes with the next turnover.
        #expect(c.get(SeriesID(rawValue: 0)) == labels(0))
        c.insert(SeriesID(rawValue: 4), labels(4), ifGeneration: c.generation)
        c.insert(SeriesID(rawValue: 5), labels(5), ifGeneration: c.generation)
        #expect(c.count <= 6)
        #expect(c.get(SeriesID(rawValue: 0)) == labels(0))
        #expect(c.get(SeriesID(rawValue: 1)) == nil)
        #expect(c.get(SeriesID(rawValue: 2)) == nil)
        #expect(c.get(SeriesID(rawValue: 5)) == labels(5))
    }

    @Test func anInvalidationDiscardsWhatWasReadBeforeIt() {
        var c = StoredLabelsCache(capacity: 10)
        c.insert(SeriesID(rawValue: 1), labels(1), ifGeneration: c.generation)
        let before = c.generation
        c.invalidate()
        #expect(c.get(SeriesID(rawValue: 1)) == nil)
        // A reader that looked the store up before the invalidation must not fill the cache.
        c.insert(SeriesID(rawValue: 2), labels(2), ifGeneration: before)
        #expect(c.get(SeriesID(rawValue: 2)) == nil)
        c.insert(SeriesID(rawValue: 2), labels(2), ifGeneration: c.generation)
        #expect(c.get(SeriesID(rawValue: 2)) == labels(2))
    }

    @Test func capacityZeroDisablesIt() {
        var c = StoredLabelsCache(capacity: 0)
        c.insert(SeriesID(rawValue: 1), labels(1), ifGeneration: c.generation)
        #expect(c.get(SeriesID(rawValue: 1)) == nil)
    }

    /// Through the database: a shard drop deletes the series records, and a query afterwards
    /// must not find the dropped series through the cache.
    @Test func droppingAShardForgetsItsLabels() async throws {
        let db = try TimeSeriesDB(store: MemoryKV(), nowMs: 1_000_000)
        let l = labels(7)
        _ = try db.append([SeriesSamples(labels: l, samples: [Sample(1_000_000, 1)])], nowMs: 1_000_000)
        let ids = try db.postings([LabelMatcher.eq("__name__", "m")], startMs: 0, endMs: 2_000_000, shards: nil)
        #expect(ids.count == 1)
        let id = SeriesID(rawValue: ids[0])
        let found = try db.labels(for: ids)
        #expect(found.map(\.1) == [l])
        _ = try db.dropShard(id.shard, nowMs: 1_000_001)
        let cached = db.storedLabels.withLock { $0.count }
        #expect(cached == 0)
        #expect(try db.labels(for: ids).isEmpty)
    }
}
