import Synchronization

/// Prometheus's operational limits around query execution, with time as an input: at most
/// `maxConcurrent` queries run at once (others wait their turn, first come first served), and
/// each is canceled with reason `.timeout` once its timeout has elapsed on the given clock. The
/// HTTP shell passes `ContinuousClock()`; tests pass a manual clock. One limiter is meant to be
/// used with one clock.
///
/// A query checks its own deadline at every cancellation check (`QueryCancellation`). A query
/// suspended where it checks nothing (waiting for a peer) is canceled by the limiter's
/// **watchdog**: one task that sleeps until the earliest deadline of the running queries and
/// cancels the ones past it. It is replaced when a query with an earlier deadline arrives. Once
/// no query runs it lingers for one more timeout (the last query's) and ends only if none was
/// registered meanwhile, so back-to-back queries share it. Queries thus cost a registration,
/// not a timer task each: a child task and a clock sleep per query were a tenth of a small
/// query's server time, and a new watchdog per query (when small queries finished before it
/// first ran) woke a thread of the global executor for every query.
public final class QueryLimiter: Sendable {
    /// Queries running at once. Default 20 (Prometheus `--query.max-concurrency`).
    public let maxConcurrent: Int
    private let slots: Semaphore

    private struct Watched {
        var passed: @Sendable () -> Bool
        /// Time left until the deadline, on the query's clock (≤ 0 once passed).
        var remaining: @Sendable () -> Duration
        var cancellation: QueryCancellation
    }
    private struct WatchState {
        var queries: [UInt64: Watched] = [:]
        var nextID: UInt64 = 0
        /// The watchdog, and the `remaining` of the query it sleeps for when it started sleeping.
        var watchdog: Task<Void, Never>?
        var watchdogGeneration: UInt64 = 0
        var sleepingUntilRemaining: Duration?
        /// The time left of the last query registered, when it was: how long an idle watchdog lingers.
        var lastTimeout: Duration = .zero
        /// Registrations so far: an idle watchdog ends if none came while it lingered.
        var registrations: UInt64 = 0
    }
    private let watch = Mutex(WatchState())

    public init(maxConcurrent: Int = 20) {
        precondition(maxConcurrent > 0, "maxConcurrent must be positive")
        self.maxConcurrent = maxConcurrent
        self.slots = Semaphore(maxConcurrent)
    }

    /// Runs `body` with a cancellation that fires `.timeout` after `timeout` on `clock`, or
    /// `.canceled` when the calling task is canceled.
    public func run<C: Clock, T: Sendable>(
        timeout: Duration, clock: C,
        _ body: @Sendable (QueryCancellation) async throws(PromQLError) -> T
    ) async throws(PromQLError) -> T where C.Duration == Duration {
        do {
            try await slots.acquire()
        } catch {
            throw .canceled
        }
        defer { slots.release() }
        let deadline = clock.now.advanced(by: timeout)
        let cancellation = QueryCancellation(deadlinePassed: { clock.now >= deadline })
        let id = register(Watched(passed: { clock.now >= deadline }, remaining: { clock.now.duration(to: deadline) }, cancellation: cancellation), clock: clock)
        defer { watch.withLock { _ = $0.queries.removeValue(forKey: id) } }
        do {
            return try await withTaskCancellationHandler {
                try await body(cancellation)
            } onCancel: {
                cancellation.cancel(.canceled)
            }
        } catch let e as PromQLError {
            throw e
        } catch {
            throw .canceled
        }
    }

    /// Adds a query to the watch list; starts a watchdog when none runs or when this query's
    /// deadline may come before the watchdog wakes. The test compares this query's time left
    /// with what the watchdog's had when it went to sleep: it never misses an earlier deadline
    /// (time has only passed since), and with one timeout for all queries it never fires.
    private func register<C: Clock>(_ w: Watched, clock: C) -> UInt64 where C.Duration == Duration {
        watch.withLock { s in
            s.nextID &+= 1
            let id = s.nextID
            s.queries[id] = w
            s.registrations &+= 1
            let mine = w.remaining()
            s.lastTimeout = mine
            if s.watchdog == nil || (s.sleepingUntilRemaining.map { mine < $0 } ?? false) {
                s.watchdog?.cancel()
                s.watchdogGeneration &+= 1
                let generation = s.watchdogGeneration
                s.sleepingUntilRemaining = mine
                s.watchdog = Task { [weak self] in await self?.watchdog(clock: clock, generation: generation) }
            }
            return id
        }
    }

    private func watchdog<C: Clock>(clock: C, generation: UInt64) async where C.Duration == Duration {
        // The registration count when the watchdog last found no query: it lingers once per idle
        // spell and ends when a whole linger passed without a new query.
        var idleSince: UInt64?
        while true {
            // Cancel what is past its deadline; find how long until the next one.
            let next: Duration? = watch.withLock { s in
                guard s.watchdogGeneration == generation else { return nil }
                var earliest: Duration?
                for w in s.queries.values {
                    if w.passed() {
                        w.cancellation.cancel(.timeout)
                        continue
                    }
                    let r = w.remaining()
                    if earliest.map({ r < $0 }) ?? true { earliest = r }
                }
                if let earliest {
                    idleSince = nil
                    s.sleepingUntilRemaining = earliest
                    return earliest
                }
                if idleSince == s.registrations || s.lastTimeout <= .zero {
                    s.watchdog = nil
                    s.sleepingUntilRemaining = nil
                    return nil
                }
                // Idle: sleep one timeout more. A query registered meanwhile with a shorter time
                // left replaces this watchdog; one with as much or more is checked on waking.
                idleSince = s.registrations
                s.sleepingUntilRemaining = s.lastTimeout
                return s.lastTimeout
            }
            guard let next else { return }
            do {
                try await clock.sleep(for: next)
            } catch {
                return  // replaced by a watchdog for an earlier deadline
            }
        }
    }
}

/// A counting semaphore for tasks, FIFO.
final class Semaphore: Sendable {
    private struct State {
        var available: Int
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        var nextID: UInt64 = 0
    }
    private let state: Mutex<State>

    init(_ count: Int) { state = Mutex(State(available: count)) }

    func acquire() async throws {
        let id = state.withLock { s -> UInt64? in
            if s.available > 0 {
                s.available -= 1
                return nil
            }
            s.nextID += 1
            return s.nextID
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let resumeNow = state.withLock { s -> Bool in
                    if Task.isCancelled { return true }
                    s.waiters.append((id, c))
                    return false
                }
                if resumeNow { c.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            let c = state.withLock { s -> CheckedContinuation<Void, any Error>? in
                guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: i).continuation
            }
            c?.resume(throwing: CancellationError())
        }
    }

    func release() {
        let c = state.withLock { s -> CheckedContinuation<Void, any Error>? in
            if s.waiters.isEmpty {
                s.available += 1
                return nil
            }
            return s.waiters.removeFirst().continuation
        }
        c?.resume()
    }
}
