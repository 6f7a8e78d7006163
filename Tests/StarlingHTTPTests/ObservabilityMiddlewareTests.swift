import Hummingbird
import HummingbirdCore
import HummingbirdTesting
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTPTypes
import Testing

@testable import StarlingHTTP

/// Counts the flushes of each response the server writes (`HTTPResponsePart`s, before encoding):
/// every flush is at least one `write` syscall and one TCP segment.
final class ResponseFlushCounter: ChannelOutboundHandler, RemovableChannelHandler, Sendable {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart
    /// Flushes per response, in order of their `.end`.
    let perResponse = NIOLockedValueBox<[Int]>([])
    private let current = NIOLockedValueBox(0)

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            // The flush that follows `.end` belongs to this response.
            perResponse.withLockedValue { $0.append(-1) }
        }
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        let n = current.withLockedValue { $0 += 1; return $0 }
        perResponse.withLockedValue { list in
            if let last = list.indices.last, list[last] == -1 {
                list[last] = n
                current.withLockedValue { $0 = 0 }
            }
        }
        context.flush()
    }
}

@Suite struct ObservabilityMiddlewareTests {
    /// A body of known length goes out in one flush (Hummingbird writes head, body and end
    /// together), so one `writev`; the middleware's timing wrapper is only for streamed bodies.
    /// Both kinds are still counted.
    @Test func bufferedBodiesGoOutInOneFlushAndEveryRequestIsCounted() async throws {
        let metrics = StarlingMetrics()
        let router = Router(context: StarlingRequestContext.self)
        router.add(middleware: ObservabilityMiddleware(metrics: metrics))
        router.get("buffered") { _, _ in "a body of known length" }
        router.get("streamed") { _, _ in
            Response(status: .ok, body: ResponseBody { writer in
                try await writer.write(ByteBuffer(string: "first "))
                try await writer.write(ByteBuffer(string: "second"))
                try await writer.finish(nil)
            })
        }
        let counter = ResponseFlushCounter()
        let app = Application(router: router, server: .http1OnEventLoop(configuration: .init(additionalChannelHandlers: [counter])))
        try await app.test(.live) { client in
            for uri in ["/buffered", "/streamed"] {
                try await client.execute(uri: uri, method: .get) { r in #expect(r.status == .ok) }
            }
        }
        let flushes = counter.perResponse.withLockedValue { $0 }
        #expect(flushes.count == 2)
        #expect(flushes.first == 1, "the buffered response took \(flushes.first ?? 0) flushes")
        #expect((flushes.last ?? 0) > 1, "the streamed response is written as it is produced")
        let text = String(decoding: metrics.render(), as: UTF8.self)
        #expect(text.contains(#"starling_http_requests_total{route="/buffered",method="GET",code="200"} 1"#))
        #expect(text.contains(#"starling_http_requests_total{route="/streamed",method="GET",code="200"} 1"#))
    }
}
