import Hummingbird
import NIOCore
import StarlingCore
import StarlingPromQL

/// The PromQL part of the Prometheus HTTP API over any `Querier` (the local store today, the
/// cluster fan-out later): `/api/v1/query`, `/api/v1/query_range`, `/api/v1/format_query`,
/// `/api/v1/query_exemplars` (GET with query parameters or POST with a form body),
/// `/api/v1/metadata` and `/api/v1/status/buildinfo`. Reader role.
///
/// The handlers only decode the request and write the answer: parameter rules, error texts and
/// status codes live in `PrometheusQueryAPI` (pure, shared with the in-process comparison against
/// Prometheus), so what the comparison checks is what clients get.
public struct QueryRoutes: Sendable {
    /// What `/api/v1/status/buildinfo` reports.
    public struct BuildInfo: Sendable {
        /// Starling's own version, reported as `starlingVersion`.
        public var starlingVersion: String
        /// Git commit of the build, reported as `revision` ("unknown" when not known).
        public var revision: String
        /// Swift compiler version, reported as `goVersion` (the field clients expect).
        public var swiftVersion: String

        public init(starlingVersion: String, revision: String, swiftVersion: String) {
            self.starlingVersion = starlingVersion
            self.revision = revision
            self.swiftVersion = swiftVersion
        }
    }

    /// The Prometheus version whose query API Starling reproduces, reported as `version` by
    /// `buildinfo`. Clients pick features by this number (Grafana uses `match[]` on label values
    /// from 2.24 on), so it must name what the API really behaves like, not Starling's version.
    public static let emulatedPrometheusVersion = "2.42.0"

    /// Largest form body of a POST query: long generated queries (Grafana variables expanded
    /// into regexes) reach tens of KiB; 1 MiB bounds memory per request.
    static let maxFormBytes = 1 << 20

    let querier: @Sendable () throws -> any Querier
    let api: PrometheusQueryAPI
    let metrics: StarlingMetrics
    let executor: BlockingExecutor
    let placement: QueryPlacement
    let nowMs: @Sendable () -> Int64
    let buildInfo: BuildInfo

    /// - Parameters:
    ///   - querier: returns the querier, or throws (503) while storage is unavailable.
    ///   - api: the engine with the node's limits, and the limiter shared by all queries.
    ///   - placement: which queries run inline instead of on `executor` (`query.inline_budget`).
    ///   - nowMs: wall-clock milliseconds, the default evaluation time of `/api/v1/query`.
    public init(
        querier: @escaping @Sendable () throws -> any Querier, api: PrometheusQueryAPI, metrics: StarlingMetrics,
        executor: BlockingExecutor, placement: QueryPlacement = QueryPlacement(budget: .zero),
        nowMs: @escaping @Sendable () -> Int64, buildInfo: BuildInfo
    ) {
        self.querier = querier
        self.api = api
        self.metrics = metrics
        self.executor = executor
        self.placement = placement
        self.nowMs = nowMs
        self.buildInfo = buildInfo
    }

    public func routes() -> RouteCollection<StarlingRequestContext> {
        let r = RouteCollection(context: StarlingRequestContext.self)
            .add(middleware: RequirePermission(.read, metrics: metrics))
        for method in [HTTPRequest.Method.get, .post] {
            r.on("api/v1/query", method: method) { request, _ in
                let params = try await Self.formParameters(request)
                let q = try querier()
                let now = nowMs()
                let api = self.api
                // Evaluation reads storage synchronously: it runs on the blocking pool, unless
                // its last run was short enough to run inline (`QueryPlacement`).
                let answer = try await placement.run(QueryPlacement.instantKey(params), pool: executor) {
                    await api.query(params, nowMs: now, querier: q, clock: ContinuousClock())
                }
                return Self.response(answer)
            }
            r.on("api/v1/query_range", method: method) { request, _ in
                let params = try await Self.formParameters(request)
                let q = try querier()
                let api = self.api
                let answer = try await placement.run(QueryPlacement.rangeKey(params), pool: executor) {
                    await api.queryRange(params, querier: q, clock: ContinuousClock())
                }
                return Self.response(answer)
            }
            r.on("api/v1/format_query", method: method) { request, _ in
                let params = try await Self.formParameters(request)
                return Self.response(api.formatQuery(params))
            }
            r.on("api/v1/query_exemplars", method: method) { request, _ in
                // Grafana asks for exemplars next to each query when its exemplar toggle is on.
                // Starling stores none (remote write exemplars are skipped at ingest): the query
                // is still validated, and the answer is Prometheus's empty list.
                let params = try await Self.formParameters(request)
                do throws(PromQLError) {
                    _ = try api.engine.parse(params["query"] ?? "")
                } catch {
                    return Self.response(PrometheusQueryAPI.error(.badData(error.description)))
                }
                return Self.json(PrometheusJSON.success(rawData: Array("[]".utf8)))
            }
        }
        r.get("api/v1/metadata") { request, _ in
            let params = try await Self.formParameters(request)
            if let l = params["limit"], !l.isEmpty, Int(l) == nil {
                throw APIError.badData("limit must be a number")
            }
            // Starling keeps no metric metadata (TYPE/HELP/UNIT): remote write 1.0 sends it
            // apart from the samples and the ingest path skips it. Prometheus answers an empty
            // object when it knows none, and clients (Grafana's metric browser) handle that.
            return Self.json(PrometheusJSON.success(rawData: Array("{}".utf8)))
        }
        r.get("api/v1/status/buildinfo") { _, _ in
            var data: [UInt8] = []
            data.append(UInt8(ascii: "{"))
            let fields: [(String, String)] = [
                ("version", Self.emulatedPrometheusVersion), ("revision", buildInfo.revision), ("branch", ""),
                ("buildUser", ""), ("buildDate", ""), ("goVersion", "swift" + buildInfo.swiftVersion),
                ("starlingVersion", buildInfo.starlingVersion),
            ]
            for (i, (k, v)) in fields.enumerated() {
                if i > 0 { data.append(UInt8(ascii: ",")) }
                PrometheusJSON.appendString(k, to: &data)
                data.append(UInt8(ascii: ":"))
                PrometheusJSON.appendString(v, to: &data)
            }
            data.append(UInt8(ascii: "}"))
            return Self.json(PrometheusJSON.success(rawData: data))
        }
        return r
    }

    /// The request's form values: for a form-encoded POST the body's, then the query string's
    /// (Go's `Request.FormValue` order, in which the body wins).
    static func formParameters(_ request: Request) async throws -> FormParameters {
        var pairs: [(String, String)] = []
        if request.method == .post,
            request.headers[.contentType]?.lowercased().hasPrefix("application/x-www-form-urlencoded") == true
        {
            let body = try await collectBody(request, limit: maxFormBytes)
            pairs = ReadParameters.formPairs(String(buffer: body))
        }
        pairs += ReadParameters.formPairs(request.uri.query ?? "")
        return FormParameters(pairs)
    }

    static func response(_ r: PrometheusQueryAPI.Response) -> Response {
        Response(
            status: HTTPResponse.Status(code: r.status), headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: r.body)))
    }

    static func json(_ bytes: [UInt8]) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
