import Hummingbird
import HummingbirdCore
import Logging

/// Counts every request and records its latency by route template, method and status; logs it at
/// debug level. Sits inside `ErrorMiddleware`, so errors are already responses here and carry their
/// final status.
///
/// A streamed body (no content length: exports) is wrapped so that the latency covers writing it,
/// which is most of such a request's time. A body of known length is in memory and is left as it
/// is: Hummingbird then writes head and body in one `writev`, where the wrapper's closure made it
/// write and flush them separately, two syscalls and two TCP segments per response (~10 % of a
/// small query's latency).
public struct ObservabilityMiddleware: RouterMiddleware {
    public typealias Context = StarlingRequestContext
    let metrics: StarlingMetrics

    public init(metrics: StarlingMetrics) {
        self.metrics = metrics
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var response = try await next(request, context)
        // Route templates keep the label set bounded; unknown paths share one value.
        // Hummingbird names the not-found responder's path "NotFound".
        let done = Completed(
            metrics: metrics, logger: context.logger, start: start,
            route: context.endpointPath.flatMap { $0 == "NotFound" ? nil : $0 } ?? "unmatched",
            method: request.method.rawValue, status: response.status.code, uri: request.uri,
            principal: context.principal?.name ?? "-")
        let body = response.body
        guard body.contentLength == nil else {
            done.record()
            return response
        }
        response.body = ResponseBody { writer in
            do {
                try await body.write(writer)
            } catch {
                done.record()
                throw error
            }
            done.record()
        }
        return response
    }

    /// What is recorded of a request once its response is complete. A value, so the common case
    /// (recorded when the handler returns) allocates no closure context.
    struct Completed: Sendable {
        let metrics: StarlingMetrics
        let logger: Logger
        let start: ContinuousClock.Instant
        let route: String
        let method: String
        let status: Int
        let uri: URI
        let principal: String

        func record() {
            let elapsed = ContinuousClock.now - start
            metrics.request(route: route, method: method, status: status, duration: elapsed)
            logger.debug(
                "request",
                metadata: [
                    "method": .string(method), "path": .string(uri.path), "route": .string(route),
                    "status": .stringConvertible(status), "duration_ms": .stringConvertible(Double(elapsed.milliseconds)),
                    "principal": .string(principal),
                ])
        }
    }
}
