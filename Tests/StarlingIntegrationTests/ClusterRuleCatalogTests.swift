import Foundation
import StarlingTestKit
import Testing

/// Rule groups managed through the rules API in a cluster of real processes: a group submitted
/// to one node is validated, versioned, copied to every node and evaluated; a node that was
/// down while the group changed catches up when it returns; a delete through it reaches all.
@Suite(.serialized) struct ClusterRuleCatalogTests {
    static let group = """
        name: api
        interval: 1s
        rules:
          - alert: QueueLong
            expr: rc_queue > 5
            labels: {severity: page}
        """

    static func catalog(_ node: TestNode) async -> [String: Any]? {
        guard let r = try? await node.request(.GET, "/api/v1/rules/catalog"), r.status == 200 else { return nil }
        return r.json["data"] as? [String: Any]
    }

    static func version(_ node: TestNode) async -> Int? { (await catalog(node)?["version"] as? NSNumber)?.intValue }

    static func eventually(_ what: String, within: Duration = .seconds(30), _ check: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + within
        while await !check() {
            try #require(ContinuousClock.now < deadline, "\(what) within \(within)")
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    @Test func aGroupSubmittedToOneNodeIsVersionedCopiedAndEvaluated() async throws {
        var nodes: [TestNode] = []
        defer { for n in nodes { n.stop() } }
        let started = try await ClusterMembershipTests.startCluster(
            (0..<3).map { "c\($0)" }, profile: "local-test", zones: false, extraArgs: ["--set", "rules.catalog_sync_interval=1s"])
        nodes = started.nodes
        try await withLogsOnFailure(nodes.map(\.process)) {
            let formed = await ClusterMembershipTests.eventually(nodes) { _, v in
                v.count == 3 && v.values.allSatisfy { $0.status == "alive" && $0.state == "active" }
            }
            try #require(formed, "cluster did not form")

            // A bad expression is refused with its place; nothing is stored.
            let bad = try await nodes[0].request(.POST, "/config/v1/rules/team-a", body: Array("name: api\nrules:\n  - alert: X\n    expr: rate(x[5m]\n".utf8))
            #expect(bad.status == 400 && bad.text.contains("group.rules[0].expr"), "\(bad.status) \(bad.text)")
            // Changes need a token (and the admin role).
            #expect(try await nodes[0].request(.POST, "/config/v1/rules/team-a", token: nil, body: Array(Self.group.utf8)).status == 401)

            // Accepted on c0: version 1, on all three nodes when acknowledged.
            let post = try await nodes[0].request(.POST, "/config/v1/rules/team-a", body: Array(Self.group.utf8))
            try #require(post.status == 202, "\(post.status) \(post.text)")
            let data = post.json["data"] as? [String: Any]
            #expect((data?["version"] as? NSNumber)?.intValue == 1 && (data?["copies"] as? NSNumber)?.intValue == 3, "\(post.text)")
            for n in nodes {
                let g = try await n.request(.GET, "/config/v1/rules/team-a/api")
                #expect(g.status == 200 && g.text.contains("alert: QueueLong") && g.headers.first(name: "X-Starling-Rules-Version") == "1",
                        "\(n.process.name): \(g.status) \(g.text)")
            }
            #expect(try await nodes[2].request(.GET, "/config/v1/rules/team-b").status == 404)

            // Evaluated by one node; every node lists it and sees the alert fire.
            let now = Int64(Date().timeIntervalSince1970)
            let w = try await nodes[1].request(.POST, "/write?precision=s", body: Array("rc,q=in queue=9 \(now)\n".utf8))
            try #require(w.status == 204, "\(w.status) \(w.text)")
            try await Self.eventually("the alert fires") {
                let a = try? await nodes[2].request(.GET, "/api/v1/alerts")
                return a?.text.contains("\"QueueLong\"") == true && a?.text.contains("\"firing\"") == true
            }
            for n in nodes {
                let r = try await n.request(.GET, "/api/v1/rules")
                let groups = (r.json["data"] as? [String: Any])?["groups"] as? [[String: Any]] ?? []
                #expect(groups.map { $0["name"] as? String } == ["api"] && groups.first?["file"] as? String == "team-a", "\(r.text.prefix(300))")
            }

            // A node that is down while the group changes catches up when it returns.
            let coordinator = try #require(await Self.catalog(nodes[0])?["coordinator"] as? String)
            // Not the seed: restarted, it would have no one to join.
            let away = try #require(nodes.dropFirst().first { $0.process.name != coordinator })
            let other = try #require(nodes.first { $0 !== away })
            try await away.process.kill9()
            try await Self.eventually("the killed node is seen dead", within: .seconds(60)) {
                await ClusterMembershipTests.view(other)?[away.process.name]?.status == "dead"
            }
            let update = try await other.request(.POST, "/config/v1/rules/team-a", body: Array(Self.group.replacingOccurrences(of: "> 5", with: "> 50").utf8))
            #expect(update.status == 202 && (update.json["data"] as? [String: Any])?["version"] as? NSNumber == 2, "\(update.text)")
            try await away.start()
            try await Self.eventually("the returning node has version 2") { await Self.version(away) == 2 }
            let g = try await away.request(.GET, "/config/v1/rules/team-a/api")
            #expect(g.text.contains("rc_queue > 50"), "\(g.text)")
            try await Self.eventually("the alert resolves under the new threshold") {
                let a = try? await nodes[0].request(.GET, "/api/v1/alerts")
                return a.map { $0.status == 200 && !$0.text.contains("QueueLong") } ?? false
            }

            // Deleting the namespace through the returned node reaches every node.
            let del = try await away.request(.DELETE, "/config/v1/rules/team-a")
            #expect(del.status == 202, "\(del.status) \(del.text)")
            #expect(try await away.request(.DELETE, "/config/v1/rules/team-a").status == 404)
            for n in nodes {
                try await Self.eventually("\(n.process.name) has version 3") { await Self.version(n) == 3 }
                #expect(try await n.request(.GET, "/config/v1/rules").text == "{}\n")
            }
            let changes = (await Self.catalog(nodes[0])?["changes"] as? [[String: Any]]) ?? []
            #expect(changes.map { $0["action"] as? String } == ["delete", "set", "set"], "\(changes)")
            try await Self.eventually("no group listed") {
                let r = try? await nodes[1].request(.GET, "/api/v1/rules")
                return r?.text.contains("\"groups\":[]") == true
            }
        }
    }
}
