import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process for tests, started with `posix_spawn` and watched by polling `waitpid(WNOHANG)`.
///
/// Tests do not use Foundation's `Process`: on Linux it watches children through libdispatch
/// sources (a SIGCHLD source, and pipes read with `readabilityHandler`), and a CI run died of a
/// SIGSEGV inside `_dispatch_event_loop_drain` while a test killed processes watched that way.
/// Here nothing runs in the background: output goes to a file (appended), standard input is
/// `/dev/null`, every other inherited descriptor is closed in the child (so no child holds the
/// test runner's pipes open), and the exit status is collected when someone asks for it.
public final class ChildProcess: Sendable {
    public let pid: pid_t
    public let executable: String
    /// The raw `waitpid` status once the child has been reaped.
    private let reaped = Mutex<Int32?>(nil)

    /// Starts `executable` (a path; use `/usr/bin/env` to search `PATH`) with `arguments`.
    /// `environment` replaces the test runner's when given. Output (stdout and stderr) is
    /// appended to `outputPath`, or discarded when it is nil.
    public init(executable: String, arguments: [String], environment: [String: String]? = nil, outputPath: String? = nil) throws {
        self.executable = executable
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        let out = outputPath ?? "/dev/null"
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // glibc 2.34+; Swift's Glibc module does not export it, so it is looked up.
        typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        if let symbol = dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addclosefrom_np") {
            _ = unsafeBitCast(symbol, to: AddCloseFrom.self)(&actions, 3)
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The child starts with default signal dispositions and an empty mask, whatever the
        // test runner (or libdispatch) blocked or ignored.
        var all = sigset_t(), none = sigset_t()
        sigfillset(&all)
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let env = environment ?? ProcessInfo.processInfo.environment
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else {
            throw ChildProcessError.spawn("cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        pid = child
    }

    /// Reaps the child if it has exited; never blocks.
    private func poll() -> Int32? {
        reaped.withLock { status in
            if let status { return status }
            var raw: Int32 = 0
            let r = waitpid(pid, &raw, WNOHANG)
            if r == pid, raw & 0x7f != 0x7f { status = raw }   // exited or killed, not stopped
            else if r < 0 { status = raw }                      // not our child any more
            return status
        }
    }

    public var isRunning: Bool { poll() == nil }

    /// The exit code, or the number of the signal that ended the child (as Foundation's
    /// `Process.terminationStatus` reports it); nil while it runs.
    public var terminationStatus: Int32? {
        guard let raw = poll() else { return nil }
        let signal = raw & 0x7f
        return signal == 0 ? (raw >> 8) & 0xff : signal
    }

    /// True when the child ended because of a signal.
    public var wasSignalled: Bool {
        guard let raw = poll() else { return false }
        return raw & 0x7f != 0
    }

    public func signal(_ sig: Int32) {
        if isRunning { kill(pid, sig) }
    }

    /// Waits (polling, never blocking a thread of the cooperative pool) until the child exits.
    @discardableResult
    public func waitForExit(timeout: Duration = .seconds(60)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let status = terminationStatus { return status }
            if ContinuousClock.now > deadline {
                throw ChildProcessError.timeout("\(executable) (pid \(pid)) did not exit within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Kills the child if it still runs and reaps it, blocking briefly: for clean-up paths
    /// (`defer`, `deinit`) that cannot await.
    public func killAndReap() {
        guard isRunning else { return }
        kill(pid, SIGKILL)
        reaped.withLock { status in
            guard status == nil else { return }
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
            status = raw
        }
    }

    /// Runs a command to completion and returns its exit status and combined output.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                           timeout: Duration = .seconds(300)) async throws -> (status: Int32, output: String) {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("child-\(UUID().uuidString).out").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let child = try ChildProcess(executable: executable, arguments: arguments, environment: environment, outputPath: out)
        let status: Int32
        do {
            status = try await child.waitForExit(timeout: timeout)
        } catch {
            child.killAndReap()
            throw error
        }
        return (status, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
    }

    /// `run` for a command that returns at once, from synchronous code: waits by polling with
    /// short sleeps on the calling thread.
    public static func runBlocking(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> (status: Int32, output: String) {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("child-\(UUID().uuidString).out").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let child = try ChildProcess(executable: executable, arguments: arguments, environment: environment, outputPath: out)
        while child.isRunning { usleep(5_000) }
        return (child.terminationStatus ?? -1, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
    }
}

public enum ChildProcessError: Error, CustomStringConvertible {
    case spawn(String)
    case timeout(String)
    public var description: String {
        switch self {
        case .spawn(let m), .timeout(let m): return m
        }
    }
}
