import StarlingCore
import StarlingPromQL
import Synchronization

/// Where a PromQL query is evaluated: on the blocking pool, or inline on the task that serves its
/// request (with `http.single_event_loop`, the event loop of its connection).
///
/// Evaluation reads storage synchronously, so it belongs on the blocking pool (`BlockingExecutor`).
/// But the hop there and back wakes two threads, and for a query that evaluates in a few hundred
/// microseconds those wake-ups are a fifth of its latency over a new connection (measured in
/// docs/benchmarks.md). Dashboards repeat the same queries on every refresh, so the previous
/// evaluation of a query is a good forecast of the next: a query whose last evaluation took at
/// most `budget` runs inline, any other on the pool. One that overruns the budget inline goes back
/// to the pool from its next run on, so the loop is held longer than the budget at most once per
/// change in a query's cost.
///
/// Queries are told apart by their text and shape: an instant query by its expression, a range
/// query also by its step count and range, each rounded to a power of two (a dashboard's sliding
/// window keeps both). At most `maxEntries` shapes are remembered; when full, the memory starts
/// over (every query then makes one trip to the pool again).
public final class QueryPlacement: Sendable {
    /// Longest previous evaluation that still runs inline; `.zero` keeps every query on the pool.
    public let budget: Duration
    public let maxEntries: Int
    /// Longest expression remembered: longer ones (generated regexes) always take the pool.
    static let maxKeyBytes = 4096
    private let lastCost = Mutex([String: Duration]())
    /// Told after every evaluation whether it ran inline (true) or on the pool.
    private let placed: @Sendable (_ inline: Bool) -> Void

    public init(budget: Duration, maxEntries: Int = 4096, placed: @escaping @Sendable (_ inline: Bool) -> Void = { _ in }) {
        precondition(maxEntries > 0, "maxEntries must be positive")
        self.budget = budget
        self.maxEntries = maxEntries
        self.placed = placed
    }

    /// The key of an instant query, or nil when it is not to be remembered.
    public static func instantKey(_ params: FormParameters) -> String? {
        guard let q = params["query"], q.utf8.count <= maxKeyBytes else { return nil }
        return "i " + q
    }

    /// The key of a range query, or nil when its parameters do not parse (the API answers 400)
    /// or it is not to be remembered.
    public static func rangeKey(_ params: FormParameters) -> String? {
        guard let q = params["query"], q.utf8.count <= maxKeyBytes,
              let start = params["start"].flatMap(parseAPITime), let end = params["end"].flatMap(parseAPITime),
              case .success(let stepDuration) = parseAPIDuration(params["step"] ?? ""), stepDuration.milliseconds > 0
        else { return nil }
        // The span of far-apart times overflows: the API refuses such a query.
        let (span, overflow) = end.subtractingReportingOverflow(start)
        guard !overflow, span >= 0 else { return nil }
        let steps = UInt64(span / stepDuration.milliseconds + 1)
        return "r \(64 - steps.leadingZeroBitCount) \(64 - UInt64(span).leadingZeroBitCount) " + q
    }

    /// Whether the query of `key` runs inline.
    public func runsInline(_ key: String?) -> Bool {
        guard let key, budget > .zero else { return false }
        return lastCost.withLock { $0[key] }.map { $0 <= budget } ?? false
    }

    /// Records how long the query of `key` took to evaluate.
    public func record(_ key: String?, _ elapsed: Duration) {
        guard let key, budget > .zero else { return }
        lastCost.withLock { costs in
            if costs.count >= maxEntries && costs[key] == nil { costs.removeAll(keepingCapacity: true) }
            costs[key] = elapsed
        }
    }

    /// Evaluates `body` where the last evaluation of `key` says, and records its time.
    public func run<T: Sendable>(_ key: String?, pool: BlockingExecutor, _ body: @escaping @Sendable () async -> T) async throws -> T {
        let clock = ContinuousClock()
        if runsInline(key) {
            let start = clock.now
            let result = await body()
            record(key, start.duration(to: clock.now))
            placed(true)
            return result
        }
        defer { placed(false) }
        return try await pool.runAsync {
            let start = clock.now
            let result = await body()
            record(key, start.duration(to: clock.now))
            return result
        }
    }
}
