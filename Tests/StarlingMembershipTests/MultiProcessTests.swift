import Foundation
import StarlingMembership
import StarlingTestKit
import Synchronization
import Testing

/// Real processes on loopback: five `starling-gossip-node` processes (the gossip shell alone,
/// without storage or HTTP) form a cluster from one seed address; kill -9, SIGSTOP/SIGCONT,
/// restart with the same node ID and SIGTERM are observed by the others. Every wait polls the
/// processes' reported views; on failure every node's log is printed. The same scenario with
/// real `starling serve` processes, observed through the HTTP API, and the loopback detection
/// figures are in `StarlingIntegrationTests/ClusterMembershipTests`.
@Suite(.serialized) struct MultiProcessTests {
    /// One `starling-gossip-node`: its output (stdout and stderr) goes to a file, which the
    /// accessors read on from where they stopped, so the view is as fresh as the last line the
    /// node wrote. Nothing watches the process in the background.
    final class NodeProcess: Sendable {
        let name: String
        let id: String
        let process: ChildProcess
        let outputPath: String
        final class Store: Sendable {
            struct State {
                var view: [String: (kind: String, status: String, incarnation: UInt64)] = [:]
                var address: String?
                var log: [String] = []
                var events: [String] = []
                var offset: UInt64 = 0
                var partial = Data()
            }
            let m = Mutex(State())
            func withLock<T>(_ body: (inout State) -> T) -> T { m.withLock { body(&$0) } }
        }
        let state = Store()

        init(binary: URL, name: String, id: String, args: [String]) throws {
            self.name = name
            self.id = id
            outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("gossip-\(name)-\(UUID().uuidString.prefix(8)).out").path
            process = try ChildProcess(executable: binary.path, arguments: ["--node-name", name, "--node-id", id] + args, outputPath: outputPath)
        }

        deinit { try? FileManager.default.removeItem(atPath: outputPath) }

        /// Reads the lines written since the last call and applies them to the view.
        private func refresh() {
            state.withLock { s in
                guard let handle = FileHandle(forReadingAtPath: outputPath) else { return }
                defer { try? handle.close() }
                try? handle.seek(toOffset: s.offset)
                guard let chunk = try? handle.readToEnd(), !chunk.isEmpty else { return }
                s.offset += UInt64(chunk.count)
                s.partial.append(chunk)
                while let nl = s.partial.firstIndex(of: 0x0A) {
                    let line = String(decoding: s.partial[s.partial.startIndex..<nl], as: UTF8.self)
                    s.partial.removeSubrange(s.partial.startIndex...nl)
                    s.log.append(line)
                    let parts = line.split(separator: " ").map(String.init)
                    if parts.first == "READY", parts.count == 3 { s.address = parts[2] }
                    if parts.first == "EVENT", parts.count == 7 {
                        s.events.append(line)
                        s.view[parts[3]] = (parts[2], parts[6], UInt64(parts[5]) ?? 0)
                    }
                }
            }
        }

        var address: String? { refresh(); return state.withLock { $0.address } }
        func status(of member: String) -> String? { refresh(); return state.withLock { $0.view[member]?.status } }
        func incarnation(of member: String) -> UInt64? { refresh(); return state.withLock { $0.view[member]?.incarnation } }
        var log: [String] { refresh(); return state.withLock { $0.log } }
        var events: [String] { refresh(); return state.withLock { $0.events } }
        func signal(_ s: Int32) { process.signal(s) }
        func stop() { process.killAndReap() }
    }

    static var binary: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("starling-gossip-node")
    }

    static func id(_ i: Int) -> String { String(format: "%016x%016x", 0x5eed_0000 + i, i) }

    static func eventually(_ ms: Int64, _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(ms)
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }

    static func logs(_ nodes: [NodeProcess]) -> Comment {
        Comment(rawValue: nodes.map { "---- \($0.name)\n" + $0.log.suffix(60).joined(separator: "\n") }.joined(separator: "\n"))
    }

    /// Starts `n` nodes, the first alone, the rest joining through it; waits for all to be ready.
    static func startCluster(_ n: Int, profile: String) async throws -> [NodeProcess] {
        let first = try NodeProcess(binary: binary, name: "p0", id: id(0), args: ["--gossip", "127.0.0.1:0", "--profile", profile])
        guard await eventually(10_000, { first.address != nil }) else {
            first.stop()
            throw Failure.notReady(first.log.joined(separator: "\n"))
        }
        var nodes = [first]
        for i in 1..<n {
            nodes.append(try NodeProcess(binary: binary, name: "p\(i)", id: id(i),
                                         args: ["--gossip", "127.0.0.1:0", "--join", first.address!, "--profile", profile]))
        }
        return nodes
    }

    enum Failure: Error { case notReady(String) }

    static func allSee(_ observers: [NodeProcess], _ member: String, _ statuses: Set<String>) -> Bool {
        observers.allSatisfy { $0.name == member || statuses.contains($0.status(of: member) ?? "none") }
    }

    static func formed(_ nodes: [NodeProcess]) -> Bool {
        nodes.allSatisfy { o in nodes.allSatisfy { $0 === o || o.status(of: $0.name) == "alive" } }
    }

    @Test func fiveProcessesDetectKillPauseRestartAndLeave() async throws {
        var nodes = try await Self.startCluster(5, profile: "local-test")
        defer { for n in nodes { n.stop() } }

        #expect(await Self.eventually(30_000) { Self.formed(nodes) }, Self.logs(nodes))

        // kill -9 of p4 is detected as dead by all others.
        nodes[4].signal(SIGKILL)
        let others = Array(nodes[0..<4])
        #expect(await Self.eventually(30_000) { Self.allSee(others, "p4", ["dead"]) }, Self.logs(nodes))

        // SIGSTOP of p3: suspected by the others; SIGCONT: it refutes with a higher incarnation.
        let before = nodes[0].incarnation(of: "p3") ?? 0
        nodes[3].signal(SIGSTOP)
        let watchers = Array(nodes[0..<3])
        #expect(await Self.eventually(30_000) { Self.allSee(watchers, "p3", ["suspect", "dead"]) }, Self.logs(nodes))
        nodes[3].signal(SIGCONT)
        #expect(await Self.eventually(30_000) {
            Self.allSee(watchers, "p3", ["alive"]) && watchers.allSatisfy { ($0.incarnation(of: "p3") ?? 0) > before }
        }, Self.logs(nodes))

        // Restart p4 with the same node ID: it rejoins above the incarnation it died with.
        let deadIncarnation = nodes[0].incarnation(of: "p4") ?? 0
        nodes[4].stop()
        nodes[4] = try NodeProcess(binary: Self.binary, name: "p4", id: Self.id(4),
                                   args: ["--gossip", "127.0.0.1:0", "--join", nodes[0].address!, "--profile", "local-test"])
        #expect(await Self.eventually(30_000) {
            Self.formed(nodes) && nodes[0..<4].allSatisfy { ($0.incarnation(of: "p4") ?? 0) > deadIncarnation }
        }, Self.logs(nodes))

        // SIGTERM of p2: a graceful leave, seen as left (never dead), and a clean exit.
        nodes[2].signal(SIGTERM)
        let remaining = [nodes[0], nodes[1], nodes[3], nodes[4]]
        #expect(await Self.eventually(30_000) { Self.allSee(remaining, "p2", ["left"]) }, Self.logs(nodes))
        // Poll: a blocking wait would hold one of the cooperative pool's two threads for the
        // whole graceful leave.
        let status = try await nodes[2].process.waitForExit(timeout: .seconds(30))
        #expect(status == 0, Self.logs(nodes))
        let sawDead = remaining.contains { n in n.events.contains { $0.contains(" dead p2 ") } }
        #expect(!sawDead, Self.logs(nodes))
    }
}
