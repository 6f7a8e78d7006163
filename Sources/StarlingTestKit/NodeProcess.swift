import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A real `starling` (or other) process for multi-process tests: started with a temporary data
/// directory and port 0, its output captured to a file, killed or stopped on demand, and its log
/// printed when a test fails. Tests wait on polled state (`waitForLog`, readiness), never on fixed
/// sleeps.
public final class NodeProcess: @unchecked Sendable {
    // Mutable state is touched only by the test task that owns the process.
    public let executable: String
    public let dataDir: String
    public let logPath: String
    public let name: String
    private var process: ChildProcess?
    private var arguments: [String]
    private var environment: [String: String]
    /// How many times the process has been started (each start appends to the same log).
    public private(set) var starts = 0

    /// The `starling` binary built next to the running test bundle, or `$STARLING_BINARY`.
    public static func starlingBinary() -> String {
        if let p = ProcessInfo.processInfo.environment["STARLING_BINARY"], !p.isEmpty { return p }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("starling").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return "starling"
    }

    /// A fresh temporary directory.
    public static func temporaryDirectory(_ prefix: String) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    public init(name: String = "node", executable: String = NodeProcess.starlingBinary(), arguments: [String], environment: [String: String] = [:], dataDir: String? = nil) {
        self.name = name
        self.executable = executable
        self.dataDir = dataDir ?? NodeProcess.temporaryDirectory("starling-\(name)")
        // Beside the data directory (not inside it), so it outlives the directory's removal.
        self.logPath = self.dataDir + ".log"
        self.arguments = arguments
        self.environment = environment
    }

    /// Starts (or restarts) the process; output goes to `logPath`, appended across restarts.
    public func start() throws {
        precondition(process?.isRunning != true, "\(name) is already running")
        if !FileManager.default.fileExists(atPath: logPath) {
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        log.write(Data("----- start #\(starts + 1) of \(name): \(executable) \(arguments.joined(separator: " "))\n".utf8))
        try log.close()
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        let p = try ChildProcess(executable: executable, arguments: arguments, environment: env, outputPath: logPath)
        process = p
        starts += 1
    }

    public var pid: Int32? { process?.pid }
    public var isRunning: Bool { process?.isRunning ?? false }

    /// Sends `signal` (SIGKILL for a crash, SIGTERM for a graceful stop).
    public func signal(_ sig: Int32) {
        process?.signal(sig)
    }

    /// Waits until the process has exited (polling, bounded) and returns its status.
    @discardableResult
    public func waitForExit(timeout: Duration = .seconds(60)) async throws -> Int32 {
        guard let p = process else { return 0 }
        do {
            return try await p.waitForExit(timeout: timeout)
        } catch is ChildProcessError {
            throw NodeProcessError.timeout("\(name) did not exit within \(timeout)")
        }
    }

    /// Kills the process hard and waits for it: what `kill -9` does to a node.
    public func kill9() async throws {
        signal(SIGKILL)
        try await waitForExit()
    }

    /// Stops the process if it still runs (SIGKILL) and removes its data unless `keepData`.
    public func cleanup(keepData: Bool = false) {
        process?.killAndReap()
        if !keepData {
            try? FileManager.default.removeItem(atPath: dataDir)
            try? FileManager.default.removeItem(atPath: logPath)
        }
    }

    /// Everything the process has written so far.
    public var log: String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    /// Polls the log until a line containing every one of `fragments` appears after `afterOffset`
    /// (a byte offset, e.g. the log's size before a restart), and returns that line.
    public func waitForLog(_ fragments: [String], afterOffset: Int = 0, timeout: Duration = .seconds(120)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            let text = log
            let tail = text.utf8.count > afterOffset ? String(decoding: Array(text.utf8)[afterOffset...], as: UTF8.self) : ""
            if let line = tail.split(separator: "\n").first(where: { l in fragments.allSatisfy { l.contains($0) } }) {
                return String(line)
            }
            if let p = process, let status = p.terminationStatus {
                throw NodeProcessError.exited("\(name) exited with status \(status) before logging \(fragments)")
            }
            if ContinuousClock.now > deadline { throw NodeProcessError.timeout("\(name) did not log \(fragments) within \(timeout)") }
            try await Task.sleep(for: .milliseconds(25))
        }
    }

    /// The current size of the log in bytes (to look only at lines written after a point).
    public var logOffset: Int { log.utf8.count }

    /// Extracts `key=value` (logfmt) from a log line.
    public static func logfmtValue(_ key: String, in line: String) -> String? {
        guard let r = line.range(of: " \(key)=") else { return nil }
        var rest = line[r.upperBound...]
        if rest.hasPrefix("\"") {
            rest = rest.dropFirst()
            return String(rest.prefix(while: { $0 != "\"" }))
        }
        return String(rest.prefix(while: { $0 != " " }))
    }

    /// Prints the captured log under a banner (call when a test fails).
    public func dumpLog() {
        print("===== log of \(name) (\(logPath)) =====\n\(log)\n===== end of log of \(name) =====")
    }
}

public enum NodeProcessError: Error, CustomStringConvertible {
    case timeout(String)
    case exited(String)
    public var description: String {
        switch self {
        case .timeout(let m), .exited(let m): return m
        }
    }
}
