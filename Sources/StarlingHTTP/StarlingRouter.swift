import Hummingbird

/// Builds the node's router: the shared middleware stack, then one `RouteCollection` per feature.
///
/// Adding a feature (query, cluster, alerts, auth …): write a `struct FooRoutes` with a
/// `routes() -> RouteCollection<StarlingRequestContext>` that starts with
/// `.add(middleware: RequirePermission(.read, metrics: metrics))` (or the permission it needs),
/// register its handlers, throw `APIError` or an `APIErrorConvertible` domain error, run blocking
/// work through `BlockingExecutor`, and pass its collection to `make(features:)` in
/// `StarlingNode`. Nothing else needs to change: authentication, metrics, logging and error
/// bodies come from the stack below.
///
/// Handlers run on their connection's NIO event loop (`EventLoopHTTP1Channel`), which gossip and
/// peer traffic share: nothing in a handler may block (RocksDB, files, long lock waits go
/// through `BlockingExecutor`), and a collection whose handlers do heavy CPU work inline
/// (rendering large bodies, parsing large documents) starts with
/// `.add(middleware: OffEventLoopMiddleware())`.
public enum StarlingRouter {
    /// Middleware order, outermost first:
    /// 1. `ObservabilityMiddleware` — sees the final status of every request, errors included;
    /// 2. `ErrorMiddleware` — turns every thrown error into a Prometheus-style JSON body;
    /// 3. `AuthenticationMiddleware` — resolves the bearer token into a `Principal`.
    public static func make(
        authority: TokenAuthority, metrics: StarlingMetrics, features: [RouteCollection<StarlingRequestContext>]
    ) -> Router<StarlingRequestContext> {
        let router = Router(context: StarlingRequestContext.self)
        router.add(middleware: ObservabilityMiddleware(metrics: metrics))
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: AuthenticationMiddleware(authority: authority))
        for f in features { router.addRoutes(f) }
        return router
    }
}
