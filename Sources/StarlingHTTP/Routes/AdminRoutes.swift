import Foundation
import Hummingbird
import NIOCore
import StarlingCore

/// `/api/v1/admin/tokens`: create (the secret is returned once), list, revoke. Admin role only.
public struct AdminRoutes: Sendable {
    let authority: TokenAuthority
    let metrics: StarlingMetrics
    let executor: BlockingExecutor
    let nowMs: @Sendable () -> Int64

    public init(authority: TokenAuthority, metrics: StarlingMetrics, executor: BlockingExecutor, nowMs: @escaping @Sendable () -> Int64) {
        self.authority = authority
        self.metrics = metrics
        self.executor = executor
        self.nowMs = nowMs
    }

    /// The body of `POST /api/v1/admin/tokens`.
    struct CreateRequest: Decodable {
        var name: String
        var role: String
        var labels: [String: String]?
    }

    /// Largest accepted body for admin calls: they are tiny JSON documents.
    static let maxBodyBytes = 64 * 1024

    public func routes() -> RouteCollection<StarlingRequestContext> {
        let r = RouteCollection(context: StarlingRequestContext.self)
            .add(middleware: RequirePermission(.admin, metrics: metrics))
        r.post("api/v1/admin/tokens") { request, context in
            let body = try await collectBody(request, limit: Self.maxBodyBytes)
            let req: CreateRequest
            do {
                req = try JSONDecoder().decode(CreateRequest.self, from: Data(buffer: body))
            } catch {
                throw APIError.badData("invalid token request: \(Self.describe(error)); expected {\"name\": \"…\", \"role\": \"admin|writer|reader\", \"labels\": {…}}")
            }
            guard let role = Role(rawValue: req.role) else {
                throw APIError.badData("invalid role \"\(req.role)\": expected one of admin, writer, reader")
            }
            let now = nowMs()
            let authority = self.authority
            let (record, token) = try await executor.run {
                var rng = SystemRandomNumberGenerator()
                return try authority.create(name: req.name, role: role, labels: req.labels ?? [:], nowMs: now, rng: &rng)
            }
            context.logger.info("token created", metadata: ["id": .string(record.id), "name": .string(record.name), "role": .string(role.rawValue)])
            var w = JSONWriter()
            w.beginObject()
            w.field("status", "success")
            w.key("data")
            Self.write(record, token: token, to: &w)
            w.endObject()
            return Self.json(.created, w)
        }
        r.get("api/v1/admin/tokens") { _, _ in
            let records = try authority.list()
            var w = JSONWriter()
            w.beginObject()
            w.field("status", "success")
            w.key("data")
            w.beginArray()
            for rec in records { Self.write(rec, token: nil, to: &w) }
            w.endArray()
            w.endObject()
            return Self.json(.ok, w)
        }
        r.delete("api/v1/admin/tokens/{id}") { _, context in
            let id = try context.parameters.require("id")
            if id == TokenAuthority.bootstrapTokenID {
                throw APIError.badData("the bootstrap admin token comes from configuration (STARLING_ADMIN_TOKEN or the admin-token file) and cannot be revoked through the API")
            }
            let now = nowMs()
            let authority = self.authority
            let record = try await executor.run { try authority.revoke(id: id, nowMs: now) }
            context.logger.info("token revoked", metadata: ["id": .string(record.id), "name": .string(record.name)])
            var w = JSONWriter()
            w.beginObject()
            w.field("status", "success")
            w.key("data")
            Self.write(record, token: nil, to: &w)
            w.endObject()
            return Self.json(.ok, w)
        }
        return r
    }

    static func write(_ r: TokenRecord, token: String?, to w: inout JSONWriter) {
        w.beginObject()
        w.field("id", r.id)
        w.field("name", r.name)
        w.field("role", r.role.rawValue)
        w.field("createdAt", rfc3339(ms: r.createdAtMs, fraction: .none))
        if let rev = r.revokedAtMs { w.field("revokedAt", rfc3339(ms: rev, fraction: .none)) }
        w.key("labels")
        w.beginObject()
        for (k, v) in r.labels.sorted(by: { $0.key < $1.key }) { w.field(k, v) }
        w.endObject()
        if let token { w.field("token", token) }
        w.endObject()
    }

    static func json(_ status: HTTPResponse.Status, _ w: JSONWriter) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: w.bytes)))
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "missing field \"\(key.stringValue)\""
        case DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx):
            return "wrong type at \"\(ctx.codingPath.map(\.stringValue).joined(separator: "."))\""
        case DecodingError.dataCorrupted(let ctx):
            return ctx.codingPath.isEmpty ? "body is not valid JSON" : "bad value at \"\(ctx.codingPath.map(\.stringValue).joined(separator: "."))\""
        default: return "\(error)"
        }
    }
}
