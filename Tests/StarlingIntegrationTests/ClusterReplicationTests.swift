import Foundation
import StarlingTestKit
import Testing

/// The cluster data path with real `starling serve` processes on loopback: four nodes at
/// replication factor 3 with encrypted peer RPC. Samples written through one node are answered
/// by every node; a `kill -9`'d replica (before gossip has noticed) neither fails quorum writes
/// nor hides data from reads; with two of four nodes down, shards that lost their quorum refuse
/// writes with a 503 naming them while reads stay complete. Every wait polls state.
@Suite(.serialized) struct ClusterReplicationTests {
    static let nowMs = Int64(Date().timeIntervalSince1970 * 1000)

    /// `series` series of metric `<name>_v`, `samples` samples each, in line protocol (ms).
    static func lines(_ name: String, series: Int, samples: Int, base: Int64) -> [UInt8] {
        var out = ""
        for i in 0..<series {
            for k in 0..<samples {
                out += "\(name),i=\(i),job=j\(i % 5) v=\(i * 10 + k) \(base + Int64(k) * 1_000)\n"
            }
        }
        return Array(out.utf8)
    }

    static func scalar(_ node: TestNode, _ query: String) async throws -> (Double?, [String]) {
        let r = try await node.request(.GET, "/api/v1/query?query=\(q(query))&time=\(Double(nowMs) / 1000 + 60)")
        #expect(r.status == 200, "\(query): \(r.text)")
        let data = r.json["data"] as? [String: Any]
        let result = data?["result"] as? [[String: Any]]
        let warnings = r.json["warnings"] as? [String] ?? []
        guard let first = result?.first, let value = first["value"] as? [Any], let text = value.last as? String else {
            Issue.record("\(node.process.name) \(query): no value in \(r.text.prefix(500))")
            return (nil, warnings)
        }
        return (Double(text), warnings)
    }

    /// Series in the node's own store (`starling_storage_series`).
    static func storedSeries(_ node: TestNode) async -> Int {
        guard let m = try? await node.request(.GET, "/metrics") else { return 0 }
        let line = m.text.split(separator: "\n").first { $0.hasPrefix("starling_storage_series ") }
        return line.flatMap { Double($0.split(separator: " ").last ?? "") }.map { Int($0) } ?? 0
    }

    static func shards(_ node: TestNode) async -> [String: Any]? {
        guard let r = try? await node.request(.GET, "/api/v1/cluster/shards"), r.status == 200 else { return nil }
        return r.json["data"] as? [String: Any]
    }

    @Test func writesReplicateAndEveryNodeAnswersThroughFailures() async throws {
        var nodes: [TestNode] = []
        defer { for n in nodes { n.stop() } }
        let started = try await ClusterMembershipTests.startCluster(
            (0..<4).map { "r\($0)" }, profile: "local-test",
            extraArgs: ["--set", "cluster.anti_entropy_interval=1s", "--set", "cluster.anti_entropy_settle=0s"])
        nodes = started.nodes
        try await withLogsOnFailure(nodes.map(\.process)) {
            // Every node computes the same placement over four active members.
            let agreed = await ClusterMembershipTests.eventually(nodes, within: .seconds(60)) { _, v in
                v.count == 4 && v.values.allSatisfy { $0.status == "alive" && $0.state == "active" && !$0.peerAddress.isEmpty }
            }
            try #require(agreed, "cluster did not form")
            var versions = Set<String>()
            let deadline = ContinuousClock.now + .seconds(30)
            repeat {
                versions = []
                for n in nodes {
                    let d = await Self.shards(n)
                    versions.insert(d?["placement_version"] as? String ?? "?")
                    if (d?["members"] as? [Any])?.count != 4 { versions.insert("incomplete") }
                }
                if versions.count == 1 { break }
                try await Task.sleep(for: .milliseconds(100))
            } while ContinuousClock.now < deadline
            try #require(versions.count == 1, "placements differ: \(versions)")
            let view = try #require(await Self.shards(nodes[2]))
            #expect(view["replication_factor"] as? Int == 3)
            let shardList = try #require(view["shards"] as? [[String: Any]])
            #expect(shardList.count == 1024)
            #expect(shardList.allSatisfy { ($0["replicas"] as? [Any])?.count == 3 && $0["leader"] is String })

            // 1. Written through one node, answered by every node.
            let w1 = try await nodes[0].request(.POST, "/write?precision=ms", body: Self.lines("cm", series: 400, samples: 3, base: Self.nowMs))
            try #require(w1.status == 204, "\(w1.status) \(w1.text)")
            for n in nodes {
                let (count, warnings) = try await Self.scalar(n, "count(cm_v)")
                #expect(count == 400, "\(n.process.name)")
                #expect(warnings.isEmpty)
                let (samples, _) = try await Self.scalar(n, "sum(count_over_time(cm_v[10m]))")
                #expect(samples == 1200, "\(n.process.name)")
                let series = try await n.request(.GET, "/api/v1/series?match%5B%5D=\(q("cm_v{job=\"j1\"}"))&start=\(Self.nowMs / 1000 - 60)")
                #expect((series.json["data"] as? [Any])?.count == 80, "\(n.process.name): \(series.text.prefix(300))")
                let values = try await n.request(.GET, "/api/v1/label/job/values")
                #expect((values.json["data"] as? [String]) == ["j0", "j1", "j2", "j3", "j4"])
            }
            // Each node stores about three quarters of the series, not all of them.
            for n in nodes {
                let m = try await n.request(.GET, "/metrics")
                let line = m.text.split(separator: "\n").first { $0.hasPrefix("starling_cluster_local_shard_replicas ") }
                let mine = line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
                #expect(mine > 600 && mine < 900, "\(n.process.name) holds \(mine) shard replicas")
            }

            // 2. kill -9 a replica: before gossip notices, writes reach quorum without it and
            //    reads fall back to the other replicas.
            try await nodes[3].process.kill9()
            let w2 = try await nodes[1].request(.POST, "/write?precision=ms", body: Self.lines("cm2", series: 300, samples: 2, base: Self.nowMs))
            #expect(w2.status == 204, "\(w2.status) \(w2.text)")
            for n in nodes[0..<3] {
                let (count, warnings) = try await Self.scalar(n, "count(cm_v) + count(cm2_v)")
                #expect(count == 700, "\(n.process.name)")
                #expect(warnings.isEmpty, "\(warnings)")
            }

            // 3. Two of four down: a shard with two replicas on them has no quorum, and the write
            //    is refused naming such shards; every shard still has a replica to read.
            try await nodes[2].process.kill9()
            let w3 = try await nodes[0].request(.POST, "/write?precision=ms", body: Self.lines("cm3", series: 300, samples: 1, base: Self.nowMs))
            #expect(w3.status == 503, "\(w3.status) \(w3.text)")
            #expect(w3.text.contains("write consistency quorum not reached"), "\(w3.text)")
            #expect(w3.text.contains("shard "), "\(w3.text)")
            for n in nodes[0..<2] {
                let (count, warnings) = try await Self.scalar(n, "count(cm_v) + count(cm2_v)")
                #expect(count == 700, "\(n.process.name)")
                #expect(warnings.isEmpty, "\(warnings)")
            }

            // 4. Both come back on their data: anti-entropy pulls what they missed until every
            //    series has exactly three copies (digests converge), with no operator action.
            try await nodes[2].start()
            try await nodes[3].start()
            // The refused batch (503) is partly stored: whatever reached a replica is repaired
            // to all three too, so the count of distinct series is read once converged.
            var copies = 0
            var distinct = 0
            let converge = ContinuousClock.now + .seconds(90)
            while ContinuousClock.now < converge {
                copies = 0
                for n in nodes { copies += await Self.storedSeries(n) }
                let (d, _) = try await Self.scalar(nodes[0], "count({__name__=~\"cm.*_v\"})")
                distinct = Int(d ?? 0)
                if copies == 3 * distinct, distinct >= 700 { break }
                try await Task.sleep(for: .milliseconds(250))
            }
            #expect(copies == 3 * distinct, "stored copies \(copies), expected \(3 * distinct)")
            #expect(distinct >= 700)
            for n in nodes {
                let (count, warnings) = try await Self.scalar(n, "count(cm_v) + count(cm2_v)")
                #expect(count == 700, "\(n.process.name)")
                #expect(warnings.isEmpty, "\(warnings)")
            }
        }
    }
}
