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

    /// With one loop as the server's group (`http.single_event_loop`), every connection's
    /// handlers run on that loop; with the whole group, connections spread over its loops.
    @Test func aSingleLoopServesEveryConnection() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let clients = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let router = Router()
        router.get("which") { _, _ in MultiThreadedEventLoopGroup.currentEventLoop === loop ? "chosen" : "other" }
        let spread = Array(MultiThreadedEventLoopGroup.singleton.makeIterator()).count > 1 ? ["chosen", "other"] : ["chosen"]
        for (provider, want) in [(EventLoopGroupProvider.shared(loop), ["chosen"]), (.singleton, spread)] {
            let app = Application(router: router, server: .http1OnEventLoop(), eventLoopGroupProvider: provider)
            let seen = try await app.test(.live) { client -> Set<String> in
                let port = try #require(client.port)
                var seen = Set<String>()
                // A new connection per request, as clients that do not keep connections alive.
                for _ in 0..<24 {
                    // Clients on a group of their own: `next()` on the server's group is round robin,
                    // and a client taking a loop of it between two accepts would skew the spread.
                    seen.insert(try await TestClient.withClient(host: "localhost", port: port, eventLoopGroupProvider: .shared(clients)) { c in
                        String(buffer: try await c.execute(.init("/which", method: .get)).body ?? ByteBuffer())
                    })
                }
                return seen
            }
            #expect(Set(want).isSubset(of: seen) && seen.isSubset(of: Set(want)), "\(provider): \(seen)")
        }
        try await clients.shutdownGracefully()
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
