import Hummingbird
import NIOCore

/// `/healthz` (the process is up), `/readyz` (storage recovered, node serves) and `/metrics`.
/// The first two are open to everyone (load balancers, orchestrators); `/metrics` needs a token of
/// any role.
public struct HealthRoutes: Sendable {
    let readiness: Readiness
    let metrics: StarlingMetrics
    /// Called before rendering `/metrics` to refresh gauges that are read on demand (storage
    /// statistics). Errors are ignored: stale gauges beat a failed scrape.
    let beforeScrape: @Sendable () async -> Void

    public init(readiness: Readiness, metrics: StarlingMetrics, beforeScrape: @escaping @Sendable () async -> Void = {}) {
        self.readiness = readiness
        self.metrics = metrics
        self.beforeScrape = beforeScrape
    }

    public func routes() -> RouteCollection<StarlingRequestContext> {
        let open = RouteCollection(context: StarlingRequestContext.self)
        open.get("healthz") { _, _ in
            Self.json(.ok, #"{"status":"ok"}"#)
        }
        open.get("readyz") { _, _ in
            let pending = readiness.pendingComponents
            if pending.isEmpty { return Self.json(.ok, #"{"status":"ready"}"#) }
            var w = JSONWriter()
            w.beginObject()
            w.field("status", "not_ready")
            w.key("pending")
            w.beginObject()
            for p in pending { w.field(p.component, p.reason) }
            w.endObject()
            w.endObject()
            return Response(
                status: .serviceUnavailable, headers: [.contentType: "application/json", .retryAfter: "1"],
                body: .init(byteBuffer: ByteBuffer(bytes: w.bytes)))
        }

        // Rendering the registry takes its lock for the whole text: off the event loops, which
        // gossip and peer traffic share.
        let scrape = RouteCollection(context: StarlingRequestContext.self)
            .add(middleware: OffEventLoopMiddleware())
            .add(middleware: RequirePermission(.metrics, metrics: metrics))
        scrape.get("metrics") { _, _ in
            await beforeScrape()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: metrics.render())))
        }
        open.addRoutes(scrape)
        return open
    }

    static func json(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
