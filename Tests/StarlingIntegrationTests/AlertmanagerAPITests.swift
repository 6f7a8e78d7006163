import Foundation
import StarlingTestKit
import Testing

/// The Alertmanager v2 API against real tools: `amtool` (Debian's prometheus-alertmanager)
/// creates, lists and expires a silence through a node that does not run the alertmanager; a
/// silenced alert posted to `/api/v2/alerts` shows as suppressed; the silence survives the
/// alertmanager node's death (replicated record).
@Suite(.serialized) struct AlertmanagerAPITests {
    static func amtool(_ args: [String], url: String, dir: String) async throws -> (Int32, String) {
        let config = dir + "/amtool-http.yml"
        if !FileManager.default.fileExists(atPath: config) {
            try "authorization:\n  credentials: \(TestNode.adminToken)\n".write(toFile: config, atomically: true, encoding: .utf8)
        }
        return try await ChildProcess.run("/usr/bin/env", ["amtool", "--alertmanager.url=\(url)", "--http.config.file=\(config)"] + args,
                                          timeout: .seconds(120))
    }

    @Test func amtoolManagesSilencesThroughAnyNode() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/amtool") else {
            Issue.record("amtool is not installed (Debian package prometheus-alertmanager; scripts/test installs it)")
            return
        }
        let dir = NodeProcess.temporaryDirectory("starling-amtool")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var nodes: [TestNode] = []
        defer {
            for n in nodes { n.stop() }
            try? FileManager.default.removeItem(atPath: dir)
        }
        // A maintenance window open all the time for alerts named Maint.
        let windows = dir + "/windows.yml"
        try "windows:\n  - name: always\n    matchers: ['alertname=\"Maint\"']\n    cron: '* * * * *'\n    duration: 1h\n"
            .write(toFile: windows, atomically: true, encoding: .utf8)
        // A dependency topology (services on hosts) and an escalation policy for host alerts.
        let amConfig = dir + "/alerting.yml"
        try """
            route: {receiver: nobody}
            receivers: [{name: nobody}]
            dependencies:
              - name: service-on-host
                upstream_matchers: ['alertname="HostDown"']
                downstream_matchers: ['service=~".+"']
                equal: [host]
            escalation_policies:
              - name: hosts
                matchers: ['alertname="HostDown"']
                escalate_after: 1m
            """.write(toFile: amConfig, atomically: true, encoding: .utf8)
        let started = try await ClusterMembershipTests.startCluster(
            (0..<3).map { "s\($0)" }, profile: "local-test", zones: false,
            extraArgs: ["--set", "alerting.maintenance_windows_file=\(windows)", "--set", "alerting.config_file=\(amConfig)"])
        nodes = started.nodes
        try await withLogsOnFailure(nodes.map(\.process)) {
            let formed = await ClusterMembershipTests.eventually(nodes) { _, v in
                v.count == 3 && v.values.allSatisfy { $0.status == "alive" && $0.state == "active" }
            }
            try #require(formed, "cluster did not form")
            var am: TestNode?
            let deadline = ContinuousClock.now + .seconds(30)
            while am == nil, ContinuousClock.now < deadline {
                am = await ClusterRuleTests.alertmanagerNode(nodes)
                try await Task.sleep(for: .milliseconds(200))
            }
            let amNode = try #require(am, "no alertmanager node")
            let other = try #require(nodes.first { $0 !== amNode })

            // An alert, as an external Prometheus would post it, through a non-alertmanager node.
            let post = try await other.request(.POST, "/api/v2/alerts", body: Array(#"[{"labels":{"alertname":"DiskFull","host":"a"},"annotations":{"summary":"full"}}]"#.utf8),
                                               headers: [("Content-Type", "application/json")])
            #expect(post.status == 200, "\(post.status) \(post.text)")

            // amtool adds a silence through the other node, and lists it.
            let (addStatus, addOut) = try await Self.amtool(
                ["silence", "add", "alertname=DiskFull", "--comment=disk swap", "--author=ops", "--duration=1h"], url: other.baseURL, dir: dir)
            #expect(addStatus == 0, "\(addOut)")
            #expect(!addOut.contains("Warning"), "amtool warns: \(addOut)")
            let id = addOut.split(separator: "\n").last.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""
            #expect(id.count == 36, "not a silence ID: \(addOut)")
            let (qStatus, qOut) = try await Self.amtool(["silence", "query", "-q"], url: other.baseURL, dir: dir)
            #expect(qStatus == 0 && qOut.contains(id), "\(qOut)")

            // The alert is now suppressed by that silence.
            var silencedBy: [String] = []
            let until = ContinuousClock.now + .seconds(10)
            while silencedBy.isEmpty, ContinuousClock.now < until {
                let r = try await other.request(.GET, "/api/v2/alerts")
                let list = (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [[String: Any]] ?? []
                silencedBy = (list.first?["status"] as? [String: Any])?["silencedBy"] as? [String] ?? []
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(silencedBy == [id])

            // The maintenance window mutes its alert, and says so.
            let maint = try await other.request(.POST, "/api/v2/alerts", body: Array(#"[{"labels":{"alertname":"Maint","host":"b"}}]"#.utf8))
            #expect(maint.status == 200)
            var mutedBy: [String] = []
            let untilMuted = ContinuousClock.now + .seconds(10)
            while mutedBy.isEmpty, ContinuousClock.now < untilMuted {
                let r = try await other.request(.GET, "/api/v2/alerts?filter=alertname%3D%22Maint%22")
                let list = (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [[String: Any]] ?? []
                mutedBy = (list.first?["status"] as? [String: Any])?["mutedBy"] as? [String] ?? []
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(mutedBy == ["always"])
            let mw = try await other.request(.GET, "/api/v1/maintenance-windows")
            #expect(mw.text.contains("\"open\":true") && mw.text.contains("\"name\":\"always\""), "\(mw.text)")

            // A host goes down: its service's alert is inhibited and linked to it; the host's
            // incident follows the `hosts` escalation policy.
            let deps = try await other.request(.POST, "/api/v2/alerts", body: Array(
                #"[{"labels":{"alertname":"HostDown","host":"h1"}},{"labels":{"alertname":"CheckoutErrors","service":"checkout","host":"h1"}}]"#.utf8))
            #expect(deps.status == 200, "\(deps.status) \(deps.text)")
            var cause: [String: Any]?
            let untilLinked = ContinuousClock.now + .seconds(10)
            while cause == nil, ContinuousClock.now < untilLinked {
                let r = try await other.request(.GET, "/api/v2/alerts?filter=alertname%3D%22CheckoutErrors%22")
                let list = (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [[String: Any]] ?? []
                cause = list.first?["probableCause"] as? [String: Any]
                if cause == nil { try await Task.sleep(for: .milliseconds(200)) } else {
                    #expect((list.first?["status"] as? [String: Any])?["state"] as? String == "suppressed")
                }
            }
            #expect((cause?["labels"] as? [String: String])?["alertname"] == "HostDown" && cause?["via"] as? [String] == ["service-on-host"],
                    "\(String(describing: cause))")
            // Incidents open at the alertmanager's next tick.
            var hostIncident: [String: Any]?, serviceIncident: [String: Any]?
            let untilOpened = ContinuousClock.now + .seconds(10)
            while hostIncident == nil || serviceIncident == nil, ContinuousClock.now < untilOpened {
                let list = try await Self.incidents(other) ?? []
                hostIncident = list.first { ($0["labels"] as? [String: String])?["alertname"] == "HostDown" }
                serviceIncident = list.first { ($0["labels"] as? [String: String])?["alertname"] == "CheckoutErrors" }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(hostIncident?["escalationPolicy"] as? String == "hosts", "\(String(describing: hostIncident))")
            #expect(((serviceIncident?["probableCause"] as? [String: Any])?["labels"] as? [String: String])?["host"] == "h1",
                    "\(String(describing: serviceIncident))")

            // The alertmanager node dies: its successor knows the silence.
            try await amNode.process.kill9()
            let survivors = nodes.filter { $0 !== amNode }
            var listed = false
            let after = ContinuousClock.now + .seconds(30)
            while !listed, ContinuousClock.now < after {
                if await ClusterRuleTests.alertmanagerNode(survivors) != nil {
                    let (s, out) = try await Self.amtool(["silence", "query", "-q"], url: survivors[0].baseURL, dir: dir)
                    listed = s == 0 && out.contains(id)
                }
                if !listed { try await Task.sleep(for: .milliseconds(300)) }
            }
            #expect(listed, "the silence was lost with the alertmanager node")

            // amtool expires it; it is no longer active.
            let (expStatus, expOut) = try await Self.amtool(["silence", "expire", id], url: survivors[1].baseURL, dir: dir)
            #expect(expStatus == 0, "\(expOut)")
            let (q2, q2Out) = try await Self.amtool(["silence", "query", "-q"], url: survivors[0].baseURL, dir: dir)
            #expect(q2 == 0 && !q2Out.contains(id), "still active: \(q2Out)")
            let (q3, q3Out) = try await Self.amtool(["silence", "query", "--expired", "-q"], url: survivors[0].baseURL, dir: dir)
            #expect(q3 == 0 && q3Out.contains(id), "not listed as expired: \(q3Out)")

            // Bad input gets a clear 400.
            let bad = try await survivors[0].request(.POST, "/api/v2/silences", body: Array(#"{"matchers":[],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","createdBy":"x","comment":"y"}"#.utf8))
            #expect(bad.status == 400, "\(bad.status) \(bad.text)")
        }
    }

    /// The incidents a node lists; nil while the alertmanager moves (503).
    static func incidents(_ node: TestNode, all: Bool = false) async throws -> [[String: Any]]? {
        let r = try await node.request(.GET, "/api/v1/incidents" + (all ? "?state=all" : ""))
        guard r.status == 200 else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [[String: Any]] ?? []
    }

    /// The lifecycle: a firing alert opens an incident (New, low), which escalates on its timer;
    /// acknowledging through any node records who and why; the record survives the
    /// alertmanager node's death; resolving closes it; a wrong transition is a 409.
    @Test func incidentsEscalateAcknowledgeAndResolveAcrossAFailover() async throws {
        var nodes: [TestNode] = []
        defer { for n in nodes { n.stop() } }
        let started = try await ClusterMembershipTests.startCluster(
            (0..<3).map { "i\($0)" }, profile: "local-test", zones: false,
            extraArgs: ["--set", "alerting.escalate_after=2s", "--set", "alerting.critical_after=1h", "--set", "alerting.acknowledgement_timeout=0"])
        nodes = started.nodes
        try await withLogsOnFailure(nodes.map(\.process)) {
            let formed = await ClusterMembershipTests.eventually(nodes) { _, v in
                v.count == 3 && v.values.allSatisfy { $0.status == "alive" && $0.state == "active" }
            }
            try #require(formed, "cluster did not form")
            let post = try await nodes[0].request(.POST, "/api/v2/alerts", body: Array(#"[{"labels":{"alertname":"Overheat","rack":"r1"}}]"#.utf8))
            try #require(post.status == 200, "\(post.text)")

            // New, then Escalated on the 2 s timer.
            var inc: [String: Any]?
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                inc = try await Self.incidents(nodes[1])?.first
                if inc?["state"] as? String == "escalated" { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            let id = try #require(inc?["id"] as? String)
            #expect(inc?["state"] as? String == "escalated" && inc?["severity"] as? String == "high", "\(String(describing: inc))")
            #expect((inc?["labels"] as? [String: String])?["rack"] == "r1")

            let ack = try await nodes[2].request(.POST, "/api/v1/incidents/\(id)/acknowledge", body: Array(#"{"comment":"on it"}"#.utf8))
            #expect(ack.status == 200, "\(ack.status) \(ack.text)")
            let bad = try await nodes[2].request(.POST, "/api/v1/incidents/\(id)/acknowledge", body: Array(#"{"comment":"again"}"#.utf8))
            #expect(bad.status == 409, "\(bad.status) \(bad.text)")
            let missing = try await nodes[2].request(.POST, "/api/v1/incidents/nope/resolve")
            #expect(missing.status == 404)

            // The alertmanager node dies: the acknowledged incident is still there.
            let am = try #require(await ClusterRuleTests.alertmanagerNode(nodes))
            try await am.process.kill9()
            let survivors = nodes.filter { $0 !== am }
            var state: String?
            var history: [[String: Any]] = []
            let after = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < after {
                if let i = try? await Self.incidents(survivors[0])?.first(where: { $0["id"] as? String == id }) {
                    state = i["state"] as? String
                    history = i["history"] as? [[String: Any]] ?? []
                    if state == "acknowledged" { break }
                }
                try await Task.sleep(for: .milliseconds(300))
            }
            #expect(state == "acknowledged", "incident lost or changed across the failover: \(String(describing: state))")
            #expect(history.contains { $0["to"] as? String == "acknowledged" && $0["comment"] as? String == "on it" && $0["by"] as? String != "system" },
                    "\(history)")

            let resolve = try await survivors[1].request(.POST, "/api/v1/incidents/\(id)/resolve", body: Array(#"{"comment":"fixed"}"#.utf8))
            #expect(resolve.status == 200, "\(resolve.status) \(resolve.text)")
            #expect(try await Self.incidents(survivors[0])?.isEmpty == true)
            let closed = try await Self.incidents(survivors[0], all: true)?.first { $0["id"] as? String == id }
            #expect(closed?["state"] as? String == "resolved")
        }
    }
}
