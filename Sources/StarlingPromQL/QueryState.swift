import StarlingCore
import Synchronization

/// Cancels a running query from outside (a client disconnect, a timeout, shutdown). The engine
/// also stops when its task is cancelled; this object additionally says *why*, so the error is
/// "timed out" rather than "canceled".
public final class QueryCancellation: Sendable {
    public enum Reason: Sendable { case canceled, timeout }
    private let state = Mutex<Reason?>(nil)

    public init() {}

    public func cancel(_ reason: Reason = .canceled) {
        state.withLock { if $0 == nil { $0 = reason } }
    }

    public var reason: Reason? { state.withLock { $0 } }
}

/// Counters of limits being hit, for the node's `/metrics`.
public final class PromQLMetrics: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    public init() {}

    /// `limit` is one of `max_samples`, `timeout`, `max_points_per_series`.
    public func limitHit(_ limit: String) { counts.withLock { $0[limit, default: 0] += 1 } }

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
