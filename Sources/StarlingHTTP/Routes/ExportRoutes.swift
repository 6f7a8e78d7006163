import Hummingbird
import NIOCore
import StarlingChunk
import StarlingCore

/// `GET|POST /api/v1/export`: raw samples of the series matching `match[]` in `[start, end]`,
/// streamed as JSON lines in the VictoriaMetrics format that `/api/v1/import` reads back:
///
///     {"metric":{"__name__":"up","job":"node"},"values":[1,0],"timestamps":[1700000000000,1700000015000]}
///
/// One line per series, series in label order, samples in time order with duplicates merged.
/// Values are JSON numbers; NaN (stale markers included) is written `"NaN"` and infinities
/// `"Inf"`/`"-Inf"`, strings the import accepts. The response is streamed: memory stays bounded
/// by one series plus one write buffer, whatever the selection. Reader role.
public struct ExportRoutes: Sendable {
    let querier: @Sendable () throws -> any Querier
    let metrics: StarlingMetrics
    let executor: BlockingExecutor

    /// Bytes buffered before a write to the connection.
    static let flushBytes = 64 * 1024

    public init(querier: @escaping @Sendable () throws -> any Querier, metrics: StarlingMetrics, executor: BlockingExecutor) {
        self.querier = querier
        self.metrics = metrics
        self.executor = executor
    }

    public func routes() -> RouteCollection<StarlingRequestContext> {
        let r = RouteCollection(context: StarlingRequestContext.self)
            .add(middleware: RequirePermission(.read, metrics: metrics))
        for method in [HTTPRequest.Method.get, .post] {
            r.on("api/v1/export", method: method) { request, context in
                let p = try await ReadParameters.parse(request)
                guard !p.matchers.isEmpty else { throw APIError.badData("no match[] parameter provided") }
                let q = try querier()
                let hints = SelectHints(startMs: p.startMs, endMs: p.endMs, limit: p.limit)
                // Select every matcher set before answering, so a bad selector or an unavailable
                // store still gets a proper error status instead of a truncated 200.
                var sets: [any SeriesSet] = []
                for m in p.matchers {
                    sets.append(try await executor.runAsync { try await q.select(m, hints: hints) })
                }
                let selected = sets
                let logger = context.logger
                let executor = self.executor
                let (startMs, endMs) = (p.startMs, p.endMs)
                let body = ResponseBody { writer in
                    do {
                        try await executor.runAsync {
                            try await Self.stream(selected, startMs: startMs, endMs: endMs, to: &writer)
                        }
                    } catch {
                        // Headers are gone: the only signal left is an aborted, incomplete body.
                        logger.error("export aborted", metadata: ["error": .string("\(error)")])
                        throw error
                    }
                    try await writer.finish(nil)
                }
                return Response(status: .ok, headers: [.contentType: "application/stream+json"], body: body)
            }
        }
        return r
    }

    /// Writes the series of `sets` (merged by label set when several `match[]` overlap).
    static func stream(_ sets: [any SeriesSet], startMs: Int64, endMs: Int64, to writer: inout any ResponseBodyWriter) async throws {
        var w = JSONWriter(reserving: flushBytes + 4096)
        var heads: [SeriesChunks?] = []
        for s in sets { heads.append(try await s.next()) }
        var timestamps: [Int64] = []
        var values: [Double] = []
        while true {
            // The smallest label set among the heads; equal label sets across sets are merged.
            var best: Labels? = nil
            for h in heads { if let h, best == nil || h.labels < best! { best = h.labels } }
            guard let labels = best else { break }
            var chunks: [EncodedChunk] = []
            for i in heads.indices where heads[i]?.labels == labels {
                chunks += heads[i]!.chunks
                heads[i] = try await sets[i].next()
            }
            timestamps.removeAll(keepingCapacity: true)
            values.removeAll(keepingCapacity: true)
            var it = SeriesSampleIterator(chunks: chunks, minTimeMs: startMs, maxTimeMs: endMs)
            while try it.next() {
                timestamps.append(it.timestampMs)
                values.append(it.value)
            }
            if timestamps.isEmpty { continue }
            w.beginObject()
            w.key("metric")
            w.labels(labels)
            w.key("values")
            w.beginArray()
            for v in values {
                if v.isNaN { w.string("NaN") } else if v.isInfinite { w.string(v < 0 ? "-Inf" : "Inf") } else { w.finiteSampleValue(v) }
            }
            w.endArray()
            w.key("timestamps")
            w.beginArray()
            for t in timestamps { w.int(t) }
            w.endArray()
            w.endObject()
            w.newline()
            if w.bytes.count >= flushBytes {
                try await writer.write(ByteBuffer(bytes: w.bytes))
                w.reset()
            }
        }
        if !w.bytes.isEmpty { try await writer.write(ByteBuffer(bytes: w.bytes)) }
    }
}
