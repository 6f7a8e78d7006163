import StarlingCore
import StarlingTestKit
import Testing

@testable import StarlingStorage

@Suite struct ReadDuringMaintenanceTests {
    /// A select streams its series; maintenance closing the open chunks of a finished block (and
    /// evicting the series) between two of them must not hide the later series' samples: they
    /// left the head for the store after the read's first store iterator was made.
    @Test func chunksMovedToTheStoreMidReadAreStillSeen() async throws {
        let db = try TimeSeriesDB(store: MemoryKV(), nowMs: t0)
        let a = L(["__name__": "m", "i": "a"])
        let b = L(["__name__": "m", "i": "b"])
        _ = try db.append([
            SeriesSamples(labels: a, samples: samples([(t0, 1), (t0 + 15_000, 2)])),
            SeriesSamples(labels: b, samples: samples([(t0, 3), (t0 + 15_000, 4)])),
        ], nowMs: t0)
        let set = try await db.select([.eq("__name__", "m")], hints: SelectHints(startMs: t0 - 60_000, endMs: t0 + 60_000))
        let first = try #require(try await set.next())
        #expect(first.labels == a)
        let report = try db.maintenance(nowMs: t0 + 3 * 86_400_000)
        #expect(report.chunksClosed == 2)
        let second = try #require(try await set.next())
        #expect(second.labels == b)
        #expect(bitwiseEqual(try ChunkOps.merge(second.chunks, minTimeMs: t0 - 60_000, maxTimeMs: t0 + 60_000), samples([(t0, 3), (t0 + 15_000, 4)])))
        #expect(try await set.next() == nil)
    }
}
