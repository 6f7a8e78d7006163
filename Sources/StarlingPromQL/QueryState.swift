import StarlingCore
import Synchronization

/// Cancels a running query from outside (a client disconnect, a timeout, shutdown). The engine
/// also stops when its task is cancelled; this object additionally says *why*, so the error is
/// "timed out" rather than "canceled".
public final class QueryCancellation: Sendable {
    public enum Reason: Sendable { case canceled, timeout }
    private let state = Mutex<Reason?>(nil)
    private let deadlinePassed: (@Sendable () -> Bool)?

    /// - Parameter deadlinePassed: asked at every cancellation check, true once the query's
    ///   deadline has passed on the clock it runs under. A timer that cancels the query runs
    ///   concurrently with it and may be late; this check makes a query that is still running
    ///   past its deadline fail with `.timeout` at its next check, whatever the scheduling.
    public init(deadlinePassed: (@Sendable () -> Bool)? = nil) {
        self.deadlinePassed = deadlinePassed
    }

    public func cancel(_ reason: Reason = .canceled) {
        state.withLock { if $0 == nil { $0 = reason } }
    }

    public var reason: Reason? {
        if let r = state.withLock({ $0 }) { return r }
        if deadlinePassed?() == true {
            cancel(.timeout)
            return state.withLock { $0 }
        }
        return nil
    }
}

/// Counters of limits being hit, for the node's `/metrics`.
public final class PromQLMetrics: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    private let onLimitHit: (@Sendable (String) -> Void)?

    /// - Parameter onLimitHit: also called on every hit, so the node can count it in its own
    ///   metrics registry (this pure target knows no registry).
    public init(onLimitHit: (@Sendable (String) -> Void)? = nil) {
        self.onLimitHit = onLimitHit
    }

    /// `limit` is one of `max_samples`, `timeout`, `max_points_per_series`.
    public func limitHit(_ limit: String) {
        counts.withLock { $0[limit, default: 0] += 1 }
        onLimitHit?(limit)
    }

    public var limitHits: [String: Int] { counts.withLock { $0 } }
}

/// Per-query mutable state shared by the evaluators of one query (subqueries and step-invariant
/// parts run in their own evaluator): the sample accounting behind `maxSamples`, warnings from
/// partial storage answers, and cancellation.
final class QueryState {
    let settings: EngineSettings
    let cancellation: QueryCancellation?
    let metrics: PromQLMetrics?
    /// Samples currently held (selected points in range windows plus points of live results).
    private(set) var currentSamples = 0
    private(set) var peakSamples = 0
    var warnings: [String] = []
    private var checks = 0

    init(settings: EngineSettings, cancellation: QueryCancellation?, metrics: PromQLMetrics?) {
        self.settings = settings
        self.cancellation = cancellation
        self.metrics = metrics
    }

    /// Accounts for `n` more samples held; fails the query past `maxSamples`.
    @inline(__always)
    func hold(_ n: Int) throws(PromQLError) {
        currentSamples += n
        if currentSamples > peakSamples { peakSamples = currentSamples }
        if currentSamples > settings.maxSamples {
            metrics?.limitHit("max_samples")
            throw .tooManySamples
        }
    }

    @inline(__always)
    func release(_ n: Int) { currentSamples -= n }

    /// Throws when the query was canceled or timed out. Cheap enough for inner loops: the lock is
    /// only taken every 64th call.
    @inline(__always)
    func checkCanceled() throws(PromQLError) {
        checks &+= 1
        if checks & 63 != 0 { return }
        try checkCanceledNow()
    }

    func checkCanceledNow() throws(PromQLError) {
        if let r = cancellation?.reason {
            throw r == .timeout ? .timeout : .canceled
        }
        if Task.isCancelled { throw .canceled }
    }

    func addWarnings(_ w: [String]) {
        for x in w where !warnings.contains(x) { warnings.append(x) }
    }
}
