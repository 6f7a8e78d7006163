import Synchronization

/// Prometheus's operational limits around query execution, with time as an input: at most
/// `maxConcurrent` queries run at once (others wait their turn, first come first served), and
/// each is canceled with reason `.timeout` once its timeout has elapsed on the given clock. The
/// HTTP shell passes `ContinuousClock()`; tests pass a manual clock.
public final class QueryLimiter: Sendable {
    /// Queries running at once. Default 20 (Prometheus `--query.max-concurrency`).
    public let maxConcurrent: Int
    private let slots: Semaphore

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
        let outcome: Result<T, PromQLError> = await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    try await clock.sleep(for: timeout)
                    cancellation.cancel(.timeout)
                } catch {
                    // Canceled because the query finished first.
                }
            }
            let r: Result<T, PromQLError>
            do {
                r = .success(try await withTaskCancellationHandler {
                    try await body(cancellation)
                } onCancel: {
                    cancellation.cancel(.canceled)
                })
            } catch let e as PromQLError {
                r = .failure(e)
            } catch {
                r = .failure(.canceled)
            }
            group.cancelAll()
            return r
        }
        return try outcome.get()
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
