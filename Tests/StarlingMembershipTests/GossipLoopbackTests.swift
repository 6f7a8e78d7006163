import Logging
import NIOCore
import StarlingMembership
import Testing

@testable import StarlingGossip

/// The NIO shell over real loopback sockets, in one process: join through a seed, push-pull,
/// encryption, graceful leave, UDP rebind after the socket is closed under it. Waits poll state
/// (never fixed sleeps) with generous limits; nothing asserts on speed.
@Suite(.serialized) struct GossipLoopbackTests {
    static func config(_ i: Int, seeds: [GossipAddress] = [], keys: [[UInt8]] = [], cluster: String = "loopback") throws -> GossipConfiguration {
        var c = GossipConfiguration(nodeID: NodeID(high: 0xABCD, low: UInt64(i)), name: "loop\(i)",
                                    metadata: NodeMetadata(httpAddress: "127.0.0.1:\(9000 + i)", zone: "z\(i % 2)", state: .active))
        c.bind = GossipAddress(host: "127.0.0.1", port: 0)
        c.seeds = seeds
        c.settings = .localTest
        c.cluster = ClusterID(cluster)
        c.keyring = try Keyring(rawKeys: keys)
        c.leaveTimeoutMs = 2_000
        return c
    }

    static var logger: Logger {
        var l = Logger(label: "gossip-test")
        l.logLevel = .warning
        return l
    }

    /// Polls `condition` every 20 ms for up to `ms`.
    static func eventually(_ ms: Int64 = 20_000, _ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(ms)
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return await condition()
    }

    static func aliveCount(_ s: GossipService) async -> Int {
        await s.members().filter { $0.status == .alive }.count
    }

    static func describe(_ services: [GossipService]) async -> String {
        var out = ""
        for s in services {
            let ms = await s.members().map { "\($0.name)=\($0.status)@\($0.incarnation)" }.joined(separator: " ")
            out += "\(s.configuration.name): \(ms)\n"
        }
        return out
    }

    /// Runs `body` with services started; cancels them afterwards.
    static func withServices(_ configs: [GossipConfiguration], _ body: @escaping ([GossipService]) async throws -> Void) async throws {
        var services: [GossipService] = []
        var seedAddress: GossipAddress?
        for var c in configs {
            if c.seeds == [GossipAddress(host: "first", port: 1)] { c.seeds = seedAddress.map { [$0] } ?? [] }
            let s = try await GossipService.bind(c, logger: Self.logger)
            if seedAddress == nil { seedAddress = s.advertisedAddress }
            services.append(s)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for s in services { group.addTask { try await s.run() } }
            defer { group.cancelAll() }
            try await body(services)
        }
    }

    static let first = [GossipAddress(host: "first", port: 1)]

    @Test func threeNodesJoinLeaveAndSurviveRebind() async throws {
        let configs = try [Self.config(1), Self.config(2, seeds: Self.first), Self.config(3, seeds: Self.first)]
        try await Self.withServices(configs) { s in
            let formed = await Self.eventually { for x in s where await Self.aliveCount(x) != 3 { return false }; return true }
            let view = await Self.describe(s)
            #expect(formed, "cluster did not form:\n\(view)")
            let members = await s[0].members()
            #expect(members.map(\.metadata.zone).sorted() == ["z0", "z1", "z1"])

            // Close node 2's UDP socket under it (what NIO does after EPERM from an nftables
            // output drop): the service rebinds and nobody declares it dead.
            try await s[1].udp?.close()
            let rebound = await Self.eventually { await s[1].udp?.isActive == true }
            #expect(rebound)
            let changes = await s[0].subscribe()
            // Metadata change on node 3 propagates.
            await s[2].setState(.leaving)
            let seen = await Self.eventually { await s[0].members().first { $0.name == "loop3" }?.metadata.state == .leaving }
            let view2 = await Self.describe(s)
            #expect(seen, "metadata change not disseminated:\n\(view2)")
            let allAlive = await s[0].members().allSatisfy { $0.status == .alive }
            #expect(allAlive)

            // Graceful leave of node 2 is seen as left, not dead.
            await s[1].leave()
            let left = await Self.eventually {
                let a = await s[0].members().first { $0.name == "loop2" }?.status
                let b = await s[2].members().first { $0.name == "loop2" }?.status
                return a == .left && b == .left
            }
            let view3 = await Self.describe(s)
            #expect(left, "leave not seen:\n\(view3)")
            let kinds = try await withDeadline(ms: 5_000) {
                var kinds: [String] = []
                for await c in changes {
                    kinds.append("\(c.kind.rawValue) \(c.member.name)")
                    if kinds.count == 2 { break }
                }
                return kinds
            }
            #expect(kinds == ["metadataChanged loop3", "left loop2"])
        }
    }

    @Test func encryptedClusterRejectsWrongKeyAndOtherCluster() async throws {
        let key = [UInt8](repeating: 9, count: 32)
        let other = [UInt8](repeating: 8, count: 32)
        let configs = try [
            Self.config(11, keys: [key]),
            Self.config(12, seeds: Self.first, keys: [key]),
            Self.config(13, seeds: Self.first, keys: [other]),  // wrong key only
            Self.config(14, seeds: Self.first, keys: [key], cluster: "someone-else"),
        ]
        try await Self.withServices(configs) { s in
            let pair = await Self.eventually {
                let a = await Self.aliveCount(s[0]), b = await Self.aliveCount(s[1])
                return a == 2 && b == 2
            }
            let view = await Self.describe(s)
            #expect(pair, "same-key nodes did not join:\n\(view)")
            // Let the refused nodes retry their joins a few times.
            _ = await Self.eventually(1_500) {
                let st = await s[0].stats()
                return st.wrongCluster > 1 && st.authenticationFailures > 1
            }
            let m0 = await s[0].members(), m2 = await s[2].members(), m3 = await s[3].members()
            #expect(!m0.contains { $0.name == "loop13" })
            #expect(!m0.contains { $0.name == "loop14" })
            #expect(m2.count == 1, "wrong-key node joined")
            #expect(m3.count == 1, "foreign-cluster node joined")
            let st = await s[0].stats()
            #expect(st.authenticationFailures > 0)
            #expect(st.wrongCluster > 0)
        }
    }

    @Test func keyRotationKeepsClusterTogether() async throws {
        let old = [UInt8](repeating: 1, count: 16)
        let new = [UInt8](repeating: 2, count: 16)
        // Step 2 of a rotation: some nodes already seal with the new key, all still accept both.
        let configs = try [Self.config(21, keys: [old, new]), Self.config(22, seeds: Self.first, keys: [new, old]),
                           Self.config(23, seeds: Self.first, keys: [old, new])]
        try await Self.withServices(configs) { s in
            let formed = await Self.eventually { for x in s where await Self.aliveCount(x) != 3 { return false }; return true }
            let view = await Self.describe(s)
            #expect(formed, "rotation broke the cluster:\n\(view)")
        }
    }
}

@Suite struct GossipOptionsTests {
    @Test func parsesAndRejectsOptions() throws {
        let id = NodeID(high: 1, low: 2)
        let key = Base64.encode([UInt8](repeating: 5, count: 32))
        let c = try GossipConfiguration.fromOptions(
            nodeID: id, name: "n", metadata: NodeMetadata(), gossip: "0.0.0.0:7946", advertise: "10.0.0.5:7946",
            join: "seed-0.starling:7946,seed-1.starling:7946", clusterID: "prod", keys: [key], profile: "local-test")
        #expect(c.bind == GossipAddress(host: "0.0.0.0", port: 7946))
        #expect(c.advertise?.host == "10.0.0.5")
        #expect(c.seeds.count == 2)
        #expect(c.cluster == ClusterID("prod"))
        #expect(c.keyring.isEncrypting)
        #expect(c.settings == .localTest)
        func rejects(_ option: String, gossip: String? = nil, join: String? = nil, keys: [String] = [], profile: String? = nil) {
            #expect {
                _ = try GossipConfiguration.fromOptions(nodeID: id, name: "n", metadata: NodeMetadata(), gossip: gossip, advertise: nil,
                                                        join: join, clusterID: nil, keys: keys, profile: profile)
            } throws: { e in
                guard case .invalid(let o, _, _) = e as? GossipConfiguration.OptionError else { return false }
                return o == option
            }
        }
        rejects("gossip", gossip: "nope")
        rejects("join", join: "a:1,b")
        rejects("gossip-key", keys: ["AAAA"])
        rejects("gossip-profile", profile: "wan")
    }

    @Test func membersListTheLocalNode() async throws {
        var c = GossipConfiguration(nodeID: NodeID(high: 3, low: 4), name: "solo",
                                    metadata: NodeMetadata(httpAddress: "127.0.0.1:9090", zone: "a", state: .active))
        c.bind = GossipAddress(host: "127.0.0.1", port: 0)
        let s = try await GossipService.bind(c, logger: Logger(label: "t"))
        let members = await s.members()
        #expect(members.count == 1)
        #expect(members[0].id == NodeID(high: 3, low: 4) && members[0].status == .alive && members[0].metadata.state == .active)
        #expect(members[0].metadata.zone == "a" && members[0].metadata.httpAddress == "127.0.0.1:9090")
        #expect(await s.wallClockMs(ofInstanceMs: members[0].lastChangeMs) > 1_700_000_000_000)
        #expect(await s.hasJoined)
        try await s.udp?.close()
        try await s.tcpServer.channel.close()
    }
}

@Suite(.serialized) struct GossipDNSSeedTests {
    /// A seed given as a name is resolved on each attempt and every address is tried:
    /// `localhost` may resolve to ::1 first, where nothing listens, before 127.0.0.1.
    @Test func joinsThroughAHostName() async throws {
        let first = try GossipLoopbackTests.config(31)
        let seed = try await GossipService.bind(first, logger: GossipLoopbackTests.logger)
        let joiner = try await GossipService.bind(
            GossipLoopbackTests.config(32, seeds: [GossipAddress(host: "localhost", port: UInt16(seed.boundPort))]),
            logger: GossipLoopbackTests.logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await seed.run() }
            group.addTask { try await joiner.run() }
            defer { group.cancelAll() }
            let joined = await GossipLoopbackTests.eventually {
                let a = await GossipLoopbackTests.aliveCount(seed), b = await GossipLoopbackTests.aliveCount(joiner)
                return a == 2 && b == 2
            }
            #expect(joined)
        }
    }
}

@Suite struct PushPullFramingTests {
    /// Frames arrive split at every byte boundary and back to back; the decoder yields exactly
    /// the payloads, and refuses an oversized length before buffering the body.
    @Test func decodesFramesByteByByteAndRejectsOversize() throws {
        let payloads: [[UInt8]] = [[1, 2, 3], [], Array(repeating: 7, count: 300)]
        var wire: [UInt8] = []
        for p in payloads {
            var b = framed(p, allocator: ByteBufferAllocator())
            wire += b.readBytes(length: b.readableBytes)!
        }
        var decoder = PushPullFrameDecoder()
        var buffer = ByteBuffer()
        var out: [[UInt8]] = []
        for byte in wire {
            buffer.writeInteger(byte)
            while let frame = try decoder.decodeFrame(&buffer) { out.append(frame) }
        }
        #expect(out == payloads)
        var huge = ByteBuffer()
        huge.writeInteger(UInt32(PushPullFrameDecoder.maxFrameBytes + 1))
        #expect(throws: PushPullFrameDecoder.FrameTooLarge.self) { try decoder.decodeFrame(&huge) }
    }
}
