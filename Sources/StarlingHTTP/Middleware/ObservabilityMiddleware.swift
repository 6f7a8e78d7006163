import Hummingbird
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
        let route = context.endpointPath.flatMap { $0 == "NotFound" ? nil : $0 } ?? "unmatched"
        let method = request.method.rawValue
        let status = response.status.code
        let metrics = self.metrics
        let logger = context.logger
        let path = request.uri.path
        let principal = context.principal?.name ?? "-"
        let body = response.body
        let record: @Sendable () -> Void = {
            let elapsed = ContinuousClock.now - start
            metrics.request(route: route, method: method, status: status, duration: elapsed)
            logger.debug(
                "request",
                metadata: [
                    "method": .string(method), "path": .string(path), "route": .string(route),
                    "status": .stringConvertible(status), "duration_ms": .stringConvertible(Double(elapsed.milliseconds)),
                    "principal": .string(principal),
                ])
        }
        guard body.contentLength == nil else {
            record()
            return response
        }
        response.body = ResponseBody { writer in
            do {
                try await body.write(writer)
            } catch {
                record()
                throw error
            }
            record()
        }
        return response
    }
}
