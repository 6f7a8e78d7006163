import Hummingbird
import Logging
import NIOCore

/// Maps every error that escapes a handler to an `APIError` response: the one place where domain
/// errors meet HTTP. Must be the outermost middleware so that the metrics and logging middleware
/// inside it see the final status.
public struct ErrorMiddleware: RouterMiddleware {
    public typealias Context = StarlingRequestContext

    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let apiError = Self.map(error, request: request)
            if apiError.kind == .internal {
                context.logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            }
            return try apiError.response(from: request, context: context)
        }
    }

    /// The error → HTTP mapping. `APIErrorConvertible` is the extension point for new domains.
    public static func map(_ error: any Error, request: Request) -> APIError {
        switch error {
        case let e as APIError: return e
        case let e as any APIErrorConvertible: return e.apiError
        case let e as HTTPError:
            switch e.status {
            case .notFound: return APIError(.notFound, "no route for \(request.method) \(request.uri.path)")
            case .methodNotAllowed: return APIError(.methodNotAllowed, "method \(request.method) not allowed on \(request.uri.path)")
            case .contentTooLarge: return APIError(.tooLarge, e.body ?? "request body too large")
            default:
                let kind: APIError.Kind = e.status.code >= 500 ? .internal : .badData
                return APIError(kind, e.body ?? e.status.reasonPhrase, status: e.status)
            }
        case is NIOTooManyBytesError:
            return APIError(.tooLarge, "request body too large")
        case is CancellationError:
            return APIError.unavailable("request cancelled: the node is shutting down")
        default:
            return APIError.internal("internal error: \(error)")
        }
    }
}

extension TokenError: APIErrorConvertible {
    public var apiError: APIError {
        switch self {
        case .notFound: return APIError(.notFound, description)
        case .invalidName, .invalidLabel: return APIError(.badData, description)
        case .storeUnavailable: return APIError.unavailable(description)
        }
    }
}
