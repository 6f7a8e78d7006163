import Foundation
import StarlingTestKit
import Testing

/// Rule evaluation in a cluster of real `starling serve` processes: one node evaluates the group
/// (the leader of its shard), every node answers `/api/v1/rules` and `/api/v1/alerts` alike, and
/// when the evaluating node is killed another takes over with the alert's `for` timer intact
/// (restored from `ALERTS_FOR_STATE`), so the alert fires when it would have, not `for` later.
@Suite(.serialized) struct ClusterRuleTests {
    static let rules = """
        groups:
          - name: failover
            interval: 1s
            rules:
              - record: rt:value:max
                expr: max(rt_value)
              - alert: ValueHigh
                expr: rt_value > 10
                for: 20s
                labels: {severity: page}
                annotations: {summary: 'value of {{ $labels.host }} is {{ $value }}'}
        """

    struct Alert { var state: String; var activeAt: Date; var summary: String }

    static func alerts(_ node: TestNode) async -> [Alert]? {
        guard let r = try? await node.request(.GET, "/api/v1/alerts"), r.status == 200,
              let data = r.json["data"] as? [String: Any], let list = data["alerts"] as? [[String: Any]] else { return nil }
        return list.compactMap { a in
            guard let state = a["state"] as? String, let at = a["activeAt"] as? String,
                  let date = try? Date(at, strategy: .iso8601) else { return nil }
            let summary = (a["annotations"] as? [String: String])?["summary"] ?? ""
            return Alert(state: state, activeAt: date, summary: summary)
        }
    }

    static func leads(_ node: TestNode) async -> Bool {
        guard node.process.isRunning, let m = try? await node.request(.GET, "/metrics") else { return false }
        return m.text.split(separator: "\n").contains { $0.hasPrefix("starling_rule_groups_led ") && $0.hasSuffix(" 1.0") || $0 == "starling_rule_groups_led 1" }
    }

    @Test func theEvaluatingNodeFailsOverWithoutRestartingForTimers() async throws {
        let dir = NodeProcess.temporaryDirectory("starling-rules")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let file = dir + "/rules.yml"
        try Self.rules.write(toFile: file, atomically: true, encoding: .utf8)
        var nodes: [TestNode] = []
        defer {
            for n in nodes { n.stop() }
            try? FileManager.default.removeItem(atPath: dir)
        }
        let started = try await ClusterMembershipTests.startCluster(
            (0..<3).map { "e\($0)" }, profile: "local-test", zones: false, extraArgs: ["--set", "rules.files=\(file)"])
        nodes = started.nodes
        try await withLogsOnFailure(nodes.map(\.process)) {
            let formed = await ClusterMembershipTests.eventually(nodes) { _, v in
                v.count == 3 && v.values.allSatisfy { $0.status == "alive" && $0.state == "active" }
            }
            try #require(formed, "cluster did not form")

            // Exactly one node evaluates the group.
            var leader: TestNode?
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                var leading: [TestNode] = []
                for n in nodes where await Self.leads(n) { leading.append(n) }
                if leading.count == 1 { leader = leading[0]; break }
                try await Task.sleep(for: .milliseconds(200))
            }
            let first = try #require(leader, "no single evaluating node")

            // Every node lists the group, with health from the evaluating node.
            for n in nodes {
                let r = try await n.request(.GET, "/api/v1/rules")
                let groups = (r.json["data"] as? [String: Any])?["groups"] as? [[String: Any]] ?? []
                #expect(groups.map { $0["name"] as? String } == ["failover"], "\(n.process.name): \(r.text.prefix(300))")
            }

            // The condition starts to hold; the alert goes pending.
            let now = Int64(Date().timeIntervalSince1970)
            let w = try await nodes[0].request(.POST, "/write?precision=s", body: Array("rt,host=a value=42 \(now)\n".utf8))
            try #require(w.status == 204, "\(w.status) \(w.text)")
            var pending: Alert?
            while pending == nil {
                if let a = await Self.alerts(nodes[1])?.first, a.state == "pending" { pending = a }
                try await Task.sleep(for: .milliseconds(100))
                try #require(ContinuousClock.now < deadline + .seconds(30), "alert never went pending")
            }
            let activeAt = try #require(pending).activeAt
            #expect(pending?.summary == "value of a is 42")

            // 8 s into the 20 s `for`, the evaluating node dies.
            let killAt = activeAt.addingTimeInterval(8)
            while Date() < killAt { try await Task.sleep(for: .milliseconds(100)) }
            try await first.process.kill9()
            let survivors = nodes.filter { $0 !== first }

            // Another node takes over and the alert fires at activeAt + for (+ an evaluation
            // and a failure detection), not 20 s after the takeover.
            var firedAt: Date?
            var restoredActiveAt: Date?
            let giveUp = Date().addingTimeInterval(60)
            while firedAt == nil, Date() < giveUp {
                for n in survivors {
                    if let a = await Self.alerts(n)?.first, a.state == "firing" {
                        firedAt = Date()
                        restoredActiveAt = a.activeAt
                        break
                    }
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            let fired = try #require(firedAt, "the alert never fired after the failover")
            print("ClusterRuleTests: activeAt \(activeAt), killed at +8 s, fired at +\(String(format: "%.1f", fired.timeIntervalSince(activeAt))) s (for: 20 s)")
            #expect(abs(try #require(restoredActiveAt).timeIntervalSince(activeAt)) < 1.5, "activeAt changed: the for timer restarted")
            #expect(fired.timeIntervalSince(activeAt) < 26, "fired \(fired.timeIntervalSince(activeAt)) s after activeAt")
            var leading = 0
            for n in survivors where await Self.leads(n) { leading += 1 }
            #expect(leading == 1)

            // The recording rule kept recording through the failover.
            let q = try await survivors[0].request(.GET, "/api/v1/query?query=rt:value:max")
            #expect(q.text.contains("\"42\""), "\(q.text.prefix(300))")
        }
    }

    /// A real HTTP webhook receiver (a Python process) recording every notification.
    final class Receiver: @unchecked Sendable {
        let process: ChildProcess
        let file: String
        var port = 0

        init(dir: String) throws {
            file = dir + "/webhooks.jsonl"
            FileManager.default.createFile(atPath: file, contents: nil)
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Support/webhook-receiver.py").path
            let portFile = dir + "/webhook-port"
            // Output discarded: nothing of the test runner's is inherited by the receiver.
            process = try ChildProcess(executable: "/usr/bin/env", arguments: ["python3", script, file, portFile])
        }

        /// Waits (polling, never blocking a thread) for the receiver to listen.
        func waitListening() async throws {
            let deadline = ContinuousClock.now + .seconds(20)
            while port == 0, ContinuousClock.now < deadline {
                if let text = try? String(contentsOfFile: (file as NSString).deletingLastPathComponent + "/webhook-port", encoding: .utf8) {
                    port = Int(text) ?? 0
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        }

        /// Every notification received: (status, alertnames, idempotency key).
        var notifications: [(status: String, alerts: Int, key: String)] {
            let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { line in
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let body = o["body"] as? [String: Any] else { return nil }
                return (body["status"] as? String ?? "", (body["alerts"] as? [Any])?.count ?? 0, o["idempotency_key"] as? String ?? "")
            }
        }

        /// SIGKILL: the test runner may ignore SIGTERM, and children inherit that.
        func stop() { process.killAndReap() }
    }

    static func alertmanagerNode(_ nodes: [TestNode]) async -> TestNode? {
        for n in nodes where n.process.isRunning {
            guard let m = try? await n.request(.GET, "/metrics") else { continue }
            if m.text.split(separator: "\n").contains(where: { $0 == "starling_alertmanager_leader 1" || $0 == "starling_alertmanager_leader 1.0" }) { return n }
        }
        return nil
    }

    /// Threshold crossed → exactly one webhook; the alertmanager node is killed while the alert
    /// fires: no second page for the same alert; the condition clears: exactly one resolved
    /// notification, from the new alertmanager node.
    @Test func oneWebhookPerNotificationAcrossAnAlertmanagerKill() async throws {
        let dir = NodeProcess.temporaryDirectory("starling-notify")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let receiver = try Receiver(dir: dir)
        try await receiver.waitListening()
        try #require(receiver.port > 0, "webhook receiver did not start")
        let rules = """
            groups:
              - name: notify
                interval: 1s
                rules:
                  - alert: DiskFull
                    expr: nt_used > 0.9
                    for: 2s
                    annotations: {summary: 'disk {{ $labels.disk }} at {{ $value }}'}
            """
        let am = """
            route:
              receiver: hook
              group_by: [alertname]
              group_wait: 1s
              group_interval: 3s
              repeat_interval: 1h
            receivers:
              - name: hook
                webhook_configs:
                  - url: http://127.0.0.1:\(receiver.port)/hook
            """
        try rules.write(toFile: dir + "/rules.yml", atomically: true, encoding: .utf8)
        try am.write(toFile: dir + "/am.yml", atomically: true, encoding: .utf8)
        var nodes: [TestNode] = []
        defer {
            for n in nodes { n.stop() }
            receiver.stop()
            try? FileManager.default.removeItem(atPath: dir)
        }
        let started = try await ClusterMembershipTests.startCluster(
            (0..<3).map { "w\($0)" }, profile: "local-test", zones: false,
            extraArgs: ["--set", "rules.files=\(dir)/rules.yml", "--set", "alerting.config_file=\(dir)/am.yml"])
        nodes = started.nodes
        try await withLogsOnFailure(nodes.map(\.process)) {
            let formed = await ClusterMembershipTests.eventually(nodes) { _, v in
                v.count == 3 && v.values.allSatisfy { $0.status == "alive" && $0.state == "active" }
            }
            try #require(formed, "cluster did not form")

            let crossed = Date()
            let w = try await nodes[0].request(.POST, "/write?precision=s", body: Array("nt,disk=sda used=0.95 \(Int(crossed.timeIntervalSince1970))\n".utf8))
            try #require(w.status == 204, "\(w.status) \(w.text)")
            var deadline = Date().addingTimeInterval(60)
            while receiver.notifications.isEmpty, Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
            let first = receiver.notifications
            try #require(first.count == 1, "expected one notification, got \(first)")
            #expect(first[0].status == "firing" && first[0].alerts == 1 && !first[0].key.isEmpty)
            let latency = Date().timeIntervalSince(crossed)
            print("ClusterRuleTests: threshold crossed → webhook in \(String(format: "%.1f", latency)) s (for: 2s, group_wait: 1s)")

            // Kill the node running the alertmanager; another takes over, reads the replicated
            // notification log, and does not page again for what was sent.
            let amNode = try #require(await Self.alertmanagerNode(nodes), "no alertmanager node")
            try await amNode.process.kill9()
            let survivors = nodes.filter { $0 !== amNode }
            deadline = Date().addingTimeInterval(30)
            var successor: TestNode?
            while successor == nil, Date() < deadline {
                successor = await Self.alertmanagerNode(survivors)
                try await Task.sleep(for: .milliseconds(200))
            }
            try #require(successor != nil, "no node took the alertmanager over")
            // Several group intervals pass: still one notification.
            try await Task.sleep(for: .seconds(10))
            #expect(receiver.notifications.count == 1, "a notification was repeated after the failover: \(receiver.notifications)")

            // The condition clears: exactly one resolved notification.
            let cleared = Int(Date().timeIntervalSince1970)
            let w2 = try await survivors[0].request(.POST, "/write?precision=s", body: Array("nt,disk=sda used=0.1 \(cleared)\n".utf8))
            try #require(w2.status == 204)
            deadline = Date().addingTimeInterval(60)
            while receiver.notifications.count < 2, Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
            try await Task.sleep(for: .seconds(8))
            let all = receiver.notifications
            #expect(all.count == 2, "\(all)")
            #expect(all.last?.status == "resolved")
        }
    }
}
