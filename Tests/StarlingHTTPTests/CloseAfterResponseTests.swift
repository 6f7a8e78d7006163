import Hummingbird
import HummingbirdCore
import HummingbirdTesting
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTPTypes
import NIOPosix
import Testing

@testable import StarlingHTTP

/// Records when the server side of a connection went inactive (the server closed its socket).
final class ServerCloseRecorder: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = HTTPRequestPart
    let closed = NIOLockedValueBox(0)

    func channelInactive(context: ChannelHandlerContext) {
        closed.withLockedValue { $0 += 1 }
        context.fireChannelInactive()
    }
}

/// Connections of requests that say `Connection: close` end with a full close once the response
/// has been written (`CloseAfterResponseHandler`), not with a half-close that waits for the client.
@Suite struct CloseAfterResponseTests {
    static let bigBody = 24 << 20

    static func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("small") { _, _ in "small body" }
        // Far larger than the socket buffers: the server must keep the channel until it is all out.
        router.get("big") { _, _ in ByteBuffer(repeating: UInt8(ascii: "x"), count: Self.bigBody) }
        return router
    }

    /// Serves `router()` with a `ServerCloseRecorder` and runs `body` over one raw HTTP/1.1
    /// client connection, which stays open after the server's FIN until `body` returns.
    static func overOneConnection<R: Sendable>(
        _ body: @Sendable (NIOAsyncChannelInboundStream<ByteBuffer>, NIOAsyncChannelOutboundWriter<ByteBuffer>, ServerCloseRecorder) async throws -> R
    ) async throws -> R {
        let recorder = ServerCloseRecorder()
        let app = Application(router: router(), server: .http1OnEventLoop(configuration: .init(additionalChannelHandlers: [recorder])))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let result = try await app.test(.live) { client in
                let channel = try await ClientBootstrap(group: group)
                    .channelOption(.allowRemoteHalfClosure, value: true)
                    .connect(host: "127.0.0.1", port: try #require(client.port)) { ch in
                        ch.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: ch) }
                    }
                return try await channel.executeThenClose { inbound, outbound in try await body(inbound, outbound, recorder) }
            }
            try await group.shutdownGracefully()
            return result
        } catch {
            try await group.shutdownGracefully()
            throw error
        }
    }

    /// Everything up to the server's FIN, pausing 2 ms every `pauseEvery` reads (a slow reader).
    static func readToEnd(_ inbound: NIOAsyncChannelInboundStream<ByteBuffer>, pauseEvery: Int = .max) async throws -> ByteBuffer {
        var received = ByteBuffer()
        var reads = 0
        for try await chunk in inbound {
            received.writeImmutableBuffer(chunk)
            reads += 1
            if reads % pauseEvery == 0 { try await Task.sleep(for: .milliseconds(2)) }
        }
        return received
    }

    static func request(_ path: String, close: Bool) -> ByteBuffer {
        ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: localhost\r\n" + (close ? "Connection: close\r\n" : "") + "\r\n")
    }

    /// Waits up to 10 s for the server to have closed `count` connections.
    static func serverClosed(_ recorder: ServerCloseRecorder, count: Int) async throws -> Bool {
        for _ in 0..<1_000 {
            if recorder.closed.withLockedValue({ $0 }) >= count { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    /// The head and the body length of one response read from `bytes`, or nil if incomplete.
    static func response(in bytes: ByteBuffer) -> (head: String, bodyLength: Int)? {
        let view = bytes.readableBytesView
        guard let end = view.firstRange(of: Array("\r\n\r\n".utf8)) else { return nil }
        return (String(decoding: view[..<end.lowerBound], as: UTF8.self), view.endIndex - end.upperBound)
    }

    @Test func theServerClosesWithoutWaitingForTheClient() async throws {
        try await Self.overOneConnection { inbound, outbound, recorder in
            try await outbound.write(Self.request("/small", close: true))
            let response = try #require(Self.response(in: try await Self.readToEnd(inbound)))
            #expect(response.head.hasPrefix("HTTP/1.1 200"))
            #expect(response.bodyLength == "small body".utf8.count)
            // Hummingbird alone would half-close and wait for this client's FIN for ever.
            #expect(try await Self.serverClosed(recorder, count: 1))
        }
    }

    @Test func keepAliveConnectionsStayOpenUntilAskedToClose() async throws {
        try await Self.overOneConnection { inbound, outbound, recorder in
            var iterator = inbound.makeAsyncIterator()
            var received = ByteBuffer()
            try await outbound.write(Self.request("/small", close: false))
            while Self.response(in: received)?.bodyLength != "small body".utf8.count {
                received.writeImmutableBuffer(try #require(try await iterator.next()))
            }
            try await Task.sleep(for: .milliseconds(100))
            #expect(recorder.closed.withLockedValue { $0 } == 0)
            // The same connection answers a second request, then closes.
            received.clear()
            try await outbound.write(Self.request("/small", close: true))
            while let chunk = try await iterator.next() { received.writeImmutableBuffer(chunk) }
            #expect(Self.response(in: received)?.bodyLength == "small body".utf8.count)
            #expect(try await Self.serverClosed(recorder, count: 1))
        }
    }

    /// A response larger than the socket buffers, read slowly: the close waits for its last byte.
    @Test func aLargeResponseArrivesWholeBeforeTheClose() async throws {
        try await Self.overOneConnection { inbound, outbound, recorder in
            try await outbound.write(Self.request("/big", close: true))
            let response = try #require(Self.response(in: try await Self.readToEnd(inbound, pauseEvery: 16)))
            #expect(response.head.hasPrefix("HTTP/1.1 200"))
            #expect(response.bodyLength == Self.bigBody)
            #expect(try await Self.serverClosed(recorder, count: 1))
        }
    }

    @Test func connectionHeaderTokens() {
        for value in ["close", "Close", "CLOSE", "keep-alive, close", " close ", "Upgrade,\tclose"] {
            #expect(CloseAfterResponseHandler.asksToClose(value), "\(value)")
        }
        for value in ["", "keep-alive", "closed", "clo se", "clsoe", "CLOS@", "close-ish", "keep-alive, upgrade"] {
            #expect(!CloseAfterResponseHandler.asksToClose(value), "\(value)")
        }
    }
}
