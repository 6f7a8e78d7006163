import Hummingbird
import NIOCore

/// The one error type that becomes an HTTP response. Domain errors (storage, ingest, auth) are
/// mapped to it at the edge — in `ErrorMiddleware` — and nowhere else, so route handlers throw
/// whatever their domain throws and the wire shape stays uniform.
///
/// The body follows the Prometheus HTTP API:
/// `{"status":"error","errorType":"bad_data","error":"…"}`, so Prometheus clients (Grafana,
/// promtool, remote-write senders) show the message to the user.
public struct APIError: Error, HTTPResponseError, Sendable, Equatable, CustomStringConvertible {
    /// Prometheus's `errorType` vocabulary, extended with the auth and limit cases.
    public enum Kind: String, Sendable, Equatable {
        case badData = "bad_data"
        case unauthorized = "unauthorized"
        case forbidden = "forbidden"
        case notFound = "not_found"
        case methodNotAllowed = "method_not_allowed"
        case tooLarge = "too_large"
        case unavailable = "unavailable"
        case execution = "execution"
        case `internal` = "internal"
        case tooManyRequests = "too_many_requests"

        var status: HTTPResponse.Status {
            switch self {
            case .badData: return .badRequest
            case .unauthorized: return .unauthorized
            case .forbidden: return .forbidden
            case .notFound: return .notFound
            case .methodNotAllowed: return .methodNotAllowed
            case .tooLarge: return .contentTooLarge
            case .unavailable: return .serviceUnavailable
            case .execution: return .unprocessableContent
            case .internal: return .internalServerError
            case .tooManyRequests: return .tooManyRequests
            }
        }
    }

    public var kind: Kind
    public var message: String
    /// Overrides the status implied by `kind` (rarely needed).
    public var statusOverride: HTTPResponse.Status?
    /// Extra response headers (`WWW-Authenticate`, `Retry-After`).
    public var headers: HTTPFields

    public init(_ kind: Kind, _ message: String, status: HTTPResponse.Status? = nil, headers: HTTPFields = [:]) {
        self.kind = kind
        self.message = message
        self.statusOverride = status
        self.headers = headers
    }

    public var status: HTTPResponse.Status { statusOverride ?? kind.status }
    public var description: String { "\(status.code) \(kind.rawValue): \(message)" }

    public static func badData(_ message: String) -> APIError { APIError(.badData, message) }
    public static func unavailable(_ message: String) -> APIError {
        APIError(.unavailable, message, headers: [.retryAfter: "5"])
    }
    public static func `internal`(_ message: String) -> APIError { APIError(.internal, message) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "application/json"
        var json = JSONWriter()
        json.object {
            $0.field("status", "error")
            $0.field("errorType", kind.rawValue)
            $0.field("error", message)
        }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: json.bytes)))
    }
}

/// A domain error that knows its HTTP mapping. Conformances live next to the routes that surface
/// the error (the edge), keeping the domain targets free of HTTP.
public protocol APIErrorConvertible: Error {
    var apiError: APIError { get }
}
