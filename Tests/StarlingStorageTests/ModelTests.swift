import StarlingCore
import StarlingTestKit
import Testing

@testable import StarlingStorage

/// A seeded, model-based test of the whole store: random appends (in order, out of order,
/// duplicates, conflicting values, day boundaries), checkpoints, maintenance (compaction,
/// eviction), injected write failures and crashes with restart — after every step the store
/// must answer exactly what a trivial reference model holds. A failure prints its seed; set
/// `STARLING_MODEL_SEED` to replay it and `STARLING_MODEL_RUNS` for a longer sweep.
@Suite struct ModelTests {
    struct Model {
        var series: [Labels: [Int64: Double]] = [:]

        mutating func add(_ labels: Labels, _ s: Sample) {
            if let e = series[labels]?[s.timestampMs] {
                if HeadSeries.wins(s.value, over: e) { series[labels]![s.timestampMs] = s.value }
            } else {
                series[labels, default: [:]][s.timestampMs] = s.value
            }
        }

        func samples(_ labels: Labels, _ start: Int64, _ end: Int64) -> [Sample] {
            (series[labels] ?? [:]).filter { $0.key >= start && $0.key <= end }.sorted { $0.key < $1.key }.map { Sample($0.key, $0.value) }
        }
    }

    static var seeds: [UInt64] {
        if let s = ProcessInfoLite.env("STARLING_MODEL_SEED"), let v = UInt64(s) { return [v] }
        let runs = ProcessInfoLite.env("STARLING_MODEL_RUNS").flatMap { Int($0) } ?? 6
        return (0..<UInt64(runs)).map { 1000 + $0 }
    }

    @Test(arguments: ModelTests.seeds)
    func storeMatchesModel(seed: UInt64) async throws {
        var rng = SeededRandom(seed: seed)
        var options = TimeSeriesDB.Options()
        options.maxSamplesPerChunk = 16
        options.maxOutOfOrderBuffer = 8
        options.maxSamplesPerCompactedChunk = 40
        options.checkpointIntervalMs = 10 * Millis.minute
        options.compactionDelayMs = 10 * Millis.minute
        options.shardLayout = ShardLayout(shardCount: 8)
        // Odd seeds run the recent-chunk cache small enough to evict all the time.
        options.chunkCacheBytes = seed % 2 == 0 ? 64 << 20 : 2_048
        var now = t0 - t0 % Millis.day + 20 * Millis.hour  // close to a day boundary
        var kv = MemoryKV()
        var db = try TimeSeriesDB(store: kv, options: options, nowMs: now)
        var model = Model()
        let universe: [Labels] = (0..<12).map { i in
            var b = LabelsBuilder()
            b.set("__name__", i % 3 == 0 ? "cpu" : "mem")
            b.set("host", "h\(i % 4)")
            if i % 2 == 0 { b.set("env", i % 4 == 0 ? "prod" : "dev") }
            return b.build()
        }
        var lastT: [Labels: Int64] = [:]

        func check(_ step: Int, _ what: String) async throws {
            // A wide range, then a recent one: the recent-chunk cache serves both from entries
            // filled from different starting times.
            for start in [now - 3 * Millis.day, now - 2 * Millis.hour] {
                try await check(step, what, start: start, end: now + Millis.day)
            }
        }

        func check(_ step: Int, _ what: String, start: Int64, end: Int64) async throws {
            let matcherSets: [[LabelMatcher]] = [
                [try LabelMatcher(.regexMatch, "__name__", ".+")],
                [.eq("__name__", "cpu")],
                [.eq("__name__", "mem"), .eq("host", "h1")],
                [.eq("env", "")],
                [try LabelMatcher(.notEqual, "env", "prod"), try LabelMatcher(.regexMatch, "host", "h[12]")],
            ]
            for m in matcherSets {
                let got = try await read(db, m, start, end)
                let want = model.series.keys.filter { m.matches($0) && !model.samples($0, start, end).isEmpty }
                #expect(Set(got.keys) == Set(want), "seed \(seed) step \(step) after \(what): series for \(m)")
                for l in want {
                    let ok = bitwiseEqual(got[l] ?? [], model.samples(l, start, end))
                    #expect(ok, "seed \(seed) step \(step) after \(what): samples of \(l)")
                    if !ok { return }
                }
            }
        }

        for step in 0..<300 {
            let op = Int.random(in: 0..<100, using: &rng)
            switch op {
            case 0..<70:
                // An append of a few series.
                var batch: [SeriesSamples] = []
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    let l = universe.randomElement(using: &rng)!
                    var ss: [Sample] = []
                    for _ in 0..<Int.random(in: 1...5, using: &rng) {
                        let kind = Int.random(in: 0..<10, using: &rng)
                        let last = lastT[l] ?? (now - Millis.hour)
                        let t: Int64
                        switch kind {
                        case 0..<6: t = last + Int64.random(in: 1...30_000, using: &rng)
                        case 6..<8: t = last - Int64.random(in: 0...Millis.hour, using: &rng)
                        default: t = model.series[l]?.keys.randomElement(using: &rng) ?? last + 1
                        }
                        let v: Double = Int.random(in: 0..<20, using: &rng) == 0 ? StaleMarker.value : Double(Int.random(in: 0..<50, using: &rng)) / 4
                        ss.append(Sample(t, v))
                        lastT[l] = max(lastT[l] ?? t, t)
                    }
                    batch.append(SeriesSamples(labels: l, samples: ss))
                }
                if Int.random(in: 0..<25, using: &rng) == 0 {
                    kv.failWrites = true
                    #expect(throws: StorageError.self) { _ = try db.append(batch, nowMs: now) }
                    kv.failWrites = false
                    // The store refuses further writes until a restart.
                    kv = kv.crash()
                    db = try TimeSeriesDB(store: kv, options: options, nowMs: now)
                    try await check(step, "failed write + restart")
                } else {
                    let r = try db.append(batch, nowMs: now)
                    #expect(r.rejected.isEmpty, "seed \(seed) step \(step): \(r.rejected)")
                    for s in batch { for x in s.samples { model.add(s.labels, x) } }
                }
            case 70..<80:
                now += Int64.random(in: 0...(3 * Millis.hour), using: &rng)
            case 80..<88:
                _ = try db.maintenance(nowMs: now)
            case 88..<92:
                try db.checkpoint(nowMs: now)
            default:
                kv = kv.crash()
                db = try TimeSeriesDB(store: kv, options: options, nowMs: now)
                #expect(db.recovery.corruptRecords == 0)
            }
            if step % 5 == 0 || op >= 80 { try await check(step, "op \(op)") }
        }
        try await check(300, "end")
    }
}

/// Environment access without Foundation in test helpers.
enum ProcessInfoLite {
    static func env(_ name: String) -> String? {
        guard let p = getenv(name) else { return nil }
        return String(cString: p)
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// The head's series map keys on the 64-bit label hash; label sets sharing one must stay
/// distinct through register, lookup and eviction in any order.
@Suite struct HeadSeriesMapTests {
    @Test func labelSetsWithTheSameHashStayDistinct() {
        let hash: UInt64 = 42
        let a = HeadSeries(id: SeriesID(rawValue: 1), labels: Labels(["__name__": "a"]), labelsHash: hash, persisted: true, lastIndexedBlock: 0)
        let b = HeadSeries(id: SeriesID(rawValue: 2), labels: Labels(["__name__": "b"]), labelsHash: hash, persisted: true, lastIndexedBlock: 0)
        let c = HeadSeries(id: SeriesID(rawValue: 3), labels: Labels(["__name__": "c"]), labelsHash: hash, persisted: true, lastIndexedBlock: 0)
        var h = HeadState()
        h.register(a)
        h.register(b)
        #expect(h.series(a.labels, hash: hash) === a)
        #expect(h.series(b.labels, hash: hash) === b)
        #expect(h.series(c.labels, hash: hash) == nil)
        // Evicting the first registered leaves the collision reachable; a newcomer takes the slot.
        h.evict(a)
        #expect(h.series(a.labels, hash: hash) == nil)
        #expect(h.series(b.labels, hash: hash) === b)
        h.register(c)
        #expect(h.series(c.labels, hash: hash) === c)
        #expect(h.series(b.labels, hash: hash) === b)
        h.evict(b)
        #expect(h.series(b.labels, hash: hash) == nil)
        #expect(h.series(c.labels, hash: hash) === c)
        h.evict(c)
        #expect(h.byHash.isEmpty && h.hashCollisions.isEmpty && h.byID.isEmpty)
    }
}
