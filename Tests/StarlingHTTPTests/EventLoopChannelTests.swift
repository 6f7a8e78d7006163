import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOPosix
import Testing

@testable import StarlingHTTP

/// Where request handlers run with `EventLoopHTTP1Channel`: on the connection's event loop,
/// except behind `OffEventLoopMiddleware`.
@Suite struct EventLoopChannelTests {
    /// "loop" on a NIO event loop thread, "off" anywhere else.
    static func thread() -> String { MultiThreadedEventLoopGroup.currentEventLoop == nil ? "off" : "loop" }

    static func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("here") { _, _ in thread() }
        // After a hop to the blocking pool the handler resumes on the loop, not on the pool.
        router.get("after-pool") { _, _ in
            let inPool = try await BlockingExecutor(pool: .singleton).run { thread() }
            return "\(inPool) \(thread())"
        }
        router.group("heavy").add(middleware: OffEventLoopMiddleware()).get { _, _ in thread() }
        return router
    }

    static func body(_ client: some TestClientProtocol, _ uri: String) async throws -> String {
        try await client.execute(uri: uri, method: .get) { r in
            #expect(r.status == .ok)
            return String(buffer: r.body)
        }
    }

    @Test func handlersRunOnTheConnectionsEventLoop() async throws {
        let app = Application(router: Self.router(), server: .http1OnEventLoop())
        try await app.test(.live) { client in
            let here = try await Self.body(client, "/here")
            let afterPool = try await Self.body(client, "/after-pool")
            let heavy = try await Self.body(client, "/heavy")
            #expect(here == "loop")
            #expect(afterPool == "off loop")
            #expect(heavy == "off")
        }
    }

    /// The control: Hummingbird's own HTTP/1 channel runs handlers off the event loops, so the
    /// check above can tell the two apart.
    @Test func hummingbirdsDefaultChannelRunsHandlersOffTheLoop() async throws {
        let app = Application(router: Self.router())
        try await app.test(.live) { client in
            let here = try await Self.body(client, "/here")
            #expect(here == "off")
        }
    }
}
