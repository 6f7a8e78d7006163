import Hummingbird
import HTTPTypes

/// Authenticates every request that carries an `Authorization` header and records the result in
/// the context. It never rejects by itself: routes that need a permission say so with
/// `RequirePermission`, which is how `/healthz` and `/readyz` stay open.
public struct AuthenticationMiddleware: RouterMiddleware {
    public typealias Context = StarlingRequestContext
    let authority: TokenAuthority

    public init(authority: TokenAuthority) {
        self.authority = authority
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        switch authority.authenticate(authorizationHeader: request.headers[.authorization]) {
        case .success(let p):
            context.principal = p
            context.logger[metadataKey: "token"] = .string(p.tokenID)
        case .failure(let f):
            context.authFailure = f
        }
        return try await next(request, context)
    }
}

/// Guards a route group: 401 when the request is not authenticated (saying why), 403 when the
/// token's role lacks `permission` (saying which role and what it tried).
///
/// Usage in a feature's routes: `router.group("api/v1/admin").add(middleware: RequirePermission(.admin, metrics: m))`.
public struct RequirePermission: RouterMiddleware {
    public typealias Context = StarlingRequestContext
    let permission: Permission
    let metrics: StarlingMetrics?

    public init(_ permission: Permission, metrics: StarlingMetrics?) {
        self.permission = permission
        self.metrics = metrics
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let principal = context.principal else {
            let failure = context.authFailure ?? .missingHeader
            metrics?.authFailure(failure.rawValue)
            if failure == .tokensUnavailable { throw APIError.unavailable(failure.message) }
            throw APIError(.unauthorized, failure.message, headers: [.wwwAuthenticate: "Bearer realm=\"starling\""])
        }
        guard principal.role.allows(permission) else {
            metrics?.authFailure("forbidden")
            throw APIError(
                .forbidden,
                "role \(principal.role.rawValue) of token \(principal.tokenID) (\(principal.name)) cannot \(Self.verb(permission)) (\(request.method) \(request.uri.path) requires \(Self.roles(for: permission)))")
        }
        return try await next(request, context)
    }

    static func verb(_ p: Permission) -> String {
        switch p {
        case .write: return "write data"
        case .read: return "read data"
        case .metrics: return "read node metrics"
        case .admin: return "administer the node"
        }
    }

    static func roles(for p: Permission) -> String {
        "role " + Role.allCases.filter { $0.allows(p) }.map(\.rawValue).joined(separator: " or ")
    }
}
