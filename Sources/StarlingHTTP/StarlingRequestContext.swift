import Hummingbird
import Logging

/// The request context of every Starling route. One type for the whole app, so middleware
/// (authentication, metrics, logging) and every feature's routes share it; features that need
/// more per-request state add a field here rather than a second context type.
public struct StarlingRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by `AuthenticationMiddleware` when the request carried a valid bearer token.
    public var principal: Principal?
    /// Why authentication failed, when it did; `RequirePermission` turns it into a 401.
    public var authFailure: AuthFailure?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    /// Only used by Hummingbird's `request.decode`: Starling reads bodies itself with
    /// `RequestBody.collect(_:limit:)` and its configured `http.max_body_bytes`.
    public var maxUploadSize: Int { 1 << 20 }
}
