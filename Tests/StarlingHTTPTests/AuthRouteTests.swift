import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOPosix
import StarlingTestKit
import Synchronization
import Testing

@testable import StarlingHTTP

/// An in-memory `TokenStore` for route tests (the node uses the metadata keyspace of its store).
final class MemoryTokenStore: TokenStore {
    let records = Mutex<[String: TokenRecord]>([:])
    func loadAll() throws -> [TokenRecord] { records.withLock { Array($0.values) } }
    func save(_ record: TokenRecord) throws { records.withLock { $0[record.id] = record } }
}

/// The HTTP shell assembled as the node assembles it, minus storage.
struct TestShell {
    static let adminToken = "test-admin-token-0123456789abcdef"
    let authority = TokenAuthority(bootstrapAdminToken: TestShell.adminToken)
    let metrics = StarlingMetrics()
    let readiness = Readiness()
    let store = MemoryTokenStore()
    let executor = BlockingExecutor(pool: NIOThreadPool.singleton)

    init(attachStore: Bool = true) throws {
        if attachStore { try authority.attach(store) }
    }

    func application(extra: [RouteCollection<StarlingRequestContext>] = []) -> some ApplicationProtocol {
        let router = StarlingRouter.make(
            authority: authority, metrics: metrics,
            features: [
                HealthRoutes(readiness: readiness, metrics: metrics).routes(),
                AdminRoutes(authority: authority, metrics: metrics, executor: executor, nowMs: { 1_700_000_000_000 }).routes(),
            ] + extra)
        return Application(router: router)
    }
}

func bearer(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)"] }

func json(_ buffer: ByteBuffer?) -> [String: Any] {
    guard let buffer, let obj = try? JSONSerialization.jsonObject(with: Data(buffer: buffer)) as? [String: Any] else { return [:] }
    return obj
}

@Suite struct AuthRouteTests {
    @Test func healthAndReadinessNeedNoToken() async throws {
        let shell = try TestShell()
        shell.readiness.setPending("storage", reason: "recovering")
        try await shell.application().test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { r in
                #expect(r.status == .ok)
            }
            try await client.execute(uri: "/readyz", method: .get) { r in
                #expect(r.status == .serviceUnavailable)
                #expect((json(r.body)["pending"] as? [String: String]) == ["storage": "recovering"])
            }
            shell.readiness.setReady("storage")
            try await client.execute(uri: "/readyz", method: .get) { r in
                #expect(r.status == .ok)
            }
        }
    }

    @Test func unauthenticatedRequestsGet401WithAReason() async throws {
        let shell = try TestShell()
        try await shell.application().test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { r in
                #expect(r.status == .unauthorized)
                #expect(r.headers[.wwwAuthenticate] == "Bearer realm=\"starling\"")
                let body = json(r.body)
                #expect(body["status"] as? String == "error")
                #expect(body["errorType"] as? String == "unauthorized")
                #expect((body["error"] as? String)?.contains("missing Authorization header") == true)
            }
            try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Basic Zm9vOmJhcg=="]) { r in
                #expect(r.status == .unauthorized)
                #expect((json(r.body)["error"] as? String)?.contains("malformed") == true)
            }
            try await client.execute(uri: "/metrics", method: .get, headers: bearer("stl_not-a-real-token")) { r in
                #expect(r.status == .unauthorized)
                #expect((json(r.body)["error"] as? String)?.contains("unknown token") == true)
            }
            try await client.execute(uri: "/metrics", method: .get, headers: bearer(TestShell.adminToken)) { r in
                #expect(r.status == .ok)
                #expect(r.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
                let text = String(buffer: r.body)
                #expect(text.contains("starling_http_auth_failures_total{reason=\"missing_header\"} 1"))
                #expect(text.contains("starling_http_auth_failures_total{reason=\"unknown_token\"} 1"))
            }
        }
    }

    @Test func tokenLifecycleThroughTheAdminAPI() async throws {
        let shell = try TestShell()
        try await shell.application().test(.router) { client in
            // Create a writer token with enrichment labels.
            let created = try await client.execute(
                uri: "/api/v1/admin/tokens", method: .post, headers: bearer(TestShell.adminToken),
                body: ByteBuffer(string: #"{"name":"prom-eu1","role":"writer","labels":{"dc":"eu1"}}"#))
            #expect(created.status == .created)
            let data = try #require(json(created.body)["data"] as? [String: Any])
            let token = try #require(data["token"] as? String)
            let id = try #require(data["id"] as? String)
            #expect(token.hasPrefix("stl_"))
            #expect(token.count >= 40)
            #expect(data["role"] as? String == "writer")
            #expect((data["labels"] as? [String: String]) == ["dc": "eu1"])

            // The secret is stored only as a hash.
            let stored = try #require(shell.store.records.withLock { $0[id] })
            #expect(stored.sha256 == TokenSecret.sha256Hex(token))
            #expect(!String(describing: stored).contains(token))

            // A writer may scrape metrics but not administer: 403 names role and action.
            try await client.execute(uri: "/metrics", method: .get, headers: bearer(token)) { r in
                #expect(r.status == .ok)
            }
            try await client.execute(uri: "/api/v1/admin/tokens", method: .get, headers: bearer(token)) { r in
                #expect(r.status == .forbidden)
                let body = json(r.body)
                #expect(body["errorType"] as? String == "forbidden")
                let msg = body["error"] as? String ?? ""
                #expect(msg.contains("role writer"))
                #expect(msg.contains("cannot administer the node"))
                #expect(msg.contains("requires role admin"))
            }

            // Listing never shows secrets.
            try await client.execute(uri: "/api/v1/admin/tokens", method: .get, headers: bearer(TestShell.adminToken)) { r in
                #expect(r.status == .ok)
                let list = json(r.body)["data"] as? [[String: Any]] ?? []
                #expect(list.count == 1)
                #expect(list.first?["token"] == nil)
                #expect(!String(buffer: r.body).contains(token))
            }

            // Revoke: the token then fails with a "revoked" 401.
            try await client.execute(uri: "/api/v1/admin/tokens/\(id)", method: .delete, headers: bearer(TestShell.adminToken)) { r in
                #expect(r.status == .ok)
                #expect((json(r.body)["data"] as? [String: Any])?["revokedAt"] != nil)
            }
            try await client.execute(uri: "/metrics", method: .get, headers: bearer(token)) { r in
                #expect(r.status == .unauthorized)
                #expect((json(r.body)["error"] as? String)?.contains("revoked") == true)
            }
            try await client.execute(uri: "/api/v1/admin/tokens/ffffffffffffffff", method: .delete, headers: bearer(TestShell.adminToken)) { r in
                #expect(r.status == .notFound)
            }
            try await client.execute(uri: "/api/v1/admin/tokens/bootstrap", method: .delete, headers: bearer(TestShell.adminToken)) { r in
                #expect(r.status == .badRequest)
            }
        }
        // A new authority over the same store (a restart) still knows both facts.
        let restarted = TokenAuthority(bootstrapAdminToken: nil)
        try restarted.attach(shell.store)
        #expect(try restarted.list().count == 1)
        #expect(try restarted.list().first?.isRevoked == true)
    }

    @Test func badAdminRequestsAreExplained() async throws {
        let shell = try TestShell()
        try await shell.application().test(.router) { client in
            let cases: [(String, String)] = [
                (#"{"name":"x","role":"superuser"}"#, "invalid role \"superuser\""),
                (#"{"role":"reader"}"#, "missing field \"name\""),
                (#"not json"#, "not valid JSON"),
                (#"{"name":"x","role":"reader","labels":{"__name__":"y"}}"#, "reserved"),
                (#"{"name":"x","role":"reader","labels":{"bad-name":"y"}}"#, "bad-name"),
                (#"{"name":"","role":"reader"}"#, "must not be empty"),
            ]
            for (body, expected) in cases {
                try await client.execute(
                    uri: "/api/v1/admin/tokens", method: .post, headers: bearer(TestShell.adminToken), body: ByteBuffer(string: body)
                ) { r in
                    #expect(r.status == .badRequest, "\(body)")
                    let msg = json(r.body)["error"] as? String ?? ""
                    #expect(msg.contains(expected), "\(body): \(msg)")
                }
            }
            // Oversized body: 413 before parsing.
            let big = ByteBuffer(string: String(repeating: "x", count: AdminRoutes.maxBodyBytes + 1))
            try await client.execute(uri: "/api/v1/admin/tokens", method: .post, headers: bearer(TestShell.adminToken), body: big) { r in
                #expect(r.status == .contentTooLarge)
                #expect(json(r.body)["errorType"] as? String == "too_large")
            }
        }
    }

    @Test func tokensAreUnavailableUntilTheStoreIsAttached() async throws {
        let shell = try TestShell(attachStore: false)
        try await shell.application().test(.router) { client in
            // The bootstrap token works while storage recovers…
            try await client.execute(uri: "/metrics", method: .get, headers: bearer(TestShell.adminToken)) { r in
                #expect(r.status == .ok)
            }
            // …other tokens get 503 (retry), not a misleading "unknown token".
            try await client.execute(uri: "/metrics", method: .get, headers: bearer("stl_other")) { r in
                #expect(r.status == .serviceUnavailable)
                #expect(r.headers[.retryAfter] != nil)
            }
            try await client.execute(uri: "/api/v1/admin/tokens", method: .get, headers: bearer(TestShell.adminToken)) { r in
                #expect(r.status == .serviceUnavailable)
            }
        }
    }

    @Test func unknownRoutesAndMethodsGetJSONErrors() async throws {
        let shell = try TestShell()
        try await shell.application().test(.router) { client in
            try await client.execute(uri: "/api/v1/nope", method: .get, headers: bearer(TestShell.adminToken)) { r in
                #expect(r.status == .notFound)
                #expect(json(r.body)["errorType"] as? String == "not_found")
            }
            try await client.execute(uri: "/metrics", method: .get, headers: bearer(TestShell.adminToken)) { r in
                let text = String(buffer: r.body)
                #expect(text.contains("starling_http_requests_total{route=\"unmatched\",method=\"GET\",code=\"404\"} 1"))
                #expect(text.contains("starling_http_request_duration_seconds_bucket{route=\"unmatched\",method=\"GET\""))
            }
        }
    }

    /// The byte-level reading of `Authorization` values agrees with the general one (split at
    /// the first space, scheme compared lowercased, token trimmed of whitespace) on every value
    /// built from these pieces, and finds the token where it should.
    @Test func bearerHeaderParsingAgreesWithTheGeneralPath() {
        let pieces = ["", " ", "  ", "\t", "Bearer", "bearer", "BEARER", "BeArEr", "Bearerx", "Basic", "tok", "abc-123_XYZ", "a b", "é", "\u{00A0}", "\u{3000}"]
        var rng = SeededRandom(seed: 11)
        for _ in 0..<20_000 {
            let header = (0..<Int(rng.next() % 6)).map { _ in pieces[Int(rng.next() % UInt64(pieces.count))] }.joined()
            #expect(TokenAuthority.bearerToken(header) == TokenAuthority.bearerTokenGeneral(header), "\(Array(header.utf8))")
        }
        #expect(TokenAuthority.bearerToken("Bearer abc") == "abc")
        #expect(TokenAuthority.bearerToken("  bearer \t abc \t ") == "abc")
        #expect(TokenAuthority.bearerToken("Bearer a b") == "a b")
        #expect(TokenAuthority.bearerToken("Bearer\u{00A0}abc\u{00A0}") == nil)
        #expect(TokenAuthority.bearerToken("Bearer \u{00A0}abc\u{00A0}") == "abc")
        for malformed in ["", "Bearer", "Bearer ", "Bearer \t ", "Basic abc", "Bearer\tabc", "Bearerabc"] {
            #expect(TokenAuthority.bearerToken(malformed) == nil, "\(malformed)")
        }
    }

    @Test func rolesAndPermissions() {
        #expect(Role.admin.allows(.admin) && Role.admin.allows(.write) && Role.admin.allows(.read))
        #expect(Role.writer.allows(.write) && !Role.writer.allows(.read) && !Role.writer.allows(.admin))
        #expect(Role.reader.allows(.read) && !Role.reader.allows(.write) && !Role.reader.allows(.admin))
        for r in Role.allCases { #expect(r.allows(.metrics)) }
        #expect(TokenSecret.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!TokenSecret.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!TokenSecret.constantTimeEqual([1, 2], [1, 2, 3]))
        var rng = SystemRandomNumberGenerator()
        let a = TokenSecret.generate(using: &rng), b = TokenSecret.generate(using: &rng)
        #expect(a != b)
        #expect(TokenSecret.hexBytes(TokenSecret.sha256Hex(a)) == TokenSecret.sha256(a))
    }

    @Test func jsonWriterEscapes() {
        var w = JSONWriter()
        w.beginObject()
        w.field("a\"b", "line\nbreak\u{01}\\")
        w.key("list")
        w.stringArray(["x", "y"])
        w.endObject()
        #expect(String(decoding: w.bytes, as: UTF8.self) == #"{"a\"b":"line\nbreak\u0001\\","list":["x","y"]}"#)
    }
}
