import Hummingbird
import NIOCore
import StarlingCore
import StarlingStorage

/// `POST /api/v1/admin/flush[?compact=true]` (admin role): writes everything the node holds in
/// memory (open chunks, out-of-order buffers) to the store and flushes the store's write buffers
/// to files; with `compact=true` it also merges the marked series-blocks that are due, then
/// compacts the whole store, so space held by deleted write-ahead-log records and superseded
/// chunk versions is released. Answers when done:
///
///     {"status":"success","data":{"compacted":true,"durationMs":412,"diskBytes":6123456}}
///
/// For benchmarks (bytes on disk per sample, the counterpart of VictoriaMetrics'
/// `/internal/force_flush` and `/internal/force_merge`) and for operators before a backup.
/// Nothing here is needed for durability: an acknowledged write is already durable.
public struct StorageAdminRoutes: Sendable {
    let database: @Sendable () throws -> TimeSeriesDB
    let metrics: StarlingMetrics
    let executor: BlockingExecutor
    let nowMs: @Sendable () -> Int64

    public init(database: @escaping @Sendable () throws -> TimeSeriesDB, metrics: StarlingMetrics, executor: BlockingExecutor, nowMs: @escaping @Sendable () -> Int64) {
        self.database = database
        self.metrics = metrics
        self.executor = executor
        self.nowMs = nowMs
    }

    public func routes() -> RouteCollection<StarlingRequestContext> {
        let r = RouteCollection(context: StarlingRequestContext.self)
            .add(middleware: RequirePermission(.admin, metrics: metrics))
        r.post("api/v1/admin/flush") { request, context in
            let compact: Bool
            switch request.uri.queryParameters.get("compact") {
            case nil, "", "false", "0": compact = false
            case "true", "1": compact = true
            case let v?: throw APIError.badData("invalid parameter \"compact\": \(quoteLabelValue(v)); expected true or false")
            }
            let db = try database()
            let now = nowMs()
            let started = ContinuousClock.now
            let diskBytes = try await executor.run {
                try db.flush(nowMs: now, compact: compact)
                return db.statistics().diskBytes
            }
            let ms = (ContinuousClock.now - started).milliseconds
            context.logger.info("storage flushed on request", metadata: ["compacted": .stringConvertible(compact), "duration_ms": .stringConvertible(ms)])
            var w = JSONWriter()
            w.beginObject()
            w.field("status", "success")
            w.key("data")
            w.beginObject()
            w.field("compacted", compact)
            w.field("durationMs", ms)
            w.field("diskBytes", diskBytes)
            w.endObject()
            w.endObject()
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: w.bytes)))
        }
        return r
    }
}
