import NIOCore
import NIOPosix
import StarlingCore
import StarlingMembership
import StarlingPeer
import StarlingPeerWire
import StarlingPlacement
import Testing

/// Opens a gate from the test: handlers wait on it, so "slow peer" is an event, not a sleep.
final class Gate: Sendable {
    let stream: AsyncStream<Void>
    let continuation: AsyncStream<Void>.Continuation
    init() { (stream, continuation) = AsyncStream.makeStream(of: Void.self) }
    func wait() async { for await _ in stream { return } }
    func open() { continuation.yield() }
}

/// A server and a client connection on loopback, both sealed and compressed.
func withLoopbackPair<R: Sendable>(
    server serverSettings: PeerConnection.Settings = .init(), client clientSettings: PeerConnection.Settings = .init(),
    handler: @escaping PeerRequestHandler, body: @escaping @Sendable (PeerConnection) async throws -> R
) async throws -> R {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let config = PeerWireConfiguration(keyring: try Keyring(rawKeys: [Array(0..<32)]))
    let framed: @Sendable (any Channel, UInt64) -> EventLoopFuture<NIOAsyncChannel<PeerFrame, PeerFrame>> = { ch, seed in
        ch.eventLoop.makeCompletedFuture {
            var rng = SeededRandom(seed: seed)
            try config.addHandlers(to: ch.pipeline.syncOperations, random: &rng)
            return try NIOAsyncChannel<PeerFrame, PeerFrame>(wrappingChannelSynchronously: ch)
        }
    }
    let server = try await ServerBootstrap(group: group)
        .bind(host: "127.0.0.1", port: 0) { framed($0, 10) }
    let port = try #require(server.channel.localAddress?.port)
    let result = try await withThrowingTaskGroup(of: R?.self) { tasks in
        tasks.addTask {
            try await server.executeThenClose { connections in
                for try await conn in connections {
                    _ = try await PeerConnection.run(channel: conn, settings: serverSettings, handler: handler, body: nil as (@Sendable (PeerConnection) async throws -> Int)?)
                    return nil
                }
                return nil
            }
        }
        tasks.addTask {
            let client = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port) { framed($0, 11) }
            return try await PeerConnection.run(channel: client, settings: clientSettings, handler: { _ in [] }, body: body)
        }
        var out: R?
        for try await r in tasks { if let r { out = r } }
        return out!
    }
    try await group.shutdownGracefully()
    return result
}

/// Polls `condition` (state of a connection) until it holds; fails after ~10 s.
func eventually(_ what: String, _ condition: @Sendable () async -> Bool) async throws {
    for _ in 0..<2000 {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(5))
    }
    Issue.record("timed out waiting for \(what)")
}

@Suite struct PeerConnectionTests {
    static let handler: PeerRequestHandler = { frame in
        switch frame.type {
        case .write:
            guard let w = try? WriteMessage.decode(frame.payload) else { return [(.error, ErrorMessage(code: .malformed, message: "").encoded())] }
            let ack = WriteAckMessage(results: w.shards.map {
                ShardWriteResult(shard: $0.shard, status: .ok, appended: UInt64($0.series.count), dropped: 0)
            })
            return [(.writeAck, ack.encoded())]
        case .select:
            let s = try! SelectMessage.decode(frame.payload)
            let parts = s.shards.map { shard in
                SeriesFrameMessage(series: [SeriesChunks(labels: Labels(["__name__": "m", "shard": "\(shard)"]),
                                                         chunks: [EncodedChunk(minTimeMs: 0, maxTimeMs: 1, bytes: [1])])])
            }
            return parts.map { (.seriesFrame, $0.encoded()) } + [(.streamEnd, StreamEndMessage(warnings: ["w"]).encoded())]
        case .ping:
            return [(.ping, frame.payload)]
        default:
            return [(.error, ErrorMessage(code: .shardNotComplete, message: "not here").encoded())]
        }
    }

    @Test func concurrentRequestsStreamsAndErrors() async throws {
        try await withLoopbackPair(handler: Self.handler) { conn in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<40 {
                    group.addTask {
                        let write = WriteMessage(shards: [ShardWrite(shard: ShardID(i), series: [
                            SeriesSamples(labels: Labels(["__name__": "x", "i": "\(i)"]), samples: [Sample(1, 1)]),
                        ])])
                        let answer = try await conn.request(.write, payload: write.encoded(), timeoutMs: 10_000)
                        #expect(answer.count == 1 && answer[0].type == .writeAck)
                        #expect(try WriteAckMessage.decode(answer[0].payload).results.map(\.shard) == [ShardID(i)])
                    }
                }
                try await group.waitForAll()
            }
            let select = SelectMessage(startMs: 0, endMs: 10, shards: [ShardID(3), ShardID(4), ShardID(900)], matchers: [.eq("__name__", "m")])
            let stream = try await conn.request(.select, payload: select.encoded(), timeoutMs: 0)
            #expect(stream.map(\.type) == [.seriesFrame, .seriesFrame, .seriesFrame, .streamEnd])
            #expect(stream.map { $0.flags.contains(.endOfStream) } == [false, false, false, true])
            let labels = try stream.dropLast().map { try SeriesFrameMessage.decode($0.payload).series[0].labels.get("shard") }
            #expect(labels == ["3", "4", "900"])
            let refused = try await conn.request(.fetchShard, payload: FetchShardMessage(shard: ShardID(1), fromMs: 0, toMs: 1).encoded(), timeoutMs: 0)
            #expect(refused.count == 1 && refused[0].type == .error)
            #expect(try ErrorMessage.decode(refused[0].payload).code == .shardNotComplete)
            // One-way: no answer, the connection carries on.
            try await conn.notify(.shardState, payload: ShardStateMessage(complete: [ShardID(1)]).encoded())
            let pong = try await conn.request(.ping, payload: PingMessage(sentAtMs: 3).encoded(), timeoutMs: 10_000)
            #expect(pong.map(\.type) == [.ping])
            #expect(await conn.requestsInFlight == 0)
            #expect(await conn.lateAnswers == 0)
        }
    }

    /// A request past its timeout fails locally; its answer, arriving later, is counted as late
    /// and the connection keeps working. The client's in-flight bound refuses at once.
    @Test func timeoutsLateAnswersAndTheInFlightBound() async throws {
        let gate = Gate()
        let handler: PeerRequestHandler = { frame in
            if try! PingMessage.decode(frame.payload).sentAtMs < 0 { await gate.wait() }
            return [(.ping, frame.payload)]
        }
        try await withLoopbackPair(client: .init(tracker: .init(maxInFlight: 2)), handler: handler) { conn in
            await #expect(throws: PeerRequestError.timedOut(requestID: 1, timeoutMs: 100)) {
                try await conn.request(.ping, payload: PingMessage(sentAtMs: -1).encoded(), timeoutMs: 100)
            }
            #expect(await conn.requestsInFlight == 0)
            gate.open()
            try await eventually("the late answer") { await conn.lateAnswers == 1 }
            let ok = try await conn.request(.ping, payload: PingMessage(sentAtMs: 5).encoded(), timeoutMs: 10_000)
            #expect(try PingMessage.decode(ok[0].payload).sentAtMs == 5)

            // Two slow requests fill the bound; a third is refused without being sent.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<2 {
                    group.addTask { _ = try await conn.request(.ping, payload: PingMessage(sentAtMs: -2).encoded(), timeoutMs: 0) }
                }
                try await eventually("two requests in flight") { await conn.requestsInFlight == 2 }
                await #expect(throws: PeerRequestError.overloaded(inFlight: 2, limit: 2)) {
                    try await conn.request(.ping, payload: PingMessage(sentAtMs: 1).encoded(), timeoutMs: 0)
                }
                gate.open()
                gate.open()
                try await group.waitForAll()
            }
            #expect(await conn.requestsInFlight == 0)
        }
    }

    /// The server handles at most `maxConcurrentHandlers` peer requests at once and answers
    /// one more with `error(overloaded)` instead of queueing it.
    @Test func serverRefusesBeyondItsHandlerBound() async throws {
        let gate = Gate()
        let handler: PeerRequestHandler = { frame in
            if try! PingMessage.decode(frame.payload).sentAtMs < 0 { await gate.wait() }
            return [(.ping, frame.payload)]
        }
        try await withLoopbackPair(server: .init(maxConcurrentHandlers: 1), handler: handler) { conn in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    let a = try await conn.request(.ping, payload: PingMessage(sentAtMs: -1).encoded(), timeoutMs: 0)
                    #expect(a.map(\.type) == [.ping])
                }
                try await eventually("the slow request in flight") { await conn.requestsInFlight == 1 }
                // Sent after the slow one on the same connection, so the server reads it second.
                var refused: [PeerFrame] = []
                for _ in 0..<200 {
                    refused = try await conn.request(.ping, payload: PingMessage(sentAtMs: 7).encoded(), timeoutMs: 0)
                    if refused.first?.type == .error { break }
                }
                #expect(refused.first?.type == .error)
                #expect(try refused.first.map { try ErrorMessage.decode($0.payload).code } == .overloaded)
                gate.open()
                try await group.waitForAll()
            }
        }
    }
}
