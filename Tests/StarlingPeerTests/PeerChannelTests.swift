import NIOCore
import NIOEmbedded
import NIOPosix
import StarlingCore
import StarlingMembership
import StarlingPeer
import StarlingPeerWire
import StarlingTestKit
import Testing

typealias SeededRandom = StarlingTestKit.SeededRandom

private let keyA = try! Keyring(rawKeys: [Array(0..<32)])
private let keyB = try! Keyring(rawKeys: [Array(32..<64)])

private func write(_ i: Int) -> WriteMessage {
    var series: [SeriesSamples] = []
    for s in 0..<20 {
        let labels = Labels(["__name__": "node_cpu_seconds_total", "cpu": String(s), "instance": "host-\(i):9100"])
        var samples: [Sample] = []
        for k in 0..<30 {
            let t: Int64 = 1_700_000_000_000 + Int64(k) * 15_000
            samples.append(Sample(t, Double(k * s)))
        }
        series.append(SeriesSamples(labels: labels, samples: samples))
    }
    return WriteMessage(shards: [ShardWrite(shard: ShardID(i), series: series)])
}

@Suite struct PeerChannelTests {
    /// The channel handlers deliver exactly the frames sent, whatever the TCP segmentation —
    /// here one byte per read.
    @Test func embeddedByteByByte() throws {
        let channel = EmbeddedChannel()
        var rng = SeededRandom(seed: 1)
        try PeerWireConfiguration(keyring: keyA).addHandlers(to: channel.pipeline.syncOperations, random: &rng)
        let frames = (0..<3).map { write($0).frame(requestID: UInt64($0 + 1), placementVersion: 9, timeoutMs: 500) }
        for f in frames { try channel.writeOutbound(f) }
        var wire: [UInt8] = []
        while let b = try channel.readOutbound(as: ByteBuffer.self) { wire += Array(buffer: b) }
        #expect(wire[4] & 0x05 == 0x05)  // sealed and LZ4-compressed
        for byte in wire {
            var b = channel.allocator.buffer(capacity: 1)
            b.writeInteger(byte)
            try channel.writeInbound(b)
        }
        var got: [PeerFrame] = []
        while let f = try channel.readInbound(as: PeerFrame.self) { got.append(f) }
        #expect(got == frames)
        #expect(try channel.finish().isClean)
    }

    @Test func embeddedGarbageIsAnErrorAndATruncatedFrameIsReported() throws {
        let channel = EmbeddedChannel()
        var rng = SeededRandom(seed: 1)
        try PeerWireConfiguration(keyring: Keyring()).addHandlers(to: channel.pipeline.syncOperations, random: &rng)
        var b = channel.allocator.buffer(capacity: 4)
        b.writeBytes(Array("GET ".utf8))
        #expect(throws: PeerWireError.badMagic(0x47, 0x45)) { try channel.writeInbound(b) }
        _ = try? channel.finish()

        let cut = EmbeddedChannel()
        try PeerWireConfiguration(keyring: Keyring()).addHandlers(to: cut.pipeline.syncOperations, random: &rng)
        var half = cut.allocator.buffer(capacity: 10)
        half.writeBytes([0x53, 0x50, 0x01, 0x01, 0x00])
        try cut.writeInbound(half)
        #expect(throws: PeerFrameByteDecoder.TruncatedFrame(bufferedBytes: 5)) { _ = try cut.finish() }
    }

    /// A real TCP connection on loopback: five pipelined writes, sealed and compressed; the
    /// server answers in reverse order and the client matches acks by request ID.
    @Test func loopbackPipelinedWritesAndAcks() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let config = PeerWireConfiguration(keyring: keyA)
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { child in
                child.eventLoop.makeCompletedFuture {
                    var rng = SeededRandom(seed: 2)
                    try config.addHandlers(to: child.pipeline.syncOperations, random: &rng)
                    return try NIOAsyncChannel<PeerFrame, PeerFrame>(wrappingChannelSynchronously: child)
                }
            }
        let port = try #require(server.channel.localAddress?.port)
        let requests = (0..<5).map { write($0).frame(requestID: UInt64(100 + $0), placementVersion: 42, timeoutMs: 1000) }

        let acks = try await withThrowingTaskGroup(of: [UInt64: WriteAckMessage]?.self) { tasks in
            tasks.addTask {
                try await server.executeThenClose { connections in
                    for try await conn in connections {
                        try await conn.executeThenClose { input, output in
                            var pending: [PeerFrame] = []
                            for try await frame in input {
                                pending.append(frame)
                                guard pending.count == requests.count else { continue }
                                for f in pending.reversed() {
                                    let w = try WriteMessage.decode(f.payload)
                                    let ack = WriteAckMessage(results: w.shards.map {
                                        ShardWriteResult(shard: $0.shard, status: .ok,
                                                         appended: UInt64($0.series.reduce(0) { $0 + $1.samples.count }), dropped: 0)
                                    })
                                    try await output.write(ack.frame(requestID: f.requestID, placementVersion: 42, flags: [.response]))
                                }
                                pending = []
                            }
                        }
                        return nil
                    }
                    return nil
                }
            }
            tasks.addTask {
                let client = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port) { ch in
                    ch.eventLoop.makeCompletedFuture {
                        var rng = SeededRandom(seed: 3)
                        try config.addHandlers(to: ch.pipeline.syncOperations, random: &rng)
                        return try NIOAsyncChannel<PeerFrame, PeerFrame>(wrappingChannelSynchronously: ch)
                    }
                }
                return try await client.executeThenClose { input, output in
                    for r in requests { try await output.write(r) }
                    var acks: [UInt64: WriteAckMessage] = [:]
                    for try await frame in input {
                        #expect(frame.isResponse && frame.type == .writeAck)
                        acks[frame.requestID] = try WriteAckMessage.decode(frame.payload)
                        if acks.count == requests.count { break }
                    }
                    return acks
                }
            }
            var result: [UInt64: WriteAckMessage] = [:]
            for try await r in tasks { if let r { result = r } }
            return result
        }
        #expect(acks.keys.sorted() == requests.map(\.requestID))
        for (i, r) in requests.enumerated() {
            #expect(acks[r.requestID]?.results == [ShardWriteResult(shard: ShardID(i), status: .ok, appended: 600, dropped: 0)])
        }
        try await group.shutdownGracefully()
    }

    /// A peer with another cluster key: the server's inbound stream fails with
    /// `authenticationFailed` and the connection is closed.
    @Test func loopbackWrongKeyIsRefused() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await ServerBootstrap(group: group)
            .bind(host: "127.0.0.1", port: 0) { child in
                child.eventLoop.makeCompletedFuture {
                    var rng = SeededRandom(seed: 4)
                    try PeerWireConfiguration(keyring: keyA).addHandlers(to: child.pipeline.syncOperations, random: &rng)
                    return try NIOAsyncChannel<PeerFrame, PeerFrame>(wrappingChannelSynchronously: child)
                }
            }
        let port = try #require(server.channel.localAddress?.port)
        let serverError = try await withThrowingTaskGroup(of: PeerWireError?.self) { tasks in
            tasks.addTask {
                try await server.executeThenClose { connections in
                    for try await conn in connections {
                        do {
                            try await conn.executeThenClose { input, _ in
                                for try await _ in input {}
                            }
                        } catch let e as PeerWireError {
                            return e
                        }
                        return nil
                    }
                    return nil
                }
            }
            tasks.addTask {
                let client = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port) { ch in
                    ch.eventLoop.makeCompletedFuture {
                        var rng = SeededRandom(seed: 5)
                        try PeerWireConfiguration(keyring: keyB).addHandlers(to: ch.pipeline.syncOperations, random: &rng)
                        return try NIOAsyncChannel<PeerFrame, PeerFrame>(wrappingChannelSynchronously: ch)
                    }
                }
                try await client.executeThenClose { input, output in
                    try await output.write(PingMessage(sentAtMs: 1).frame(requestID: 1, placementVersion: 0))
                    // The server closes: the stream ends (or resets) without an answer.
                    do {
                        for try await _ in input { Issue.record("answer from a server with another key") }
                    } catch {}
                }
                return nil
            }
            var found: PeerWireError?
            for try await e in tasks { if let e { found = e } }
            return found
        }
        #expect(serverError == .authenticationFailed)
        try await group.shutdownGracefully()
    }
}
