import Foundation
import Hummingbird
import NIOCore
import StarlingCore

/// The Prometheus metadata read API — `/api/v1/series`, `/api/v1/labels`,
/// `/api/v1/label/<name>/values` — over any `Querier` (the local store today, the cluster fan-out
/// later). Reader role. GET with query parameters or POST with a form body, as Prometheus.
public struct ReadRoutes: Sendable {
    let querier: @Sendable () throws -> any Querier
    let metrics: StarlingMetrics
    let executor: BlockingExecutor

    /// - Parameter querier: returns the querier, or throws (503) while storage is unavailable.
    public init(querier: @escaping @Sendable () throws -> any Querier, metrics: StarlingMetrics, executor: BlockingExecutor) {
        self.querier = querier
        self.metrics = metrics
        self.executor = executor
    }

    /// Largest form body of a POST read request.
    static let maxFormBytes = 1 << 20

    public func routes() -> RouteCollection<StarlingRequestContext> {
        let r = RouteCollection(context: StarlingRequestContext.self)
            .add(middleware: OffEventLoopMiddleware())
            .add(middleware: RequirePermission(.read, metrics: metrics))
        for method in [HTTPRequest.Method.get, .post] {
            r.on("api/v1/series", method: method) { request, _ in
                let p = try await ReadParameters.parse(request)
                guard !p.matchers.isEmpty else { throw APIError.badData("no match[] parameter provided") }
                let q = try querier()
                let result = try await executor.runAsync { try await q.series(p.matchers, startMs: p.startMs, endMs: p.endMs, limit: p.limit) }
                var w = JSONWriter(reserving: 64 * result.value.count + 64)
                Self.success(&w, warnings: result.warnings) { w in
                    w.beginArray()
                    for l in result.value { w.labels(l) }
                    w.endArray()
                }
                return Self.json(w)
            }
            r.on("api/v1/labels", method: method) { request, _ in
                let p = try await ReadParameters.parse(request)
                let q = try querier()
                let result = try await executor.runAsync { try await q.labelNames(p.matchers, startMs: p.startMs, endMs: p.endMs, limit: p.limit) }
                var w = JSONWriter()
                Self.success(&w, warnings: result.warnings) { $0.stringArray(result.value) }
                return Self.json(w)
            }
            r.on("api/v1/label/{name}/values", method: method) { request, context in
                let name = try context.parameters.require("name")
                guard isValidLabelName(name) else {
                    throw APIError.badData("invalid label name: \(quoteLabelValue(name))")
                }
                let p = try await ReadParameters.parse(request)
                let q = try querier()
                let result = try await executor.runAsync { try await q.labelValues(name, p.matchers, startMs: p.startMs, endMs: p.endMs, limit: p.limit) }
                var w = JSONWriter()
                Self.success(&w, warnings: result.warnings) { $0.stringArray(result.value) }
                return Self.json(w)
            }
        }
        return r
    }

    static func success(_ w: inout JSONWriter, warnings: [String], data: (inout JSONWriter) -> Void) {
        w.beginObject()
        w.field("status", "success")
        w.key("data")
        data(&w)
        if !warnings.isEmpty {
            w.key("warnings")
            w.stringArray(warnings)
        }
        w.endObject()
    }

    static func json(_ w: JSONWriter) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: w.bytes)))
    }
}

/// `match[]`, `start`, `end`, `limit` of a read request, from the query string and, for POST, a
/// form-encoded body.
public struct ReadParameters: Sendable {
    /// One matcher list per `match[]`; empty when none was given.
    public var matchers: [[LabelMatcher]] = []
    public var startMs: Int64 = ReadParameters.minTimeMs
    public var endMs: Int64 = ReadParameters.maxTimeMs
    public var limit: Int?

    /// The open bounds used when `start`/`end` are absent (Prometheus uses ±2^62 ms as well).
    public static let minTimeMs: Int64 = -(1 << 62)
    public static let maxTimeMs: Int64 = 1 << 62

    public static func parse(_ request: Request) async throws -> ReadParameters {
        // Decoded here rather than with `uri.queryParameters`: clients percent-encode the key
        // too (`match%5B%5D=`), and both forms must work.
        var params: [(String, String)] = formPairs(request.uri.query ?? "")
        if request.method == .post,
            request.headers[.contentType]?.lowercased().hasPrefix("application/x-www-form-urlencoded") == true
        {
            let body = try await collectBody(request, limit: ReadRoutes.maxFormBytes)
            let text = String(buffer: body)
            params += formPairs(text)
        }
        return try parse(params)
    }

    public static func parse(_ params: [(String, String)]) throws(APIError) -> ReadParameters {
        var p = ReadParameters()
        for (k, v) in params {
            switch k {
            case "match[]":
                do {
                    p.matchers.append(try SeriesSelector.parse(v))
                } catch {
                    throw APIError.badData("invalid parameter \"match[]\": \(quoteLabelValue(v)): \(error)")
                }
            case "start": p.startMs = try parseTime(v, "start")
            case "end": p.endMs = try parseTime(v, "end")
            case "limit":
                guard let n = Int(v), n >= 0 else { throw APIError.badData("invalid parameter \"limit\": \(quoteLabelValue(v)) is not a non-negative integer") }
                p.limit = n == 0 ? nil : n
            default: continue
            }
        }
        if p.endMs < p.startMs {
            throw APIError.badData("invalid parameter \"end\": end timestamp must not be before start time")
        }
        return p
    }

    /// Decodes `application/x-www-form-urlencoded` text (`+` is a space).
    static func formPairs(_ text: String) -> [(String, String)] {
        var text = text
        return text.withUTF8 { bytes in
            var pairs: [(String, String)] = []
            var start = 0
            while start <= bytes.count {
                var end = start
                while end < bytes.count && bytes[end] != UInt8(ascii: "&") { end += 1 }
                if end > start {
                    var eq = start
                    while eq < end && bytes[eq] != UInt8(ascii: "=") { eq += 1 }
                    let name = formDecode(UnsafeBufferPointer(rebasing: bytes[start..<eq]))
                    let value = eq < end ? formDecode(UnsafeBufferPointer(rebasing: bytes[(eq + 1)..<end])) : ""
                    pairs.append((name, value))
                }
                start = end + 1
            }
            return pairs
        }
    }

    /// One form-encoded name or value: `+` is a space and `%XX` a byte. A malformed escape, or
    /// escapes that do not decode to UTF-8, leave the text as it came (with `+` still a space).
    static func formDecode(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        @inline(__always) func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        guard bytes.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) else {
            return String(decoding: bytes, as: UTF8.self)
        }
        let spaced = bytes.map { $0 == UInt8(ascii: "+") ? UInt8(ascii: " ") : $0 }
        var out: [UInt8] = []
        out.reserveCapacity(spaced.count)
        var i = 0
        while i < spaced.count {
            let c = spaced[i]
            if c == UInt8(ascii: "%") {
                guard i + 2 < spaced.count, let hi = hex(spaced[i + 1]), let lo = hex(spaced[i + 2]) else {
                    return String(decoding: spaced, as: UTF8.self)
                }
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(c)
                i += 1
            }
        }
        return String(validating: out, as: UTF8.self) ?? String(decoding: spaced, as: UTF8.self)
    }

    /// Prometheus time syntax: Unix seconds with optional fraction, or RFC 3339.
    public static func parseTime(_ s: String, _ name: String) throws(APIError) -> Int64 {
        if let d = Double(s), d.isFinite {
            let ms = (d * 1000).rounded()
            guard ms > Double(minTimeMs), ms < Double(maxTimeMs) else { return ms < 0 ? minTimeMs : maxTimeMs }
            return Int64(ms)
        }
        if let date = rfc3339(s) { return Int64((date.timeIntervalSince1970 * 1000).rounded()) }
        throw APIError.badData("invalid parameter \"\(name)\": cannot parse \(quoteLabelValue(s)) to a valid timestamp (expected Unix seconds or RFC 3339)")
    }

    static func rfc3339(_ s: String) -> Date? {
        if let d = try? Date(s, strategy: .iso8601) { return d }
        return try? Date(s, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
