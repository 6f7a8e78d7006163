import Synchronization

/// A sleep that a signal can cut short: `wait(ms:)` returns after `ms` or as soon as `signal()`
/// is called (a signal given while nobody waits is kept for the next wait).
///
/// Not an `AsyncStream`: cancelling a task that awaits a stream's `next()` terminates the
/// stream, after which every wait would return at once — a loop that times its waits out
/// would spin.
public final class Wakeup: Sendable {
    private struct State {
        var signalled = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    public init() {}

    public func signal() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let w = s.waiter else {
                s.signalled = true
                return nil
            }
            s.waiter = nil
            return w
        }
        waiter?.resume()
    }

    /// Returns when signalled or after `ms` milliseconds, whichever comes first (at once if the
    /// task is cancelled).
    public func wait(ms: Int64) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForSignal() }
            group.addTask { try? await Task.sleep(for: .milliseconds(ms)) }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForSignal() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if Task.isCancelled { return true }
                    if s.signalled {
                        s.signalled = false
                        return true
                    }
                    s.waiter = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume()
        }
    }
}
