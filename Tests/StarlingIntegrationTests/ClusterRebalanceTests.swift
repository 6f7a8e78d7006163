import Foundation
import StarlingTestKit
import Synchronization
import Testing

/// Placement changes with real `starling serve` processes, RF 3, while a reader checks every
/// node's answers the whole time: a loaded three-node cluster grows to five (the new nodes pull
/// their shards, old owners hand theirs over and delete them, the series spread evenly), a node
/// leaves with `starling leave`, and a node killed for longer than the removal timeout is
/// replaced without anyone acting. At every point queries return exactly what was written.
@Suite(.serialized) struct ClusterRebalanceTests {
    static let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
    static let seriesCount = 600
    static let samplesPerSeries = 5

    static let flags = [
        "--set", "cluster.anti_entropy_interval=1s", "--set", "cluster.anti_entropy_settle=0s",
        "--set", "cluster.handoff_grace=2s", "--set", "cluster.removal_timeout=6s",
    ]

    /// Series copies stored on each running node (`starling_storage_series`).
    static func storedSeries(_ nodes: [TestNode]) async -> [String: Int] {
        var out: [String: Int] = [:]
        for n in nodes where n.process.isRunning { out[n.process.name] = await ClusterReplicationTests.storedSeries(n) }
        return out
    }

    static func balanced(_ counts: [String: Int], tolerance: Double) -> Bool {
        guard !counts.isEmpty else { return false }
        let mean = Double(counts.values.reduce(0, +)) / Double(counts.count)
        return counts.values.allSatisfy { abs(Double($0) - mean) <= tolerance * mean }
    }

    /// Polls until every running node holds exactly `3 × seriesCount` copies in total, spread
    /// within ±15 % of the mean. Returns the last counts seen.
    static func converge(_ nodes: [TestNode], within: Duration = .seconds(120)) async throws -> [String: Int] {
        let deadline = ContinuousClock.now + within
        var counts: [String: Int] = [:]
        while ContinuousClock.now < deadline {
            counts = await storedSeries(nodes)
            if counts.values.reduce(0, +) == 3 * seriesCount, balanced(counts, tolerance: 0.15) { return counts }
            try await Task.sleep(for: .milliseconds(250))
        }
        return counts
    }

    /// Checks, as a client would, that `node` answers the whole data set.
    static func answersEverything(_ node: TestNode) async -> String? {
        let count: Double?, samples: Double?, w1: [String], w2: [String]
        do {
            (count, w1) = try await ClusterReplicationTests.scalar(node, "count(rb_v)")
            (samples, w2) = try await ClusterReplicationTests.scalar(node, "sum(count_over_time(rb_v[10m]))")
        } catch {
            return "\(node.process.name): query failed: \(error)"
        }
        if count != Double(seriesCount) || samples != Double(seriesCount * samplesPerSeries) || !(w1 + w2).isEmpty {
            return "\(node.process.name): count \(count ?? -1), samples \(samples ?? -1), warnings \(w1 + w2)"
        }
        return nil
    }

    @Test func growLeaveAndReplaceKeepEveryAnswer() async throws {
        var nodes: [TestNode] = []
        defer { for n in nodes { n.stop() } }
        let started = try await ClusterMembershipTests.startCluster(
            (0..<3).map { "g\($0)" }, profile: "local-test", zones: false, extraArgs: Self.flags)
        nodes = started.nodes
        try await withLogsOnFailure(nodes.map(\.process)) {
            let formed = await ClusterMembershipTests.eventually(nodes) { _, v in
                v.count == 3 && v.values.allSatisfy { $0.status == "alive" && $0.state == "active" }
            }
            try #require(formed, "cluster did not form")
            let body = ClusterReplicationTests.lines("rb", series: Self.seriesCount, samples: Self.samplesPerSeries, base: Self.nowMs)
            let w = try await nodes[0].request(.POST, "/write?precision=ms", body: body)
            try #require(w.status == 204, "\(w.status) \(w.text)")
            for n in nodes { #expect(await Self.answersEverything(n) == nil) }

            // A reader asks every running node, all the time, for the whole data set.
            let running = Mutex<[TestNode]>(nodes)
            let problems = Mutex<[String]>([])
            let checks = Mutex(0)
            let reader = Task {
                while !Task.isCancelled {
                    for n in running.withLock({ $0 }) where n.process.isRunning {
                        let p = await Self.answersEverything(n)
                        // A node the test is stopping or killing (it leaves `running` first) may
                        // drop a request mid-way: that is not a wrong answer.
                        if Task.isCancelled || !running.withLock({ $0.contains { $0 === n } }) || !n.process.isRunning { continue }
                        if let p { problems.withLock { $0.append(p) } }
                        checks.withLock { $0 += 1 }
                    }
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            defer { reader.cancel() }

            // 1. Grow 3 → 5: each new node pulls its shards, turns active, old copies go.
            for name in ["g3", "g4"] {
                let n = TestNode(name: name, extraArgs: ["--set", "cluster.profile=local-test", "--join", started.seed] + Self.flags,
                                 environment: ["STARLING_CLUSTER_KEYS": ClusterMembershipTests.clusterKey])
                nodes.append(n)
                try await n.start()
                let all = nodes
                let active = await ClusterMembershipTests.eventually(all, within: .seconds(120)) { _, v in
                    v.count == all.count && v.values.allSatisfy { $0.status == "alive" && $0.state == "active" }
                }
                try #require(active, "\(name) did not turn active")
                running.withLock { $0 = all }
            }
            let grown = try await Self.converge(nodes)
            #expect(grown.values.reduce(0, +) == 3 * Self.seriesCount, "copies after growing: \(grown)")
            #expect(Self.balanced(grown, tolerance: 0.15), "series per node after growing: \(grown)")

            // 2. `starling leave` on g1: it hands over, stops, and the four others hold 3 copies.
            running.withLock { $0 = nodes.filter { $0 !== nodes[1] } }
            let leave = try await ChildProcess.run(NodeProcess.starlingBinary(), ["leave", "--url", nodes[1].baseURL, "--token", TestNode.adminToken])
            #expect(leave.status == 0, "starling leave: \(leave.output)")
            let status = try await nodes[1].process.waitForExit()
            #expect(status == 0, "starling leave: the node exited with \(status)")
            if status != 0 { nodes[1].process.dumpLog() }
            running.withLock { $0 = nodes.filter { $0.process.isRunning } }
            // Its data directory refuses to start again (it would rejoin with stale shards).
            let offset = nodes[1].process.logOffset
            try nodes[1].process.start()
            #expect(try await nodes[1].process.waitForExit() != 0)
            _ = try await nodes[1].process.waitForLog(["belongs to a node that left its cluster"], afterOffset: offset, timeout: .seconds(10))
            let left = try await Self.converge(nodes)
            #expect(left.count == 4 && left.values.reduce(0, +) == 3 * Self.seriesCount, "copies after the leave: \(left)")

            // 3. kill -9 g4 and wait past the removal timeout: its shards are re-replicated on
            //    the three others with no operator action.
            running.withLock { $0 = nodes.filter { $0 !== nodes[4] && $0 !== nodes[1] } }
            try await nodes[4].process.kill9()
            let replaced = try await Self.converge(nodes)
            #expect(replaced.count == 3 && replaced.values.allSatisfy { $0 == Self.seriesCount }, "copies after the removal: \(replaced)")

            reader.cancel()
            _ = await reader.value
            let seen = problems.withLock { $0 }
            #expect(checks.withLock { $0 } > 20)
            #expect(seen.isEmpty, "answers differed during the changes: \(seen.prefix(10))")
        }
    }
}
