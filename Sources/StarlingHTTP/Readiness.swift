import NIOPosix
import Synchronization

/// What `/readyz` reports: the node is ready when no component is pending. Components register
/// as pending before the HTTP server starts (storage: "recovering") and clear themselves when
/// they can serve; a component that fails sets a reason that stays visible.
public final class Readiness: Sendable {
    private let pending = Mutex<[String: String]>([:])

    public init() {}

    public func setPending(_ component: String, reason: String) {
        pending.withLock { $0[component] = reason }
    }

    public func setReady(_ component: String) {
        _ = pending.withLock { $0.removeValue(forKey: component) }
    }

    /// Pending components and their reasons, sorted by component name.
    public var pendingComponents: [(component: String, reason: String)] {
        pending.withLock { p in p.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }
    }

    public var isReady: Bool { pending.withLock { $0.isEmpty } }
}

/// Runs blocking work — storage calls, which wait on disk I/O and take locks — on a dedicated
/// thread pool, never on a NIO event loop and not on Swift's cooperative pool (whose few threads
/// must stay free for request handling).
///
/// `run` is for synchronous calls (`append`, `maintenance`). `runAsync` is for the storage's
/// `Querier` methods, which are `async` but block inside: it runs them with this pool as their
/// task executor, so their blocking happens on the pool's threads too.
public final class BlockingExecutor: TaskExecutor, Sendable {
    public let pool: NIOThreadPool

    public init(pool: NIOThreadPool) {
        self.pool = pool
    }

    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.runIfActive(body)
    }

    /// Like `run`, but not abandoned when the calling task is cancelled: for work that must
    /// finish once started, such as flushing and closing storage while the node stops.
    public func runToCompletion<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            pool.submit { _ in c.resume(with: Result { try body() }) }
        }
    }

    public func runAsync<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await withTaskExecutorPreference(self) { try await body() }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        pool.submit { _ in job.runSynchronously(on: executor) }
    }
}
