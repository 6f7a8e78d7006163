import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import StarlingMembership
import Testing

@testable import StarlingHTTP
@testable import StarlingNode

/// A fixed membership view for route tests.
struct FixedMembership: ClusterMembershipSource {
    var snapshot: ClusterMembersSnapshot
    func clusterMembers() async -> ClusterMembersSnapshot { snapshot }
}

@Suite struct ClusterTests {
    static let local = NodeID(high: 1, low: 2)
    static let peer = NodeID(high: 0xabc, low: 0xdef)

    static var snapshot: ClusterMembersSnapshot {
        ClusterMembersSnapshot(
            clusterID: "prod", localID: local,
            members: [
                Member(id: peer, name: "b", address: GossipAddress(host: "10.0.0.2", port: 9471), incarnation: 7,
                       status: .suspect,
                       metadata: NodeMetadata(httpAddress: "10.0.0.2:9470", peerAddress: "10.0.0.2:9472", zone: "eu1-b",
                                              state: .active, version: "0.1.0"),
                       lastChangeMs: 5_000),
                Member(id: local, name: "a", address: GossipAddress(host: "10.0.0.1", port: 9471), incarnation: 3,
                       status: .alive, metadata: NodeMetadata(httpAddress: "10.0.0.1:9470", zone: "eu1-a", state: .joining),
                       lastChangeMs: 1_000),
            ],
            wallOffsetMs: 1_764_000_000_000)
    }

    @Test func membersRouteNeedsReaderRoleAndListsTheView() async throws {
        let shell = try TestShell()
        var rng = SystemRandomNumberGenerator()
        let (_, readerToken) = try shell.authority.create(name: "grafana", role: .reader, labels: [:], nowMs: 1, rng: &rng)
        let (_, writerToken) = try shell.authority.create(name: "agent", role: .writer, labels: [:], nowMs: 1, rng: &rng)
        let routes = ClusterRoutes(source: FixedMembership(snapshot: Self.snapshot), metrics: shell.metrics).routes()
        try await shell.application(extra: [routes]).test(.router) { client in
            try await client.execute(uri: "/api/v1/cluster/members", method: .get) { r in
                #expect(r.status == .unauthorized)
            }
            try await client.execute(uri: "/api/v1/cluster/members", method: .get, headers: bearer(writerToken)) { r in
                #expect(r.status == .forbidden)
            }
            try await client.execute(uri: "/api/v1/cluster/members", method: .get, headers: bearer(readerToken)) { r in
                #expect(r.status == .ok)
                let body = json(r.body)
                #expect(body["status"] as? String == "success")
                let data = try #require(body["data"] as? [String: Any])
                #expect(data["cluster"] as? String == "prod")
                #expect(data["local"] as? String == Self.local.description)
                let members = try #require(data["members"] as? [[String: Any]])
                #expect(members.count == 2)
                let b = members[0]
                #expect(b["id"] as? String == "0000000000000abc0000000000000def")
                #expect(b["name"] as? String == "b" && b["local"] as? Bool == false)
                #expect(b["status"] as? String == "suspect" && b["state"] as? String == "active")
                #expect((b["incarnation"] as? NSNumber)?.intValue == 7)
                #expect(b["gossip_address"] as? String == "10.0.0.2:9471")
                #expect(b["http_address"] as? String == "10.0.0.2:9470" && b["peer_address"] as? String == "10.0.0.2:9472")
                #expect(b["zone"] as? String == "eu1-b" && b["version"] as? String == "0.1.0")
                #expect((b["last_change_ms"] as? NSNumber)?.int64Value == 1_764_000_005_000)
                #expect(b["last_change"] as? String == "2025-11-24T16:00:05.000Z")
                #expect(members[1]["local"] as? Bool == true && members[1]["state"] as? String == "joining")
            }
        }
    }

    @Test func nodeIDIsCreatedOnceAndKeptAcrossRestarts() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("starling-id-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var rng = SystemRandomNumberGenerator()
        let (first, o1) = try NodeIdentity.loadOrCreate(dataDir: dir, using: &rng)
        #expect(o1 == .generated)
        let (again, o2) = try NodeIdentity.loadOrCreate(dataDir: dir, using: &rng)
        #expect(o2 == .existing && again == first)
        let text = try String(contentsOfFile: dir + "/node-id", encoding: .utf8)
        #expect(text == first.description + "\n")

        // A fresh data directory is a new node.
        let other = dir + "-fresh"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: other) }
        let (fresh, _) = try NodeIdentity.loadOrCreate(dataDir: other, using: &rng)
        #expect(fresh != first)

        // A damaged file stops the start with an error naming it; it is never silently replaced.
        try "not-an-id\n".write(toFile: other + "/node-id", atomically: true, encoding: .utf8)
        do {
            _ = try NodeIdentity.loadOrCreate(dataDir: other, using: &rng)
            Issue.record("corrupt node ID accepted")
        } catch let e as NodeError {
            #expect(e.description.contains("node-id") && e.description.contains("corrupt"))
        }
        #expect(try String(contentsOfFile: other + "/node-id", encoding: .utf8) == "not-an-id\n")
    }

    @Test func clusterKeysAreValidatedAndTheGossipConfigurationFollowsTheKeys() throws {
        func load(_ flags: [(String, String)]) throws -> NodeConfig {
            try ConfigLoader.load(configFile: nil, environment: [:],
                                  flags: flags.map { .init(flag: "--set \($0.0)", key: $0.0, value: $0.1) }).config
        }
        let key1 = Data(repeating: 1, count: 32).base64EncodedString()
        let key2 = Data(repeating: 2, count: 16).base64EncodedString()
        let keysFile = FileManager.default.temporaryDirectory.appendingPathComponent("starling-keys-\(UUID().uuidString)").path
        try "# rotation: primary first\n\(key2)\n\n".write(toFile: keysFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: keysFile) }

        let c = try load([
            ("cluster.keys", key1), ("cluster.keys_file", keysFile), ("cluster.id", "prod"), ("cluster.profile", "local-test"),
            ("cluster.advertise", "10.1.2.3:0"), ("cluster.join", "seed.starling.svc:9471,10.0.0.9:9471"), ("node.zone", "eu1-a"),
        ])
        let g = try NodeMembership.gossipConfiguration(c, nodeID: Self.local)
        #expect(g.keyring.keys.count == 2 && g.keyring.isEncrypting)
        #expect(g.cluster == ClusterID("prod"))
        #expect(g.settings.probeIntervalMs == 200)
        #expect(g.advertise == GossipAddress(host: "10.1.2.3", port: 0))
        #expect(g.seeds == [GossipAddress(host: "seed.starling.svc", port: 9471), GossipAddress(host: "10.0.0.9", port: 9471)])
        #expect(g.metadata.zone == "eu1-a" && g.metadata.state == .joining && g.metadata.version == StarlingVersion.version)

        // Defaults: plaintext, LAN timing, cluster "starling".
        let d = try NodeMembership.gossipConfiguration(NodeConfig(), nodeID: Self.local)
        #expect(!d.keyring.isEncrypting && d.cluster == ClusterID.default && d.settings.probeIntervalMs == 1_000)
        #expect(d.bind == GossipAddress(host: "0.0.0.0", port: 9471))

        for (key, value) in [("cluster.keys", "AAAA"), ("cluster.profile", "wan"), ("cluster.advertise", "db.local:9471"),
                             ("cluster.advertise", "0.0.0.0:9471"), ("cluster.id", "")] {
            do {
                _ = try load([(key, value)])
                Issue.record("\(key)=\(value) accepted")
            } catch let e as ConfigError {
                #expect(e.message.contains(key), "\(e)")
                #expect(!e.message.contains("AAAA"), "keys are not echoed")
            }
        }
        // A bad key in the file names the file and line.
        try "\(key2)\nnot base64!\n".write(toFile: keysFile, atomically: true, encoding: .utf8)
        do {
            _ = try NodeMembership.gossipConfiguration(try load([("cluster.keys_file", keysFile)]), nodeID: Self.local)
            Issue.record("bad key file accepted")
        } catch let e as NodeError {
            #expect(e.description.contains(keysFile) && e.description.contains("line 2"))
        }
        // The keys are redacted when the configuration is printed.
        #expect(!ConfigLoader.render(c).contains(key1))
    }

    @Test func announcedAddressesUseTheAdvertiseHostForWildcards() {
        #expect(NodeMembership.announced(HostPort(host: "0.0.0.0", port: 9470), advertiseHost: "10.0.0.5") == "10.0.0.5:9470")
        #expect(NodeMembership.announced(HostPort(host: "127.0.0.1", port: 0), port: 41_000, advertiseHost: "10.0.0.5") == "127.0.0.1:41000")
        #expect(NodeMembership.announced(HostPort(host: "::", port: 9472), advertiseHost: "fd00::5") == "[fd00::5]:9472")
    }
}
