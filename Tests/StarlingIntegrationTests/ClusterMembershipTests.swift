import Foundation
import StarlingTestKit
import Testing

/// SWIM membership with real `starling serve` processes on loopback, observed only through
/// `GET /api/v1/cluster/members`: five nodes form a cluster from one seed address; `kill -9` is
/// detected as dead by all; a SIGSTOPped node is suspected and refutes once continued; a node
/// restarted on its data directory rejoins with the same node ID and a higher incarnation; SIGTERM
/// is seen as a graceful leave, never a death. Every wait polls state (bounded, never a fixed
/// sleep); on failure every node's captured log is printed.
///
/// `STARLING_LOOPBACK_FIGURES=1` also measures detection times of a killed node with the LAN
/// profile at n = 3, 5, 10 (docs/benchmarks.md, "Membership"); point `STARLING_BINARY` at a
/// release build for those.
@Suite(.serialized) struct ClusterMembershipTests {
    struct Row: Equatable {
        var id: String
        var name: String
        var status: String
        var state: String
        var incarnation: UInt64
        var gossipAddress: String
        var httpAddress: String
        var peerAddress: String
        var zone: String
        var version: String
    }

    /// A node's view keyed by member name, or nil while it does not answer.
    static func view(_ node: TestNode) async -> [String: Row]? {
        guard let reply = try? await node.request(.GET, "/api/v1/cluster/members"), reply.status == 200,
              let data = reply.json["data"] as? [String: Any], let members = data["members"] as? [[String: Any]]
        else { return nil }
        var out: [String: Row] = [:]
        for m in members {
            guard let name = m["name"] as? String else { continue }
            out[name] = Row(
                id: m["id"] as? String ?? "", name: name, status: m["status"] as? String ?? "",
                state: m["state"] as? String ?? "", incarnation: (m["incarnation"] as? NSNumber)?.uint64Value ?? 0,
                gossipAddress: m["gossip_address"] as? String ?? "", httpAddress: m["http_address"] as? String ?? "",
                peerAddress: m["peer_address"] as? String ?? "", zone: m["zone"] as? String ?? "",
                version: m["version"] as? String ?? "")
        }
        return out
    }

    /// Polls `condition` over the observers' views until it holds for all of them (true) or the
    /// bound passes (false). The bound only stops a broken run; nothing is asserted about time.
    static func eventually(_ observers: [TestNode], within: Duration = .seconds(60),
                           _ condition: (TestNode, [String: Row]) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + within
        while ContinuousClock.now < deadline {
            var all = true
            for o in observers {
                guard let v = await view(o), condition(o, v) else { all = false; break }
            }
            if all { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// The node's gossip address, from its "gossip started" log line after `offset`.
    static func gossipAddress(_ node: TestNode, afterOffset offset: Int) async throws -> String {
        let line = try await node.process.waitForLog(["gossip started"], afterOffset: offset)
        return try #require(NodeProcess.logfmtValue("advertise", in: line), "no advertise in \(line)")
    }

    /// Gossip keyring shared by the test cluster, passed as `STARLING_CLUSTER_KEYS` (the
    /// environment path operators use for secrets).
    static let clusterKey = Data((0..<32).map { UInt8($0 * 7 & 0xff) }).base64EncodedString()

    static func startCluster(_ names: [String], profile: String, zones: Bool = true, extraArgs: [String] = []) async throws -> (nodes: [TestNode], seed: String) {
        var nodes: [TestNode] = []
        var seed = ""
        for (i, name) in names.enumerated() {
            var args = ["--set", "cluster.profile=\(profile)"] + extraArgs
            if zones { args += ["--zone", "z\(i % 2)"] }
            if i > 0 { args += ["--join", seed] }
            let node = TestNode(name: name, extraArgs: args, environment: ["STARLING_CLUSTER_KEYS": clusterKey])
            nodes.append(node)
            let offset = node.process.logOffset
            try await node.start()
            if i == 0 { seed = try await gossipAddress(node, afterOffset: offset) }
        }
        return (nodes, seed)
    }

    @Test func fiveNodesDetectKillPauseRestartAndLeave() async throws {
        let names = (0..<5).map { "m\($0)" }
        var nodes: [TestNode] = []
        defer { for n in nodes { n.stop() } }
        do {
            let started = try await Self.startCluster(names, profile: "local-test")
            nodes = started.nodes
            for n in nodes {
                let line = try await n.process.waitForLog(["gossip started"])
                try #require(NodeProcess.logfmtValue("encrypted", in: line) == "true", "\(line)")
            }

            // Formed from one seed: every node sees all five alive and active, with the
            // metadata each announced (HTTP address, zone, version).
            let formed = await Self.eventually(nodes) { _, v in
                names.allSatisfy { v[$0]?.status == "alive" && v[$0]?.state == "active" }
            }
            try #require(formed, "cluster did not form")
            let view0 = try #require(await Self.view(nodes[0]))
            for (i, n) in nodes.enumerated() {
                let row = try #require(view0[n.process.name])
                try #require("http://" + row.httpAddress == n.baseURL, "\(row) vs \(n.baseURL)")
                try #require(row.zone == "z\(i % 2)" && !row.version.isEmpty && row.id.count == 32)
                try #require(row.peerAddress.hasPrefix("127.0.0.1:"), "\(row)")
            }
            let ids = Set(view0.values.map(\.id))
            try #require(ids.count == 5, "node IDs are not distinct: \(ids)")
            let m4ID = try #require(view0["m4"]?.id)
            let m4Address = try #require(view0["m4"]?.gossipAddress)

            // kill -9 of m4: dead in every other node's view.
            try await nodes[4].process.kill9()
            let survivors = Array(nodes[0..<4])
            try #require(await Self.eventually(survivors) { _, v in v["m4"]?.status == "dead" }, "m4 not dead everywhere")
            let deadIncarnation = try #require(await Self.view(nodes[0])?["m4"]?.incarnation)

            // SIGSTOP of m3: suspected (or already dead) by the others; SIGCONT: it refutes, and
            // everyone sees it alive with a higher incarnation.
            let watchers = Array(nodes[0..<3])
            let beforePause = try #require(await Self.view(nodes[0])?["m3"]?.incarnation)
            nodes[3].process.signal(SIGSTOP)
            let suspected = await Self.eventually(watchers) { _, v in ["suspect", "dead"].contains(v["m3"]?.status) }
            nodes[3].process.signal(SIGCONT)
            try #require(suspected, "paused m3 not suspected")
            try #require(await Self.eventually(watchers) { _, v in
                v["m3"]?.status == "alive" && (v["m3"]?.incarnation ?? 0) > beforePause
            }, "m3 did not refute")

            // Restart m4 on its data directory: a new gossip port, the same node ID, an
            // incarnation above the one it died with.
            let offset = nodes[4].process.logOffset
            try await nodes[4].start()
            let newAddress = try await Self.gossipAddress(nodes[4], afterOffset: offset)
            try #require(await Self.eventually(Array(nodes[0..<5])) { _, v in
                guard let r = v["m4"] else { return false }
                return r.status == "alive" && r.state == "active" && r.id == m4ID && r.incarnation > deadIncarnation
                    && r.gossipAddress == newAddress
            }, "m4 did not rejoin as the same node (was \(m4ID) at \(m4Address), now at \(newAddress))")
            try #require(nodes[4].process.log.contains("node ID read from data directory"))

            // SIGTERM of m2: a graceful leave. The others see it left, never dead; it exits 0.
            let others = [nodes[0], nodes[1], nodes[3], nodes[4]]
            let offsets = others.map(\.process.logOffset)
            nodes[2].process.signal(SIGTERM)
            try #require(await Self.eventually(others) { _, v in v["m2"]?.status == "left" }, "m2 not seen as left")
            let status = try await nodes[2].process.waitForExit()
            try #require(status == 0, "m2 exit status \(status)")
            for (o, off) in zip(others, offsets) {
                let tail = String(decoding: Array(o.process.log.utf8)[off...], as: UTF8.self)
                let deaths = tail.split(separator: "\n").filter { $0.contains("msg=\"member dead\"") && $0.contains(" member=m2 ") }
                try #require(deaths.isEmpty, "\(o.process.name) declared m2 dead: \(deaths)")
            }
        } catch {
            for n in nodes { n.process.dumpLog() }
            throw error
        }
    }

    /// Loopback detection figures with the LAN profile (opt-in: minutes). Times come from the
    /// observers' own log timestamps (`member suspect` / `member dead`), against the wall clock
    /// read just before SIGKILL, so the polling interval does not enter the figures.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["STARLING_LOOPBACK_FIGURES"] == "1"))
    func loopbackDetectionFigures() async throws {
        let env = ProcessInfo.processInfo.environment
        let runs = Int(env["STARLING_LOOPBACK_RUNS"] ?? "3") ?? 3
        let sizes = (env["STARLING_LOOPBACK_SIZES"] ?? "3,5,10").split(separator: ",").compactMap { Int($0) }
        var lines: [String] = []
        for n in sizes {
            var suspectAll: [Double] = [], deadAll: [Double] = [], firstSuspect: [Double] = []
            for run in 0..<runs {
                let names = (0..<n).map { "f\(n)-\(run)-\($0)" }
                var nodes: [TestNode] = []
                defer { for x in nodes { x.stop() } }
                do {
                    nodes = try await Self.startCluster(names, profile: "lan", zones: false).nodes
                    try #require(await Self.eventually(nodes, within: .seconds(120)) { _, v in
                        names.allSatisfy { v[$0]?.status == "alive" && v[$0]?.state == "active" }
                    })
                    // A measurement, not a wait for state: 2–3 s of probe rounds, so the kill
                    // lands at a random phase of the probe period.
                    let victim = nodes[n - 1]
                    let observers = Array(nodes[0..<(n - 1)])
                    let offsets = observers.map(\.process.logOffset)
                    let randomDelay = Duration.milliseconds(2_000 + Int.random(in: 0..<1_000))
                    try await Task.sleep(for: randomDelay)
                    let killedAtMs = Date().timeIntervalSince1970 * 1_000
                    try await victim.process.kill9()
                    try #require(await Self.eventually(observers, within: .seconds(120)) { _, v in v[victim.process.name]?.status == "dead" })
                    var s: [Double] = [], d: [Double] = []
                    for (o, off) in zip(observers, offsets) {
                        let tail = String(decoding: Array(o.process.log.utf8)[off...], as: UTF8.self).split(separator: "\n")
                        func first(_ msg: String) -> Double? {
                            tail.first { $0.contains("msg=\"\(msg)\"") && $0.contains(" member=\(victim.process.name) ") }
                                .flatMap { Self.logTimestampMs(String($0)) }
                        }
                        let dead = try #require(first("member dead"))
                        let suspect = first("member suspect") ?? dead
                        s.append((min(suspect, dead) - killedAtMs) / 1_000)
                        d.append((dead - killedAtMs) / 1_000)
                    }
                    firstSuspect.append(s.min()!)
                    suspectAll.append(s.max()!)
                    deadAll.append(d.max()!)
                } catch {
                    for x in nodes { x.process.dumpLog() }
                    throw error
                }
            }
            func f(_ xs: [Double]) -> String {
                let s = xs.sorted()
                guard !s.isEmpty else { return "-" }
                let p95 = s[min(s.count - 1, Int((Double(s.count - 1) * 0.95).rounded()))]
                return String(format: "%.1f s / %.1f s / %.1f s", s[s.count / 2], p95, s.last!)
            }
            let goal = zip(suspectAll, deadAll).filter { $0.0 <= 3 && $0.1 <= 10 }.count
            lines.append("| \(n) | \(runs) | \(f(firstSuspect)) | \(f(suspectAll)) | \(f(deadAll)) | \(goal) of \(runs) |")
        }
        print("loopback detection, real starling serve processes, LAN profile (median / p95 / max):")
        print("| n | runs | first suspicion | suspected by all | dead everywhere | runs within 3 s / 10 s |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        for l in lines { print(l) }
    }

    /// Unix ms of a logfmt line's `ts=2026-11-25T02:16:44.241Z`.
    static func logTimestampMs(_ line: String) -> Double? {
        guard let ts = NodeProcess.logfmtValue("ts", in: " " + line) else { return nil }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: ts).map { $0.timeIntervalSince1970 * 1_000 }
    }
}
