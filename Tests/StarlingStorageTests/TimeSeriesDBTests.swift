import StarlingCore
import StarlingTestKit
import Testing

@testable import StarlingStorage

let t0: Int64 = 1_700_000_000_000  // 2023-11-14T22:13:20Z

func L(_ pairs: KeyValuePairs<String, String>) -> Labels { Labels(pairs) }

/// Every series matching `matchers` with its merged samples in the range.
func read(_ db: TimeSeriesDB, _ matchers: [LabelMatcher], _ start: Int64 = .min / 4, _ end: Int64 = .max / 4) async throws -> [Labels: [Sample]] {
    let set = try await db.select(matchers, hints: SelectHints(startMs: start, endMs: end))
    var out: [Labels: [Sample]] = [:]
    var previous: Labels? = nil
    while let s = try await set.next() {
        if let p = previous { #expect(p < s.labels, "series must come sorted by labels") }
        previous = s.labels
        out[s.labels] = try ChunkOps.merge(s.chunks, minTimeMs: start, maxTimeMs: end)
    }
    return out
}

func samples(_ pairs: [(Int64, Double)]) -> [Sample] { pairs.map { Sample($0.0, $0.1) } }

func bitwiseEqual(_ a: [Sample], _ b: [Sample]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.bitwiseEqual($1) }
}

@Suite struct TimeSeriesDBTests {
    @Test func appendAndSelectRoundTrip() async throws {
        let kv = MemoryKV()
        let db = try TimeSeriesDB(store: kv, nowMs: t0)
        let a = L(["__name__": "up", "job": "api", "instance": "a:1"])
        let b = L(["__name__": "up", "job": "db", "instance": "b:1"])
        let r = try db.append([
            SeriesSamples(labels: a, samples: samples([(t0, 1), (t0 + 15_000, 0)])),
            SeriesSamples(labels: b, samples: samples([(t0, 1)])),
        ], nowMs: t0)
        #expect(r.accepted == 3)
        #expect(r.newSeries == 2)
        let all = try await read(db, [.eq("__name__", "up")])
        #expect(all.count == 2)
        #expect(bitwiseEqual(all[a]!, samples([(t0, 1), (t0 + 15_000, 0)])))
        let onlyDB = try await read(db, [.eq("job", "db")])
        #expect(Array(onlyDB.keys) == [b])
    }

    @Test func matchersFollowPrometheusSemantics() async throws {
        let db = try TimeSeriesDB(store: MemoryKV(), nowMs: t0)
        let series = [
            L(["__name__": "m", "a": "1"]),
            L(["__name__": "m", "a": "2", "b": "x"]),
            L(["__name__": "m", "b": "y"]),
            L(["__name__": "other", "a": "1"]),
        ]
        _ = try db.append(series.map { SeriesSamples(labels: $0, samples: [Sample(t0, 1)]) }, nowMs: t0)
        func names(_ m: [LabelMatcher]) async throws -> Set<Labels> { Set(try await read(db, m).keys) }
        let m = LabelMatcher.eq("__name__", "m")
        #expect(try await names([m, .eq("a", "1")]) == [series[0]])
        #expect(try await names([m, try LabelMatcher(.notEqual, "a", "1")]) == [series[1], series[2]])
        #expect(try await names([m, .eq("a", "")]) == [series[2]])
        #expect(try await names([m, try LabelMatcher(.notEqual, "a", "")]) == [series[0], series[1]])
        #expect(try await names([m, try LabelMatcher(.regexMatch, "a", "1|2")]) == [series[0], series[1]])
        #expect(try await names([m, try LabelMatcher(.regexMatch, "a", "[12]")]) == [series[0], series[1]])
        #expect(try await names([m, try LabelMatcher(.regexMatch, "a", "2|")]) == [series[1], series[2]])
        #expect(try await names([m, try LabelMatcher(.regexNoMatch, "b", "x|y")]) == [series[0]])
        #expect(try await names([m, try LabelMatcher(.regexNoMatch, "b", "x.*")]) == [series[0], series[2]])
        #expect(try await names([try LabelMatcher(.regexMatch, "__name__", ".+"), .eq("a", "1")]) == [series[0], series[3]])
        #expect(try await names([try LabelMatcher(.regexMatch, "__name__", "o.*")]) == [series[3]])
        #expect(try await names([.eq("a", "3")]).isEmpty)
        #expect(try await names([.eq("nope", "1")]).isEmpty)
    }

    /// Conjunctions of equality matchers are joined by seeking (leapfrog); every combination on
    /// a seeded data set must select exactly the series a filter over all label sets selects.
    @Test func equalityJoinsSelectWhatAFilterSelects() async throws {
        let db = try TimeSeriesDB(store: MemoryKV(), nowMs: t0)
        var state: UInt64 = 42
        func next(_ n: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(n))
        }
        var all = Set<Labels>()
        while all.count < 400 {
            var pairs: [(String, String)] = [("__name__", "m\(next(3))"), ("a", "\(next(5))")]
            if next(3) > 0 { pairs.append(("b", "\(next(20))")) }
            if next(4) == 0 { pairs.append(("c", "x")) }
            all.insert(Labels(pairs.map { Label($0.0, $0.1) }))
        }
        _ = try db.append(all.map { SeriesSamples(labels: $0, samples: [Sample(t0, 1)]) }, nowMs: t0)
        // The index's answer itself (select filters it again by every matcher, which would hide
        // a join that returned too much).
        func names(_ m: [LabelMatcher]) throws -> Set<Labels> {
            let ids = try db.postings(m, startMs: t0 - 1, endMs: t0 + 1, shards: nil)
            #expect(ids == ids.sorted() && Set(ids).count == ids.count, "postings sorted and unique")
            return Set(try db.labels(for: ids).map(\.1))
        }
        func expected(_ m: [LabelMatcher]) -> Set<Labels> {
            all.filter { l in m.allSatisfy { $0.matches(l.get($0.name) ?? "") } }
        }
        var checked = 0
        for name in ["m0", "m1", "m2", "m9"] {
            for a in ["0", "3", "7"] {
                for b in [nil, "2", "6"] as [String?] {
                    var m: [LabelMatcher] = [.eq("__name__", name), .eq("a", a)]
                    if let b { m.append(.eq("b", b)) }
                    #expect(try names(m) == expected(m), "\(m)")
                    m.append(.eq("c", "x"))
                    #expect(try names(m) == expected(m), "\(m)")
                    m.append(try LabelMatcher(.notEqual, "b", "1"))
                    #expect(try names(m) == expected(m), "\(m)")
                    checked += 3
                }
            }
        }
        #expect(checked == 108)
        #expect(try names([.eq("__name__", "m1"), .eq("a", "2")]).count > 10)
    }

    /// A NUL byte in a matcher's name or value selects nothing by it. Unchecked, `a="x\0"` gave
    /// a key prefix that also covers the postings of `a="x"` whose series ID starts with a zero
    /// byte (shards 0–255 of 1,024), and label listings with such a `match[]` leaked those series.
    @Test func matchersWithNULSelectNothing() async throws {
        let db = try TimeSeriesDB(store: MemoryKV(), nowMs: t0)
        let all = (0..<200).map { L(["__name__": "m", "a": "x", "b": "\($0)"]) }
        _ = try db.append(all.map { SeriesSamples(labels: $0, samples: [Sample(t0, 1)]) }, nowMs: t0)
        #expect(all.contains { db.options.shardLayout.preferredSeriesID(forHash: $0.stableHash).rawValue >> 56 == 0 },
                "some series IDs start with a zero byte, so the overlap would show")
        func ids(_ m: [LabelMatcher]) throws -> [UInt64] { try db.postings(m, startMs: t0 - 1, endMs: t0 + 1, shards: nil) }
        #expect(try ids([.eq("a", "x")]).count == 200)
        #expect(try ids([.eq("a", "x\u{0}")]).isEmpty)
        #expect(try ids([.eq("__name__", "m"), .eq("a", "x\u{0}")]).isEmpty)
        #expect(try ids([try LabelMatcher(.regexMatch, "a\u{0}x", ".+")]).isEmpty)
        #expect(try ids([.eq("__name__", "m"), try LabelMatcher(.notEqual, "a", "x\u{0}")]).count == 200)
        let values = try await db.labelValues("b", [[.eq("a", "x\u{0}")]], startMs: t0 - 1, endMs: t0 + 1, limit: nil)
        #expect(values.value.isEmpty)
    }

    @Test func duplicatesAndOutOfOrder() async throws {
        let db = try TimeSeriesDB(store: MemoryKV(), nowMs: t0)
        let s = L(["__name__": "x"])
        var r = try db.append([SeriesSamples(labels: s, samples: samples([(t0 + 10, 1), (t0 + 20, 2), (t0 + 30, 3)]))], nowMs: t0)
        #expect(r.accepted == 3)
        // Retried batch: all duplicates.
        r = try db.append([SeriesSamples(labels: s, samples: samples([(t0 + 10, 1), (t0 + 20, 2), (t0 + 30, 3)]))], nowMs: t0)
        #expect(r.duplicates == 3)
        #expect(r.accepted == 0)
        // Older samples are accepted out of order.
        r = try db.append([SeriesSamples(labels: s, samples: samples([(t0 + 5, 0.5), (t0 + 15, 1.5)]))], nowMs: t0)
        #expect(r.accepted == 2)
        #expect(r.outOfOrder == 2)
        // Conflicting value at an existing timestamp: the greater value wins, whatever the order.
        _ = try db.append([SeriesSamples(labels: s, samples: samples([(t0 + 20, 7)]))], nowMs: t0)
        let got = try await read(db, [.eq("__name__", "x")])[s]!
        #expect(bitwiseEqual(got, samples([(t0 + 5, 0.5), (t0 + 10, 1), (t0 + 15, 1.5), (t0 + 20, 7), (t0 + 30, 3)])))
    }

    @Test func specialValuesSurviveBitForBit() async throws {
        let kv = MemoryKV()
        let db = try TimeSeriesDB(store: kv, nowMs: t0)
        let s = L(["__name__": "special"])
        let values: [Double] = [StaleMarker.value, .nan, .infinity, -.infinity, -0.0, .leastNonzeroMagnitude, 1e308]
        let input = values.enumerated().map { Sample(t0 + Int64($0.offset) * 1000, $0.element) }
        _ = try db.append([SeriesSamples(labels: s, samples: input)], nowMs: t0)
        #expect(bitwiseEqual(try await read(db, [.eq("__name__", "special")])[s]!, input))
        try db.flush(nowMs: t0)
        let reopened = try TimeSeriesDB(store: kv.crash(), nowMs: t0)
        #expect(bitwiseEqual(try await read(reopened, [.eq("__name__", "special")])[s]!, input))
    }

    @Test func acknowledgedWritesSurviveCrashWithoutCheckpoint() async throws {
        let kv = MemoryKV()
        let db = try TimeSeriesDB(store: kv, nowMs: t0)
        var expected: [Labels: [Sample]] = [:]
        for i in 0..<50 {
            let labels = L(["__name__": "c", "i": String(i % 7)])
            let sample = Sample(t0 + Int64(i) * 1000, Double(i))
            _ = try db.append([SeriesSamples(labels: labels, samples: [sample])], nowMs: t0)
            expected[labels, default: []].append(sample)
        }
        // kill -9: everything written so far is what the restarted process finds.
        let restarted = try TimeSeriesDB(store: kv.crash(), nowMs: t0 + 60_000)
        #expect(restarted.recovery.samples == 50)
        #expect(restarted.recovery.corruptRecords == 0)
        let got = try await read(restarted, [.eq("__name__", "c")])
        #expect(got.count == 7)
        for (l, s) in expected { #expect(bitwiseEqual(got[l]!, s)) }
        // The restart checkpointed: a second restart replays nothing and still has everything.
        let again = try TimeSeriesDB(store: kv.crash(), nowMs: t0 + 60_000)
        _ = again
    }

    @Test func failedWriteIsNotAcknowledgedAndStoreStopsAccepting() async throws {
        let kv = MemoryKV()
        let db = try TimeSeriesDB(store: kv, nowMs: t0)
        let s = L(["__name__": "f"])
        _ = try db.append([SeriesSamples(labels: s, samples: [Sample(t0, 1)])], nowMs: t0)
        kv.failWrites = true
        let new = L(["__name__": "g"])
        #expect(throws: StorageError.self) {
            _ = try db.append([SeriesSamples(labels: s, samples: [Sample(t0 + 1, 2)]),
                               SeriesSamples(labels: new, samples: [Sample(t0 + 1, 2)])], nowMs: t0)
        }
        kv.failWrites = false
        // The batch was applied to the head before its write failed: the series it created are
        // gone again (their samples were never durable).
        #expect(try await read(db, [.eq("__name__", "g")]).isEmpty)
        #expect(throws: StorageError.self) {
            _ = try db.append([SeriesSamples(labels: s, samples: [Sample(t0 + 2, 3)])], nowMs: t0)
        }
        // What was acknowledged is there after a restart; what failed is not.
        let restarted = try TimeSeriesDB(store: kv.crash(), nowMs: t0)
        #expect(bitwiseEqual(try await read(restarted, [.eq("__name__", "f")])[s]!, [Sample(t0, 1)]))
    }

    @Test func seriesLimitRejectsOnlyNewSeries() async throws {
        var o = TimeSeriesDB.Options()
        o.maxSeries = 2
        let db = try TimeSeriesDB(store: MemoryKV(), options: o, nowMs: t0)
        let r = try db.append((0..<3).map { SeriesSamples(labels: L(["__name__": "s", "i": String($0)]), samples: [Sample(t0, 1)]) }, nowMs: t0)
        #expect(r.accepted == 2)
        #expect(r.rejected.map(\.reason) == [.seriesLimit])
        let again = try db.append([SeriesSamples(labels: L(["__name__": "s", "i": "0"]), samples: [Sample(t0 + 1, 1)])], nowMs: t0)
        #expect(again.accepted == 1)
    }

    /// A batch of which nothing is stored still counts what it rejected.
    @Test func rejectionsCountWhenNothingIsAccepted() async throws {
        let db = try TimeSeriesDB(store: MemoryKV(), nowMs: t0)
        let r = try db.append([SeriesSamples(labels: L(["__name__": "old"]), samples: [Sample(t0 - 31 * Millis.day, 1)])], nowMs: t0)
        #expect(r.accepted == 0)
        #expect(db.statistics().rejectedSamples[.tooOld] == 1)
    }

    @Test func rejectsTooOldAndNULLabels() async throws {
        let db = try TimeSeriesDB(store: MemoryKV(), nowMs: t0)
        let r = try db.append([
            SeriesSamples(labels: L(["__name__": "old"]), samples: [Sample(t0 - 31 * Millis.day, 1), Sample(t0, 2)]),
            SeriesSamples(labels: L(["__name__": "bad", "v": "a\u{0}b"]), samples: [Sample(t0, 1)]),
        ], nowMs: t0)
        #expect(r.accepted == 1)
        #expect(Set(r.rejected.map(\.reason)) == [.tooOld, .invalidLabels])
    }

    @Test func labelAPIsAndShardFilter() async throws {
        let db = try TimeSeriesDB(store: MemoryKV(), nowMs: t0)
        _ = try db.append([
            SeriesSamples(labels: L(["__name__": "a", "job": "x"]), samples: [Sample(t0, 1)]),
            SeriesSamples(labels: L(["__name__": "b", "job": "y", "zone": "z1"]), samples: [Sample(t0, 1)]),
        ], nowMs: t0)
        #expect(try await db.labelNames([], startMs: t0 - 1000, endMs: t0 + 1000, limit: nil).value == ["__name__", "job", "zone"])
        #expect(try await db.labelValues("job", [], startMs: t0 - 1000, endMs: t0 + 1000, limit: nil).value == ["x", "y"])
        #expect(try await db.labelValues("job", [[.eq("__name__", "b")]], startMs: t0 - 1000, endMs: t0 + 1000, limit: nil).value == ["y"])
        #expect(try await db.labelNames([[.eq("__name__", "a")]], startMs: t0 - 1000, endMs: t0 + 1000, limit: nil).value == ["__name__", "job"])
        let series = try await db.series([[.eq("job", "x")], [.eq("zone", "z1")]], startMs: t0 - 1000, endMs: t0 + 1000, limit: nil)
        #expect(series.value.map { $0.metricName } == ["a", "b"])
        // A range with no samples finds no series even though the day is indexed.
        #expect(try await db.series([], startMs: t0 + 10_000, endMs: t0 + 20_000, limit: nil).value.isEmpty)
        // Shard filter.
        let shardOfA = ShardLayout.default.shard(for: L(["__name__": "a", "job": "x"]))
        let set = try await db.select([try LabelMatcher(.regexMatch, "__name__", ".+")], hints: SelectHints(startMs: t0 - 1, endMs: t0 + 1, shards: [shardOfA]))
        var got: [String] = []
        while let s = try await set.next() { got.append(s.labels.metricName!) }
        #expect(got == ["a"])
    }

    @Test func retentionDropsWholeBlocksAndForgetsSeries() async throws {
        let kv = MemoryKV()
        var o = TimeSeriesDB.Options()
        o.retentionMs = 2 * Millis.day
        let db = try TimeSeriesDB(store: kv, options: o, nowMs: t0)
        let old = L(["__name__": "old"])
        let live = L(["__name__": "live"])
        _ = try db.append([SeriesSamples(labels: old, samples: [Sample(t0, 1)]), SeriesSamples(labels: live, samples: [Sample(t0, 1)])], nowMs: t0)
        let later = t0 + 4 * Millis.day
        _ = try db.append([SeriesSamples(labels: live, samples: [Sample(later, 2)])], nowMs: later)
        let report = try db.maintenance(nowMs: later)
        #expect(report.blocksDropped >= 1)
        #expect(report.seriesDeleted == 1)
        let all = try await read(db, [try LabelMatcher(.regexMatch, "__name__", ".+")])
        #expect(Array(all.keys) == [live])
        #expect(bitwiseEqual(all[live]!, [Sample(later, 2)]))
        #expect(db.statistics().totalSeries == 1)
    }

    @Test func compactionMergesOutOfOrderChunksWithoutChangingData() async throws {
        let kv = MemoryKV()
        var o = TimeSeriesDB.Options()
        o.maxOutOfOrderBuffer = 4
        let db = try TimeSeriesDB(store: kv, options: o, nowMs: t0)
        let s = L(["__name__": "ooo"])
        var rng = SeededRandom(seed: 42)
        var expected: [Int64: Double] = [:]
        for _ in 0..<200 {
            let t = t0 + Int64.random(in: 0..<3_600_000, using: &rng) / 1000 * 1000
            let v = Double(Int.random(in: 0..<100, using: &rng))
            _ = try db.append([SeriesSamples(labels: s, samples: [Sample(t, v)])], nowMs: t0)
            if let e = expected[t] { expected[t] = max(e, v) } else { expected[t] = v }
        }
        let want = expected.sorted { $0.key < $1.key }.map { Sample($0.key, $0.value) }
        #expect(bitwiseEqual(try await read(db, [.eq("__name__", "ooo")])[s]!, want))
        let nextDay = t0 + 2 * Millis.day
        let report = try db.maintenance(nowMs: nextDay)
        #expect(report.blocksCompacted >= 1)
        #expect(bitwiseEqual(try await read(db, [.eq("__name__", "ooo")])[s]!, want))
        // No dirty markers remain for that block and a restart sees the same data.
        let restarted = try TimeSeriesDB(store: kv.crash(), options: o, nowMs: nextDay)
        #expect(bitwiseEqual(try await read(restarted, [.eq("__name__", "ooo")])[s]!, want))
    }

    /// A backfill writes a past day faster than real time, and maintenance closes the open
    /// chunks of ended blocks as it goes: each pass cuts a series' chunk short. The chunk opened
    /// after such a cut marks its series-block for compaction, which joins the pieces; live
    /// ingest, whose series move to the new block by themselves, marks nothing.
    @Test func backfilledBlocksAreCompactedWhole() async throws {
        let db = try TimeSeriesDB(store: MemoryKV(), nowMs: t0)
        let s = L(["__name__": "backfilled"])
        let live = L(["__name__": "live"])
        let now = t0 + 3 * Millis.day
        var want: [Sample] = []
        var compacted = 0
        for round in 0..<4 {
            let samples = (0..<50).map { i in Sample(t0 + Int64(round * 50 + i) * 15_000, Double(round * 50 + i)) }
            want += samples
            _ = try db.append([SeriesSamples(labels: s, samples: samples)], nowMs: now)
            // Closes the partial chunk of the past block; from the second round on, also merges
            // it with the chunks before (the block ended long ago: compaction is due at once).
            compacted += try db.maintenance(nowMs: now).blocksCompacted
        }
        // A series ingested live across midnight: its new chunk opens in the current block.
        let midnight = (now / Millis.day + 1) * Millis.day
        _ = try db.append([SeriesSamples(labels: live, samples: [Sample(midnight - 15_000, 1)])], nowMs: midnight - 15_000)
        _ = try db.maintenance(nowMs: midnight - 15_000)
        _ = try db.append([SeriesSamples(labels: live, samples: [Sample(midnight + 15_000, 2)])], nowMs: midnight + 15_000)

        func chunkCount(_ name: String, from: Int64, to: Int64) async throws -> Int {
            let set = try await db.select([.eq("__name__", name)], hints: SelectHints(startMs: from, endMs: to))
            return try #require(try await set.next()).chunks.count
        }
        #expect(compacted == 3)
        #expect(try await chunkCount("backfilled", from: t0, to: t0 + Millis.day) == 1)
        // The live series' block ended two hours ago and was not marked.
        #expect(try db.maintenance(nowMs: midnight + 2 * Millis.hour).blocksCompacted == 0)
        #expect(bitwiseEqual(try await read(db, [.eq("__name__", "live")])[live]!, [Sample(midnight - 15_000, 1), Sample(midnight + 15_000, 2)]))
        #expect(bitwiseEqual(try await read(db, [.eq("__name__", "backfilled")])[s]!, want))
    }

    /// `flush(compact: true)` (the admin flush of benchmarks) merges marked series-blocks that
    /// are due, as maintenance would over several passes, and leaves those not yet due alone.
    @Test func flushWithCompactionMergesMarkedBlocks() async throws {
        var o = TimeSeriesDB.Options()
        o.maxOutOfOrderBuffer = 4
        o.compactionBatch = 1  // several batches
        let db = try TimeSeriesDB(store: MemoryKV(), options: o, nowMs: t0)
        let names = ["a", "b", "c"]
        for name in names {
            for i in [5, 4, 3, 2, 1, 0, 9, 8, 7, 6] {
                _ = try db.append([SeriesSamples(labels: L(["__name__": name]), samples: [Sample(t0 + Int64(i) * 1000, Double(i))])], nowMs: t0)
            }
        }
        func chunks(_ name: String) async throws -> Int {
            let set = try await db.select([.eq("__name__", name)], hints: SelectHints(startMs: t0, endMs: t0 + 10_000))
            return try #require(try await set.next()).chunks.count
        }
        // The next day's samples close the chunks open in the first block.
        let later = (t0 / Millis.day + 1) * Millis.day + 1000
        for name in names { _ = try db.append([SeriesSamples(labels: L(["__name__": name]), samples: [Sample(later, 1)])], nowMs: later) }
        try db.flush(nowMs: later, compact: true)  // the first block ended under an hour ago: not due
        #expect(try await chunks("a") > 1)
        try db.flush(nowMs: t0 + 2 * Millis.day, compact: true)
        for name in names { #expect(try await chunks(name) == 1, "\(name)") }
        #expect(try db.maintenance(nowMs: t0 + 2 * Millis.day).blocksCompacted == 0)
    }

    /// Compaction cuts chunks no shorter than the head does: with 960 samples per chunk, a
    /// block of 900 samples written out of order compacts into one chunk, not into 480s.
    @Test func compactionKeepsALargerChunkSize() async throws {
        var o = TimeSeriesDB.Options()
        o.maxSamplesPerChunk = 960
        o.maxOutOfOrderBuffer = 4
        let db = try TimeSeriesDB(store: MemoryKV(), options: o, nowMs: t0)
        let s = L(["__name__": "big"])
        var rng = SeededRandom(seed: 7)
        for i in (0..<900).shuffled(using: &rng) {
            _ = try db.append([SeriesSamples(labels: s, samples: [Sample(t0 + Int64(i) * 1000, Double(i))])], nowMs: t0)
        }
        #expect(try db.maintenance(nowMs: t0 + 2 * Millis.day).blocksCompacted >= 1)
        let set = try await db.select([.eq("__name__", "big")], hints: SelectHints(startMs: t0 - 1, endMs: t0 + 1_000_000))
        let series = try #require(try await set.next())
        #expect(series.chunks.count == 1)
        #expect(try ChunkOps.merge(series.chunks, minTimeMs: t0, maxTimeMs: t0 + 1_000_000).count == 900)
    }

    @Test func reopenWithOtherShardCountFails() throws {
        let kv = MemoryKV()
        _ = try TimeSeriesDB(store: kv, nowMs: t0)
        var o = TimeSeriesDB.Options()
        o.shardLayout = ShardLayout(shardCount: 16)
        #expect(throws: StorageError.self) { _ = try TimeSeriesDB(store: kv, options: o, nowMs: t0) }
    }
}
