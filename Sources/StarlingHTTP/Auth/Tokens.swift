import Crypto
import Foundation
import StarlingCore
import Synchronization

/// What a bearer token may do. Roles are coarse on purpose: agents get `writer`, dashboards and
/// query clients `reader`, operators `admin`. Finer RBAC (users, editor/viewer) arrives with the
/// `/auth/…` API and maps onto the same permissions.
public enum Role: String, Sendable, Codable, CaseIterable, Comparable {
    case admin
    case writer
    case reader

    public func allows(_ permission: Permission) -> Bool {
        switch (self, permission) {
        case (.admin, _): return true
        case (.writer, .write), (.writer, .metrics): return true
        case (.reader, .read), (.reader, .metrics): return true
        default: return false
        }
    }

    /// Sort order for listings: admin, writer, reader.
    public static func < (a: Role, b: Role) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// A permission a route group requires (see `RequirePermission`). New features pick one of these
/// or add a case here, and document it in `docs/security.md`.
public enum Permission: String, Sendable, CaseIterable {
    /// Ingest endpoints (`/api/v1/write`, `/write`, `/api/v2/write`, `/api/v1/import`).
    case write
    /// Read and query endpoints (`/api/v1/series`, `labels`, `export`, `query`, …).
    case read
    /// `/metrics`: every role may scrape the node's own metrics.
    case metrics
    /// Token management and other administration.
    case admin
}

/// A stored API token. The secret itself is never stored: only its SHA-256 (hex), so a copy of
/// the data directory or of the replicated metadata does not leak usable credentials.
public struct TokenRecord: Sendable, Codable, Equatable {
    /// Public identifier (16 hex chars), used to list and revoke.
    public var id: String
    /// Human label ("prometheus-eu1", "grafana").
    public var name: String
    public var role: Role
    /// Lowercase hex SHA-256 of the token string.
    public var sha256: String
    public var createdAtMs: Int64
    /// Set when revoked. Revoked records are kept so that a request with a revoked token gets
    /// "token revoked" instead of "unknown token", and so listings show the history.
    public var revokedAtMs: Int64?
    /// Static labels added to every series written with this token (per-agent enrichment).
    /// They override labels of the same name sent by the agent.
    public var labels: [String: String]

    public init(id: String, name: String, role: Role, sha256: String, createdAtMs: Int64, revokedAtMs: Int64? = nil, labels: [String: String] = [:]) {
        self.id = id
        self.name = name
        self.role = role
        self.sha256 = sha256
        self.createdAtMs = createdAtMs
        self.revokedAtMs = revokedAtMs
        self.labels = labels
    }

    public var isRevoked: Bool { revokedAtMs != nil }
}

/// Where token records persist. On one node: the metadata keyspace of the local store
/// (`MetadataTokenStore` in StarlingNode). In a cluster: the replicated metadata, which
/// disseminates records to every node — hence the narrow, record-at-a-time interface with
/// last-writer-wins semantics per `id`.
///
/// Calls may block on disk I/O: `TokenAuthority` runs them off the event loops.
public protocol TokenStore: Sendable {
    /// Every record, revoked ones included.
    func loadAll() throws -> [TokenRecord]
    /// Inserts or replaces the record with `record.id`.
    func save(_ record: TokenRecord) throws
}

/// Token secrets: generation, hashing and comparison.
public enum TokenSecret {
    /// Prefix of generated tokens, so secret scanners and humans recognise them.
    public static let prefix = "stl_"
    /// Random bytes per token: 32 (256 bits), base64url-encoded without padding.
    public static let randomBytes = 32
    /// Shortest accepted `STARLING_ADMIN_TOKEN`: a guessable bootstrap token is a hole.
    public static let minimumLength = 16

    public static func generate<R: RandomNumberGenerator>(using rng: inout R) -> String {
        var bytes = [UInt8](repeating: 0, count: randomBytes)
        for i in bytes.indices { bytes[i] = UInt8.random(in: .min ... .max, using: &rng) }
        return prefix + base64URL(bytes)
    }

    public static func generateID<R: RandomNumberGenerator>(using rng: inout R) -> String {
        hexString((0..<8).map { _ in UInt8.random(in: .min ... .max, using: &rng) })
    }

    public static func sha256(_ token: String) -> [UInt8] {
        Array(SHA256.hash(data: Array(token.utf8)))
    }

    public static func sha256Hex(_ token: String) -> String { hexString(sha256(token)) }

    /// Compares two byte strings in time independent of where they differ.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    public static func hexString(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func hexBytes(_ s: String) -> [UInt8]? {
        let u = Array(s.utf8)
        guard u.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x61...0x66: return c - 0x61 + 10
            case 0x41...0x46: return c - 0x41 + 10
            default: return nil
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(u.count / 2)
        var i = 0
        while i < u.count {
            guard let h = nibble(u[i]), let l = nibble(u[i + 1]) else { return nil }
            out.append(h << 4 | l)
            i += 2
        }
        return out
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}

/// Who a request is, once authenticated.
public struct Principal: Sendable, Equatable {
    public var tokenID: String
    public var name: String
    public var role: Role
    /// Per-token enrichment labels.
    public var labels: [String: String]

    public init(tokenID: String, name: String, role: Role, labels: [String: String] = [:]) {
        self.tokenID = tokenID
        self.name = name
        self.role = role
        self.labels = labels
    }
}

/// Why a request is not authenticated. Each case becomes a 401 with a message that says what to
/// fix, and is counted in `starling_http_auth_failures_total{reason}`.
public enum AuthFailure: String, Sendable, Error, Equatable {
    case missingHeader = "missing_header"
    case malformedHeader = "malformed_header"
    case unknownToken = "unknown_token"
    case revokedToken = "revoked_token"
    case tokensUnavailable = "tokens_unavailable"

    public var message: String {
        switch self {
        case .missingHeader: return "missing Authorization header: send 'Authorization: Bearer <token>'"
        case .malformedHeader: return "malformed Authorization header: expected 'Bearer <token>'"
        case .unknownToken: return "unknown token: it was never issued by this cluster"
        case .revokedToken: return "token has been revoked"
        case .tokensUnavailable: return "token store is still loading; retry shortly"
        }
    }
}

/// Errors of token management, mapped to HTTP by the admin routes.
public enum TokenError: Error, Sendable, Equatable, CustomStringConvertible {
    case notFound(id: String)
    case invalidName(String)
    case invalidLabel(name: String, reason: String)
    case storeUnavailable

    public var description: String {
        switch self {
        case .notFound(let id): return "no token with id \(quoteLabelValue(id))"
        case .invalidName(let why): return "invalid token name: \(why)"
        case .invalidLabel(let n, let why): return "invalid enrichment label \(quoteLabelValue(n)): \(why)"
        case .storeUnavailable: return "token store is not open yet (storage still recovering)"
        }
    }
}

/// Authenticates bearer tokens and manages token records.
///
/// Lookups run on every request, so the authority keeps every record in memory, indexed by hash;
/// the `TokenStore` is read once when it is attached (after storage recovery) and written through
/// on create/revoke. The bootstrap admin token (`STARLING_ADMIN_TOKEN` or the generated
/// `<data-dir>/admin-token`) is never written to the store: it is configuration, checked first,
/// and works even while storage is still recovering.
///
/// Timing: the map is keyed by SHA-256 of the presented token, so a lookup's timing can only
/// reveal facts about hashes of guesses, never about stored secrets; the final comparison is
/// constant-time all the same.
public final class TokenAuthority: Sendable {
    private struct State {
        var store: (any TokenStore)?
        var byHash: [String: TokenRecord] = [:]
        var byID: [String: TokenRecord] = [:]
    }

    public static let bootstrapTokenID = "bootstrap"
    private let bootstrapHash: [UInt8]?
    private let state = Mutex(State())

    /// - Parameter bootstrapAdminToken: the configured or generated admin token, if any.
    public init(bootstrapAdminToken: String?) {
        bootstrapHash = bootstrapAdminToken.map(TokenSecret.sha256)
    }

    /// Loads every record from `store` and starts writing through to it. Blocking.
    public func attach(_ store: any TokenStore) throws {
        let records = try store.loadAll()
        state.withLock { s in
            s.store = store
            s.byHash = [:]
            s.byID = [:]
            for r in records {
                s.byHash[r.sha256] = r
                s.byID[r.id] = r
            }
        }
    }

    /// Stops using the store (storage is closing). Authentication keeps working from memory;
    /// create, revoke and list answer "unavailable". Releasing the store lets the storage engine
    /// close its files before the process exits.
    public func detach() {
        state.withLock { $0.store = nil }
    }

    public var isAttached: Bool { state.withLock { $0.store != nil } }

    /// Authenticates the raw value of an `Authorization` header.
    public func authenticate(authorizationHeader header: String?) -> Result<Principal, AuthFailure> {
        guard let header else { return .failure(.missingHeader) }
        guard let token = Self.bearerToken(header) else { return .failure(.malformedHeader) }
        return authenticate(token: token)
    }

    /// The token of a `Bearer <token>` header value (scheme case-insensitive, the token trimmed
    /// of whitespace), nil when the value is not of that form or the token is empty. Every
    /// request runs this: an ASCII value is read as bytes, anything else takes the general path
    /// (Foundation's trimming was most of a small request's authentication cost).
    static func bearerToken(_ header: String) -> String? {
        var header = header
        let ascii: String?? = header.withUTF8 { b -> String?? in
            guard !b.contains(where: { $0 >= 0x80 }) else { return .none }
            let n = b.count
            var i = 0
            while i < n, b[i] == 0x20 { i += 1 }
            let schemeStart = i
            while i < n, b[i] != 0x20 { i += 1 }
            let bearer = Self.bearerScheme
            guard i - schemeStart == bearer.count,
                (0..<bearer.count).allSatisfy({ b[schemeStart + $0] | 0x20 == bearer[$0] }),
                i < n
            else { return .some(nil) }
            var lo = i + 1
            var hi = n
            while lo < hi, b[lo] == 0x20 || b[lo] == 0x09 { lo += 1 }
            while hi > lo, b[hi - 1] == 0x20 || b[hi - 1] == 0x09 { hi -= 1 }
            guard lo < hi else { return .some(nil) }
            return .some(String(decoding: UnsafeBufferPointer(rebasing: b[lo..<hi]), as: UTF8.self))
        }
        if let ascii { return ascii }
        return bearerTokenGeneral(header)
    }

    /// The scheme's bytes, lowercase (`bearerToken` compares `byte | 0x20`).
    private static let bearerScheme: [UInt8] = Array("bearer".utf8)

    /// `bearerToken` for any header value.
    static func bearerTokenGeneral(_ header: String) -> String? {
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }

    public func authenticate(token: String) -> Result<Principal, AuthFailure> {
        let hash = TokenSecret.sha256(token)
        if let b = bootstrapHash, TokenSecret.constantTimeEqual(hash, b) {
            return .success(Principal(tokenID: Self.bootstrapTokenID, name: "bootstrap-admin", role: .admin))
        }
        let hex = TokenSecret.hexString(hash)
        return state.withLock { s in
            guard let r = s.byHash[hex], let stored = TokenSecret.hexBytes(r.sha256),
                TokenSecret.constantTimeEqual(stored, hash)
            else {
                return .failure(s.store == nil ? .tokensUnavailable : .unknownToken)
            }
            if r.isRevoked { return .failure(.revokedToken) }
            return .success(Principal(tokenID: r.id, name: r.name, role: r.role, labels: r.labels))
        }
    }

    /// Issues a token. Returns the record and the secret, which is shown once and never again.
    /// Blocking (writes the store).
    public func create<R: RandomNumberGenerator>(name: String, role: Role, labels: [String: String], nowMs: Int64, rng: inout R) throws -> (record: TokenRecord, token: String) {
        try Self.validate(name: name, labels: labels)
        let token = TokenSecret.generate(using: &rng)
        var id = TokenSecret.generateID(using: &rng)
        while state.withLock({ $0.byID[id] != nil }) { id = TokenSecret.generateID(using: &rng) }
        let record = TokenRecord(id: id, name: name, role: role, sha256: TokenSecret.sha256Hex(token), createdAtMs: nowMs, labels: labels)
        guard let store = state.withLock({ $0.store }) else { throw TokenError.storeUnavailable }
        try store.save(record)
        state.withLock { s in
            s.byHash[record.sha256] = record
            s.byID[record.id] = record
        }
        return (record, token)
    }

    /// Revokes a token by id; revoking twice is not an error. Blocking.
    @discardableResult
    public func revoke(id: String, nowMs: Int64) throws -> TokenRecord {
        guard let store = state.withLock({ $0.store }) else { throw TokenError.storeUnavailable }
        guard var record = state.withLock({ $0.byID[id] }) else { throw TokenError.notFound(id: id) }
        if record.revokedAtMs == nil {
            record.revokedAtMs = nowMs
            try store.save(record)
            state.withLock { s in
                s.byHash[record.sha256] = record
                s.byID[record.id] = record
            }
        }
        return record
    }

    /// Every record, newest first.
    public func list() throws -> [TokenRecord] {
        try state.withLock { s in
            guard s.store != nil else { throw TokenError.storeUnavailable }
            return s.byID.values.sorted { ($0.createdAtMs, $0.id) > ($1.createdAtMs, $1.id) }
        }
    }

    /// Limits on names and labels of tokens: short, printable, valid label syntax.
    public static let maxNameLength = 128
    public static let maxLabels = 16

    static func validate(name: String, labels: [String: String]) throws {
        if name.isEmpty { throw TokenError.invalidName("must not be empty") }
        if name.utf8.count > maxNameLength { throw TokenError.invalidName("longer than \(maxNameLength) bytes") }
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw TokenError.invalidName("contains control characters")
        }
        if labels.count > maxLabels { throw TokenError.invalidLabel(name: "", reason: "more than \(maxLabels) labels") }
        for (n, v) in labels {
            if !isValidLabelName(n) { throw TokenError.invalidLabel(name: n, reason: "name must match [a-zA-Z_][a-zA-Z0-9_]*") }
            if n.hasPrefix("__") { throw TokenError.invalidLabel(name: n, reason: "names starting with __ are reserved") }
            if v.isEmpty { throw TokenError.invalidLabel(name: n, reason: "value must not be empty") }
        }
    }
}
