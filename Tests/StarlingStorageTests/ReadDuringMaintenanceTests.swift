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

@Suite struct ReadAheadTests {
    /// `advance(to:)` lands where `seek` lands, from any position: before the target (steps or
    /// a seek), past it (must seek back), or exhausted.
    @Test func advanceLandsWhereSeekLands() throws {
        let kv = MemoryKV()
        var rng = SeededRandom(seed: 9)
        var batch = KVWriteBatch()
        for _ in 0..<300 {
            batch.put((0..<3).map { _ in UInt8(truncatingIfNeeded: rng.next() % 40) }, [1])
        }
        try kv.write(batch, sync: false)
        let stepping = try kv.makeIterator(lowerBound: [], upperBound: [])
        let seeking = try kv.makeIterator(lowerBound: [], upperBound: [])
        for _ in 0..<2_000 {
            let target = (0..<Int(1 + rng.next() % 3)).map { _ in UInt8(truncatingIfNeeded: rng.next() % 42) }
            if rng.next() % 5 == 0 {
                let elsewhere = [UInt8(truncatingIfNeeded: rng.next() % 42)]
                stepping.seek(elsewhere)
            }
            stepping.advance(to: target, steps: Int(rng.next() % 4))
            seeking.seek(target)
            #expect(stepping.isValid == seeking.isValid)
            if stepping.isValid && seeking.isValid { #expect(stepping.key == seeking.key, "target \(target)") }
        }
    }

    /// Reading ahead in ID order, partly (the budget runs out) or not at all, returns what
    /// reading each series in its turn returns: same series, order and chunks.
    @Test(arguments: [0, 300, 32 << 20])
    func readAheadDoesNotChangeTheAnswer(budget: Int) async throws {
        var options = TimeSeriesDB.Options()
        options.queryReadAheadBytes = budget
        let db = try TimeSeriesDB(store: MemoryKV(), options: options, nowMs: t0)
        var series: [SeriesSamples] = []
        for i in 0..<60 {
            let labels = L(["__name__": "m", "i": String(i), "even": String(i % 2)])
            series.append(SeriesSamples(labels: labels, samples: samples((0..<20).map { (t0 + Int64($0) * 7_200_000, Double(i * 100 + $0)) })))
        }
        _ = try db.append(series, nowMs: t0)
        _ = try db.maintenance(nowMs: t0 + 3 * 86_400_000)  // chunks into the store
        let end = t0 + 20 * 7_200_000
        for matchers: [LabelMatcher] in [[.eq("__name__", "m")], [.eq("even", "1")]] {
            let set = try await db.select(matchers, hints: SelectHints(startMs: t0 + 3_600_000, endMs: end - 3_600_000))
            var got: [(Labels, [Sample])] = []
            while let s = try await set.next() {
                got.append((s.labels, try ChunkOps.merge(s.chunks, minTimeMs: t0 + 3_600_000, maxTimeMs: end - 3_600_000)))
            }
            let want = series.filter { matchers.matches($0.labels) }.sorted { $0.labels < $1.labels }
            #expect(got.map(\.0) == want.map(\.labels))
            for (g, w) in zip(got, want) {
                #expect(bitwiseEqual(g.1, w.samples.filter { $0.timestampMs >= t0 + 3_600_000 && $0.timestampMs <= end - 3_600_000 }))
            }
        }
    }
}
