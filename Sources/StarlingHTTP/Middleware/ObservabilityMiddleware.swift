import Hummingbird
import Logging

/// Counts every request and records its latency (until the body has been written) by route
/// template, method and status; logs it at debug level. Sits inside `ErrorMiddleware`, so errors
/// are already responses here and carry their final status.
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
        // Wrap the body so latency covers writing it (streamed exports take most of their time there).
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
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
