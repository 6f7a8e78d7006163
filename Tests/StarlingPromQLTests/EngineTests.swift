import StarlingCore
import Synchronization
import Testing

@testable import StarlingPromQL
@testable import StarlingTestKit
import StarlingChunk

/// A querier that records the hints of every select and can fail or stall.
final class RecordingQuerier: Querier, Sendable {
    let inner: MemoryQuerier
    let hints = Mutex<[SelectHints]>([])
    let failWith: String?

    init(_ inner: MemoryQuerier, failWith: String? = nil) {
        self.inner = inner
        self.failWith = failWith
    }

    struct Failure: Error, CustomStringConvertible { var description: String }

    func select(_ matchers: [LabelMatcher], hints h: SelectHints) async throws -> any SeriesSet {
        hints.withLock { $0.append(h) }
        if let f = failWith { throw Failure(description: f) }
        return try await inner.select(matchers, hints: h)
    }
    func series(_ m: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[Labels]> {
        try await inner.series(m, startMs: startMs, endMs: endMs, limit: limit)
    }
    func labelNames(_ m: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[String]> {
        try await inner.labelNames(m, startMs: startMs, endMs: endMs, limit: limit)
    }
    func labelValues(_ n: String, _ m: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[String]> {
        try await inner.labelValues(n, m, startMs: startMs, endMs: endMs, limit: limit)
    }
}

/// A series set that produces series lazily and counts how many were requested, to check that
/// the engine streams and stops early when canceled.
final class CountingSeriesSet: SeriesSet, @unchecked Sendable {
    let total: Int
    let chunk: EncodedChunk
    var produced = 0
    let onNext: @Sendable (Int) -> Void

    init(total: Int, chunk: EncodedChunk, onNext: @escaping @Sendable (Int) -> Void) {
        self.total = total
        self.chunk = chunk
        self.onNext = onNext
    }

    func next() async throws -> SeriesChunks? {
        guard produced < total else { return nil }
        produced += 1
        onNext(produced)
        return SeriesChunks(labels: Labels(["__name__": "big", "i": String(produced)]), chunks: [chunk])
    }
    var warnings: [String] { [] }
}

@Suite struct EngineTests {
    static func querier(_ series: [(Labels, [Sample])]) -> MemoryQuerier {
        let q = MemoryQuerier(samplesPerChunk: 4)
        for (l, s) in series { q.add(l, s) }
        return q
    }

    static let counters = querier([
        (Labels(["__name__": "c", "job": "a"]), (0...60).map { Sample(Int64($0) * 15_000, Double($0) * 10) }),
        (Labels(["__name__": "c", "job": "b"]), (0...60).map { Sample(Int64($0) * 15_000, Double($0) * 20) }),
    ])

    @Test func instantVectorAndScalar() async throws {
        let e = Engine()
        let r = try await e.instantQuery("sum(rate(c[1m]))", timeMs: 600_000, querier: Self.counters)
        guard case .vector(let v) = r.value else { Issue.record("not a vector"); return }
        #expect(v.count == 1)
        #expect(Swift.abs(v[0].value - 2.0) < 1e-12)
        #expect(v[0].timestampMs == 600_000)
        let s = try await e.instantQuery("scalar(sum(c))", timeMs: 600_000, querier: Self.counters)
        guard case .scalar(let t, let x) = s.value else { Issue.record("not a scalar"); return }
        #expect(t == 600_000 && x == 1200)
    }

    @Test func rangeQueryIsSortedAndAligned() async throws {
        let r = try await Engine().rangeQuery("c * 1", startMs: 0, endMs: 120_000, stepMs: 30_000, querier: Self.counters)
        guard case .matrix(let m) = r.value else { Issue.record("not a matrix"); return }
        #expect(m.map { $0.labels.get("job") } == ["a", "b"])
        #expect(m[0].samples.map(\.timestampMs) == [0, 30_000, 60_000, 90_000, 120_000])
        #expect(m[1].samples.map(\.value) == [0, 40, 80, 120, 160])
    }

    @Test func rangeQueryValidation() async throws {
        let e = Engine()
        await #expect(throws: PromQLError.badData("invalid expression type \"range vector\" for range query, must be Scalar or instant Vector")) {
            try await e.rangeQuery("c[5m]", startMs: 0, endMs: 60_000, stepMs: 1000, querier: Self.counters)
        }
        await #expect(throws: PromQLError.badData("invalid expression type \"string\" for range query, must be Scalar or instant Vector")) {
            try await e.rangeQuery("\"x\"", startMs: 0, endMs: 60_000, stepMs: 1000, querier: Self.counters)
        }
        await #expect(throws: PromQLError.badData("zero or negative query resolution step widths are not accepted. Try a positive integer")) {
            try await e.rangeQuery("c", startMs: 0, endMs: 60_000, stepMs: 0, querier: Self.counters)
        }
        await #expect(throws: PromQLError.badData("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")) {
            try await e.rangeQuery("c", startMs: 0, endMs: 11_001_000, stepMs: 1000, querier: Self.counters)
        }
        // Exactly 11,000 steps (11,001 points) is allowed, as in Prometheus.
        _ = try await e.rangeQuery("c", startMs: 0, endMs: 11_000_000, stepMs: 1000, querier: Self.counters)
        #expect(e.metrics.limitHits["max_points_per_series"] == 1)
    }

    @Test func parseErrorsCarryPositions() async throws {
        do {
            _ = try await Engine().instantQuery("sum(rate(c[5m])", timeMs: 0, querier: Self.counters)
            Issue.record("expected an error")
        } catch {
            #expect(error == .parse("1:16: parse error: unclosed left parenthesis"))
            #expect(error.errorType == "bad_data")
        }
    }

    @Test func maxSamplesLimit() async throws {
        let small = Engine(settings: .testing(maxSamples: 50))
        await #expect(throws: PromQLError.tooManySamples) {
            try await small.rangeQuery("c", startMs: 0, endMs: 900_000, stepMs: 15_000, querier: Self.counters)
        }
        #expect(small.metrics.limitHits["max_samples"] == 1)
        // A small answer fits.
        _ = try await small.instantQuery("c", timeMs: 900_000, querier: Self.counters)
        // Large windows count too.
        await #expect(throws: PromQLError.tooManySamples) {
            try await small.instantQuery("count_over_time(c[15m])", timeMs: 900_000, querier: Self.counters)
        }
        #expect(PromQLError.tooManySamples.description == "query processing would load too many samples into memory in query execution")
    }

    @Test func selectHintsCoverWhatIsRead() async throws {
        let rec = RecordingQuerier(Self.counters)
        _ = try await Engine().instantQuery("rate(c[5m] offset 1h)", timeMs: 10_000_000, querier: rec)
        _ = try await Engine().instantQuery("c @ 100", timeMs: 10_000_000, querier: rec)
        _ = try await Engine().rangeQuery("sum(c)", startMs: 1_000_000, endMs: 2_000_000, stepMs: 10_000, querier: rec)
        let h = rec.hints.withLock { $0 }
        #expect(h[0].startMs == 10_000_000 - 3_600_000 - 300_000 && h[0].endMs == 10_000_000 - 3_600_000)
        #expect(h[0].function == "rate")
        #expect(h[1].startMs == 100_000 - 300_000 && h[1].endMs == 100_000)
        #expect(h[2].startMs == 1_000_000 - 300_000 && h[2].endMs == 2_000_000 && h[2].stepMs == 10_000)
    }

    @Test func warningsArePropagated() async throws {
        let q = Self.querier([(Labels(["__name__": "x"]), [Sample(0, 1)])])
        q.setWarnings(["shard 7: no replica reachable"])
        let r = try await Engine().instantQuery("sum(x) + sum(x)", timeMs: 0, querier: q)
        #expect(r.warnings == ["shard 7: no replica reachable"])
        let json = String(decoding: PrometheusJSON.queryResponse(r.value, warnings: r.warnings), as: UTF8.self)
        #expect(json == #"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[0,"2"]}]},"warnings":["shard 7: no replica reachable"]}"#)
    }

    @Test func storageErrorsBecomeQueryErrors() async throws {
        let rec = RecordingQuerier(Self.counters, failWith: "disk on fire")
        await #expect(throws: PromQLError.storage("expanding series: disk on fire")) {
            try await Engine().instantQuery("c", timeMs: 0, querier: rec)
        }
    }

    @Test func lookbackDeltaOverride() async throws {
        let q = Self.querier([(Labels(["__name__": "x"]), [Sample(0, 1)])])
        let e = Engine()
        let late = try await e.instantQuery("x", timeMs: 400_000, querier: q)
        guard case .vector(let v1) = late.value else { Issue.record("shape"); return }
        #expect(v1.isEmpty)
        let wide = try await e.instantQuery("x", timeMs: 400_000, querier: q, options: .init(lookbackDeltaMs: 600_000))
        guard case .vector(let v2) = wide.value else { Issue.record("shape"); return }
        #expect(v2.count == 1)
    }

    @Test func cancellationStopsTheQuery() async throws {
        let c = QueryCancellation()
        c.cancel(.timeout)
        await #expect(throws: PromQLError.timeout) {
            try await Engine().instantQuery("c", timeMs: 0, querier: Self.counters, options: .init(cancellation: c))
        }
        let d = QueryCancellation()
        d.cancel()
        await #expect(throws: PromQLError.canceled) {
            try await Engine().instantQuery("sum(c)", timeMs: 0, querier: Self.counters, options: .init(cancellation: d))
        }
    }

    /// A series set of 100,000 series is consumed one series at a time: canceling after 1,000
    /// stops reading at once.
    @Test func streamsAndStopsEarly() async throws {
        let chunk = ChunkEncoderShim.chunk([Sample(0, 1)])
        let c = QueryCancellation()
        let requested = Mutex(0)
        final class BigQuerier: Querier, Sendable {
            let make: @Sendable () -> any SeriesSet
            init(_ make: @escaping @Sendable () -> any SeriesSet) { self.make = make }
            func select(_ m: [LabelMatcher], hints: SelectHints) async throws -> any SeriesSet { make() }
            func series(_ m: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[Labels]> { QueryResult([]) }
            func labelNames(_ m: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[String]> { QueryResult([]) }
            func labelValues(_ n: String, _ m: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[String]> { QueryResult([]) }
        }
        let q = BigQuerier {
            CountingSeriesSet(total: 100_000, chunk: chunk) { n in
                requested.withLock { $0 = n }
                if n == 1_000 { c.cancel() }
            }
        }
        await #expect(throws: PromQLError.canceled) {
            try await Engine().instantQuery("sum(big)", timeMs: 0, querier: q, options: .init(cancellation: c))
        }
        #expect(requested.withLock { $0 } == 1_000)
        // Uncanceled, the whole set is aggregated without materializing the selector.
        let all = try await Engine(settings: .testing(maxSamples: 10)).instantQuery("count(big)", timeMs: 0, querier: BigQuerier {
            CountingSeriesSet(total: 100_000, chunk: chunk) { _ in }
        })
        guard case .vector(let v) = all.value else { Issue.record("shape"); return }
        #expect(v.first?.value == 100_000)
    }

    /// One watchdog sleeps for all running queries: until the earliest deadline, replaced when a
    /// query with an earlier one starts, gone when no query runs.
    @Test func limiterWatchdogFollowsTheEarliestDeadline() async throws {
        let clock = ManualTestClock()
        let limiter = QueryLimiter(maxConcurrent: 2)
        let untilCanceled: @Sendable (QueryCancellation) async throws(PromQLError) -> Int = { cancel throws(PromQLError) in
            while true {
                if let r = cancel.reason { throw r == .timeout ? PromQLError.timeout : .canceled }
                await Task.yield()
            }
        }
        func waitFor(_ what: String, _ condition: () -> Bool) async throws {
            for _ in 0..<100_000 where !condition() { await Task.yield() }
            try #require(condition(), "\(what)")
        }
        let long = Task { () async -> PromQLError? in
            do throws(PromQLError) { _ = try await limiter.run(timeout: .seconds(100), clock: clock, untilCanceled) } catch { return error }
            return nil
        }
        try await waitFor("a watchdog sleeping until 100 s") { clock.sleeperDeadlines == [.seconds(100)] }
        let short = Task { () async -> PromQLError? in
            do throws(PromQLError) { _ = try await limiter.run(timeout: .seconds(5), clock: clock, untilCanceled) } catch { return error }
            return nil
        }
        try await waitFor("a watchdog sleeping until 5 s instead") { clock.sleeperDeadlines == [.seconds(5)] }
        await clock.advanceIfWaiting(by: .seconds(6))
        #expect(await short.value == PromQLError.timeout)
        try await waitFor("the watchdog sleeping until 100 s again") { clock.sleeperDeadlines == [.seconds(100)] }
        await clock.advanceIfWaiting(by: .seconds(100))
        #expect(await long.value == PromQLError.timeout)
        // Idle, it lingers for the last query's timeout (the short one's 5 s, from 106 s)...
        try await waitFor("the idle watchdog lingering until 111 s") { clock.sleeperDeadlines == [.seconds(111)] }
        // ...and a query with at least as long a timeout starts no watchdog of its own.
        let quick = try await limiter.run(timeout: .seconds(50), clock: clock) { (_: QueryCancellation) async throws(PromQLError) -> Int in 7 }
        #expect(quick == 7)
        #expect(clock.sleeperDeadlines == [.seconds(111)])
        // A query came while it lingered: it lingers once more, for that query's 50 s...
        await clock.advanceIfWaiting(by: .seconds(5))
        try await waitFor("lingering again until 161 s") { clock.sleeperDeadlines == [.seconds(161)] }
        // ...and a query that runs past the linger is still timed out by it.
        let lateStarted = Mutex(false)
        let late = Task { () async -> PromQLError? in
            do throws(PromQLError) {
                _ = try await limiter.run(timeout: .seconds(60), clock: clock) { cancel throws(PromQLError) in
                    lateStarted.withLock { $0 = true }
                    return try await untilCanceled(cancel)
                }
            } catch { return error }
            return nil
        }
        try await waitFor("the late query running") { lateStarted.withLock { $0 } }
        await clock.advanceIfWaiting(by: .seconds(50))
        try await waitFor("the watchdog sleeping until the late query's deadline") { clock.sleeperDeadlines == [.seconds(171)] }
        await clock.advanceIfWaiting(by: .seconds(10))
        #expect(await late.value == PromQLError.timeout)
        // A whole linger without a query: the watchdog ends.
        try await waitFor("lingering until 231 s") { clock.sleeperDeadlines == [.seconds(231)] }
        await clock.advanceIfWaiting(by: .seconds(60))
        try await waitFor("no watchdog after an idle linger") { clock.sleeperDeadlines.isEmpty }
    }

    @Test func limiterTimesOutOnTheInjectedClock() async throws {
        let clock = ManualTestClock()
        let limiter = QueryLimiter(maxConcurrent: 1)
        let started = Mutex(false)
        await #expect(throws: PromQLError.timeout) {
            try await limiter.run(timeout: .seconds(5), clock: clock) { (cancel: QueryCancellation) async throws(PromQLError) -> Int in
                started.withLock { $0 = true }
                // A query that runs until canceled.
                while true {
                    if let r = cancel.reason { throw r == .timeout ? PromQLError.timeout : .canceled }
                    await Task.yield()
                    if started.withLock({ $0 }) { await clock.advanceIfWaiting(by: .seconds(6)) }
                }
            }
        }
        // A fast query is unaffected and frees its slot.
        let v = try await limiter.run(timeout: .seconds(5), clock: clock) { (_: QueryCancellation) async throws(PromQLError) -> Int in 7 }
        #expect(v == 7)
    }
}

/// Encodes test chunks with the real encoder.
enum ChunkEncoderShim {
    static func chunk(_ samples: [Sample]) -> EncodedChunk { ChunkEncoder.encode(samples)[0] }
}

/// A `Clock` that moves only when told to.
final class ManualTestClock: Clock, Sendable {
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by d: Duration) -> Instant { Instant(offset: offset + d) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (a: Instant, b: Instant) -> Bool { a.offset < b.offset }
    }
    private struct State {
        var now = Instant(offset: .zero)
        var sleepers: [(id: Int, deadline: Instant, c: CheckedContinuation<Void, any Error>)] = []
        var nextID = 0
    }
    private let state = Mutex(State())

    var now: Instant { state.withLock { $0.now } }
    var minimumResolution: Duration { .nanoseconds(1) }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        let id = state.withLock { s -> Int in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let ready = state.withLock { s -> Bool in
                    if Task.isCancelled || s.now >= deadline { return true }
                    s.sleepers.append((id, deadline, c))
                    return false
                }
                if ready {
                    if Task.isCancelled { c.resume(throwing: CancellationError()) } else { c.resume() }
                }
            }
        } onCancel: {
            let c = state.withLock { s -> CheckedContinuation<Void, any Error>? in
                guard let i = s.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return s.sleepers.remove(at: i).c
            }
            c?.resume(throwing: CancellationError())
        }
    }

    /// The deadlines tasks sleep until, as offsets from the clock's start.
    var sleeperDeadlines: [Duration] { state.withLock { $0.sleepers.map(\.deadline.offset) } }

    /// Waits (yielding) until some task sleeps on this clock, then advances it.
    func advanceWhenWaiting(by d: Duration) async {
        while state.withLock({ $0.sleepers.isEmpty }) { await Task.yield() }
        await advanceIfWaiting(by: d)
    }

    /// Advances the clock when a sleeper is waiting, waking those whose deadline passed.
    func advanceIfWaiting(by d: Duration) async {
        let due = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            guard !s.sleepers.isEmpty else { return [] }
            s.now = s.now.advanced(by: d)
            let now = s.now
            let due = s.sleepers.filter { $0.deadline <= now }.map(\.c)
            s.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for c in due { c.resume() }
    }
}

/// The monotonic-queue `max_over_time` / `min_over_time` of range queries, and the one-window
/// pass of instant queries, against the linear scan of `RangeFunction.apply`, bit for bit, over windows that move forward by random amounts
/// across values with NaNs, ±0 and repeats.
@Suite struct SlidingExtremumTests {
    @Test(arguments: [true, false])
    func matchesTheLinearScan(max: Bool) throws {
        var rng = SeededRandom(seed: max ? 5 : 6)
        let palette: [Double] = [.nan, 0, -0.0, 1, -1, 2, .infinity, -.infinity, 3.5, 3.5]
        for round in 0..<400 {
            let n = 1 + Int(rng.next() % 80)
            let samples = (0..<n).map { i -> Sample in
                let v = rng.next() % 3 == 0 ? palette[Int(rng.next() % UInt64(palette.count))] : Double(Int(rng.next() % 7) - 3)
                return Sample(Int64(i) * 10, v)
            }
            let fn: RangeFunction = max ? .maxOverTime : .minOverTime
            var sliding = SlidingExtremum(max: max)
            var lo = 0, hi = 0
            while hi < n {
                hi = Swift.min(n, hi + 1 + Int(rng.next() % 4))
                lo = Swift.max(lo, hi - 1 - Int(rng.next() % 12))
                let w = RangeWindow(mintMs: 0, maxtMs: 0, rangeMs: 0, stepTimeMs: 0)
                let expected = try #require(try fn.apply(samples[lo..<hi], w, scalars: []))
                let got = sliding.value(samples, lo: lo, hi: hi)
                #expect(got.bitPattern == expected.bitPattern || (got.isNaN && expected.isNaN), "round \(round), window \(lo)..<\(hi): \(got) vs \(expected)")
                // The one-window pass of instant queries.
                let single = SlidingExtremum.single(samples, lo: lo, hi: hi, max: max)
                #expect(single.bitPattern == got.bitPattern, "round \(round), window \(lo)..<\(hi): single \(single) vs \(got)")
            }
        }
    }
}
