import Hummingbird
import NIOCore
import StarlingCompression
import StarlingCore
import StarlingIngest
import StarlingStorage

/// The ingest endpoints (writer role):
///
/// | route | format | body |
/// | --- | --- | --- |
/// | `POST /api/v1/write` | Prometheus remote write 1.0 | protobuf, snappy |
/// | `POST /write` | Influx line protocol v1 (`db`, `precision`) | identity, gzip, deflate |
/// | `POST /api/v2/write` | Influx line protocol v2 (`bucket`, `precision`) | identity, gzip, deflate |
/// | `POST /api/v1/import` | VictoriaMetrics JSON lines | identity, gzip, deflate |
///
/// Every request: read the body under `http.max_body_bytes` (413), undo the encoding under
/// `ingest.max_decoded_body_bytes` (413), decode with `StarlingIngest` (per-item errors), store
/// the valid series with `TimeSeriesDB.append` (durable when it returns), then answer. Decoding
/// and the append run together on the blocking pool.
///
/// Partial batches (the policy of `IngestResult`): valid items are stored even when others are
/// rejected; the answer is 204 when nothing was rejected, else 400 with counts per reason and
/// the first errors (line/column or series index and labels, rule, limit). A storage failure is a
/// 503 — nothing of that request was acknowledged, and senders retry 5xx.
public struct IngestRoutes: Sendable {
    public struct Settings: Sendable {
        /// Limits handed to the decoders.
        public var limits: IngestLimits
        /// Largest body as sent (compressed), bytes.
        public var maxBodyBytes: Int
        /// Per-node enrichment labels (fill in labels the sender did not set).
        public var nodeLabels: [String: String]
        /// The series label cache shared by remote write and line protocol requests (see
        /// `SeriesLabelCache.Settings` for its bound, default 64 MiB).
        public var seriesCache: SeriesLabelCache.Settings

        public init(
            limits: IngestLimits = .default, maxBodyBytes: Int = 32 << 20, nodeLabels: [String: String] = [:],
            seriesCache: SeriesLabelCache.Settings = SeriesLabelCache.Settings()
        ) {
            self.limits = limits
            self.maxBodyBytes = maxBodyBytes
            self.nodeLabels = nodeLabels
            self.seriesCache = seriesCache
        }
    }

    enum Format: String {
        case remoteWrite = "remote_write"
        case influx = "influx"
        case jsonImport = "import"
    }

    let settings: Settings
    let database: @Sendable () throws -> TimeSeriesDB
    let writer: any SampleWriter
    let metrics: StarlingMetrics
    let executor: BlockingExecutor
    let nowMs: @Sendable () -> Int64
    /// Raw label bytes → validated labels, for every request this route collection serves.
    public let seriesCache: SeriesLabelCache

    /// - Parameters:
    ///   - database: this node's store, for limits and to answer 503 while it recovers.
    ///   - writer: where decoded series go: the cluster write coordinator, or (nil) this node's
    ///     store directly.
    ///   - executor: where request bodies are decompressed and decoded (and, without a
    ///     `writer`, appended).
    public init(settings: Settings, database: @escaping @Sendable () throws -> TimeSeriesDB, writer: (any SampleWriter)? = nil,
                metrics: StarlingMetrics, executor: BlockingExecutor, nowMs: @escaping @Sendable () -> Int64) {
        self.settings = settings
        self.database = database
        self.writer = writer ?? LocalSampleWriter(database: database, executor: executor)
        self.metrics = metrics
        self.executor = executor
        self.nowMs = nowMs
        self.seriesCache = SeriesLabelCache(settings: settings.seriesCache)
    }

    public func routes() -> RouteCollection<StarlingRequestContext> {
        let r = RouteCollection(context: StarlingRequestContext.self)
            .add(middleware: RequirePermission(.write, metrics: metrics))
        r.post("api/v1/write") { request, context in
            try await ingest(request, context, format: .remoteWrite, db: nil, precision: .milliseconds)
        }
        r.post("write") { request, context in
            let precision = try Self.precision(request)
            return try await ingest(request, context, format: .influx, db: request.uri.queryParameters.get("db"), precision: precision)
        }
        r.post("api/v2/write") { request, context in
            let precision = try Self.precision(request)
            return try await ingest(request, context, format: .influx, db: request.uri.queryParameters.get("bucket"), precision: precision)
        }
        r.post("api/v1/import") { request, context in
            try await ingest(request, context, format: .jsonImport, db: nil, precision: .milliseconds)
        }
        return r
    }

    static func precision(_ request: Request) throws -> InfluxPrecision {
        let raw = request.uri.queryParameters.get("precision")
        guard let p = InfluxPrecision(queryValue: raw) else {
            throw APIError.badData("invalid parameter \"precision\": \(quoteLabelValue(raw ?? "")); expected ns, us, ms, s, m or h")
        }
        return p
    }

    func ingest(_ request: Request, _ context: StarlingRequestContext, format: Format, db dbName: String?, precision: InfluxPrecision) async throws -> Response {
        let proto = format.rawValue
        let enricher: Enricher
        do {
            enricher = try Enricher(overriding: context.principal?.labels ?? [:], defaults: settings.nodeLabels)
        } catch {
            throw APIError.internal("enrichment labels of token \(context.principal?.tokenID ?? "?") are invalid: \(error)")
        }
        let database = try self.database()  // 503 before reading the body while storage recovers

        // 1. The body as sent, under the wire limit.
        let wire: ByteBuffer
        do {
            wire = try await collectBody(request, limit: settings.maxBodyBytes)
        } catch let e as APIError where e.kind == .tooLarge {
            return reject(proto, .bodyTooLarge(limitBytes: settings.maxBodyBytes), status: .contentTooLarge)
        }

        // 2. Content encoding. Remote write is always a snappy block, whatever the header says.
        let encoding: ContentEncoding
        do {
            encoding = format == .remoteWrite ? .snappy : try ContentEncoding(headerValue: request.headers[.contentEncoding])
        } catch {
            return reject(proto, .badContentEncoding("\(error); accepted: identity, gzip, deflate"), status: .unsupportedMediaType)
        }
        let limits = settings.limits
        let nowMs = self.nowMs
        let cache = seriesCache

        // 3. Decode, off the cooperative pool.
        let decodedOutcome: Outcome = try await executor.run {
            let body = Array(buffer: wire)
            let decoded: [UInt8]
            do {
                decoded = try encoding.decode(body, maxDecodedBytes: limits.maxBodyBytes)
            } catch CompressionError.decodedSizeExceedsLimit {
                return .rejected(.bodyTooLarge(limitBytes: limits.maxBodyBytes), .contentTooLarge)
            } catch {
                return .rejected(.badContentEncoding("cannot decode \(encoding.rawValue) body: \(error)"), .badRequest)
            }
            let now = nowMs()
            var result: IngestResult
            switch format {
            case .remoteWrite:
                result = RemoteWriteDecoder.decode(decoded, nowMs: now, limits: limits, enricher: enricher, cache: cache)
            case .influx:
                result = LineProtocolParser.parse(
                    decoded, precision: precision, nowMs: now, limits: limits, db: dbName, enricher: enricher, cache: cache)
            case .jsonImport:
                result = JSONImportParser.parse(decoded, nowMs: now, limits: limits, enricher: enricher)
            }
            return .stored(result, AppendReport(), now)
        }

        // 4. Store: durable on this node, or on the consistency level's replicas, when it returns.
        var outcome = decodedOutcome
        if case .stored(var result, _, let now) = decodedOutcome, !result.series.isEmpty {
            let report = try await writer.write(result.series, nowMs: now)
            for rejection in report.rejected {
                result.record(Self.ingestError(rejection, maxSeries: database.options.maxSeries), maxReportedErrors: limits.maxReportedErrors)
            }
            result.series = []
            outcome = .stored(result, report, now)
        }

        switch outcome {
        case .rejected(let error, let status):
            return reject(proto, error, status: status)
        case .stored(let result, let report, _):
            metrics.ingestSamples(protocol: proto, report.accepted)
            metrics.seriesCache(hits: result.seriesCacheHits, misses: result.seriesCacheMisses, evictions: result.seriesCacheEvictions)
            for (reason, n) in result.rejectedSamplesByReason { metrics.ingestRejected(protocol: proto, reason: reason.rawValue, max(n, 1)) }
            if result.isSuccess {
                metrics.ingestRequest(protocol: proto, outcome: "ok")
                return Response(status: .noContent)
            }
            let stored = report.accepted + report.duplicates
            metrics.ingestRequest(protocol: proto, outcome: stored > 0 ? "partial" : "rejected")
            context.logger.debug("ingest request partly rejected", metadata: ["protocol": .string(proto), "summary": .string(result.summary)])
            return Self.json(.badRequest, result.responseJSON())
        }
    }

    enum Outcome: Sendable {
        case stored(IngestResult, AppendReport, Int64)
        case rejected(IngestError, HTTPResponse.Status)
    }

    /// A request refused whole (body too large, bad encoding): the same JSON shape as a partial
    /// rejection, so clients parse one format.
    func reject(_ proto: String, _ error: IngestError, status: HTTPResponse.Status) -> Response {
        var result = IngestResult()
        result.record(error)
        metrics.ingestRejected(protocol: proto, reason: error.reason.rawValue)
        metrics.ingestRequest(protocol: proto, outcome: "rejected")
        return Self.json(status, result.responseJSON())
    }

    /// Storage's refusals in the ingest vocabulary (same metric label set and response shape).
    static func ingestError(_ r: AppendRejection, maxSeries: Int?) -> IngestError {
        let labels = String(r.labels.description.prefix(512))
        switch r.reason {
        case .seriesLimit:
            return .seriesLimitExceeded(labels: labels, limit: maxSeries ?? 0, samples: r.samples)
        case .tooOld:
            return IngestError(reason: .timestampTooOld, location: IngestLocation(labels: labels), message: "older than the retention period: \(r.detail)", rejectedSamples: r.samples)
        case .timestampOutOfRange:
            return IngestError(reason: .invalidTimestamp, location: IngestLocation(labels: labels), message: r.detail, rejectedSamples: r.samples)
        case .invalidLabels:
            return IngestError(reason: .nulByte, location: IngestLocation(labels: labels), message: r.detail, rejectedSamples: r.samples)
        }
    }

    static func json(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// Where the ingest routes put decoded series. Returns when the write is durable (on this node,
/// or on as many replicas as the cluster's write consistency asks); throws an
/// `APIErrorConvertible` error (503) when it cannot be.
public protocol SampleWriter: Sendable {
    /// - Returns: the store's report; `rejected` lists series refused by a limit.
    func write(_ series: [SeriesSamples], nowMs: Int64) async throws -> AppendReport
}

/// Appends to this node's store on the blocking pool (a node without a cluster layer, tests).
public struct LocalSampleWriter: SampleWriter {
    let database: @Sendable () throws -> TimeSeriesDB
    let executor: BlockingExecutor

    public init(database: @escaping @Sendable () throws -> TimeSeriesDB, executor: BlockingExecutor) {
        self.database = database
        self.executor = executor
    }

    public func write(_ series: [SeriesSamples], nowMs: Int64) async throws -> AppendReport {
        let db = try database()
        return try await executor.run { try db.append(series, nowMs: nowMs) }
    }
}

extension StorageError: APIErrorConvertible {
    public var apiError: APIError {
        switch self {
        case .failed: return APIError.unavailable("\(self); nothing from this request was stored, retry after the node restarts")
        case .corrupt, .incompatible: return APIError.internal("\(self)")
        }
    }
}
