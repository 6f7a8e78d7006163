import StarlingCore

/// The PromQL engine: parses, prepares and evaluates queries over any `Querier` (one node's
/// store or the cluster fan-out) with Prometheus 2.42's semantics.
///
/// Pure: it reads no clock. Timeouts and cancellation come in through `QueryCancellation` and
/// task cancellation (see `QueryLimiter.run` for a timeout driven by an injected clock).
public struct Engine: Sendable {
    public let settings: EngineSettings
    public let metrics: PromQLMetrics

    public init(settings: EngineSettings = EngineSettings(), metrics: PromQLMetrics = PromQLMetrics()) {
        self.settings = settings
        self.metrics = metrics
    }

    /// Options of one query.
    public struct QueryOptions: Sendable {
        /// Overrides the engine's lookback delta for this query, ms (> 0).
        public var lookbackDeltaMs: Int64?
        public var cancellation: QueryCancellation?
        public init(lookbackDeltaMs: Int64? = nil, cancellation: QueryCancellation? = nil) {
            self.lookbackDeltaMs = lookbackDeltaMs
            self.cancellation = cancellation
        }
    }

    /// Evaluates `query` at `timeMs`.
    public func instantQuery(_ query: String, timeMs: Int64, querier: any Querier, options: QueryOptions = QueryOptions()) async throws(PromQLError) -> QueryResult<PromValue> {
        let expr = try parse(query)
        return try await instantQuery(expr, timeMs: timeMs, querier: querier, options: options)
    }

    public func instantQuery(_ expr: Expr, timeMs: Int64, querier: any Querier, options: QueryOptions = QueryOptions()) async throws(PromQLError) -> QueryResult<PromValue> {
        let state = QueryState(settings: settings, cancellation: options.cancellation, metrics: metrics)
        let prepared = preprocessExpr(expr, startMs: timeMs, endMs: timeMs)
        let ev = Evaluator(startMs: timeMs, endMs: timeMs, intervalMs: 1, lookbackMs: lookback(options), state: state, source: SeriesSource(querier: querier))
        let v = try await ev.eval(prepared)
        let result: PromValue
        switch v {
        case .scalar(let s): result = .scalar(timestampMs: timeMs, value: s[0])
        case .string(let s): result = .string(timestampMs: timeMs, value: s)
        case .vector(let series):
            result = .vector(series.map { InstantSample(labels: $0.labels, timestampMs: timeMs, value: $0.values[0]) })
        case .matrix(let series):
            result = .matrix(series.map { SeriesPoints(labels: $0.labels, samples: $0.samples) })
        }
        try state.checkCanceledNow()
        return QueryResult(result, warnings: state.warnings)
    }

    /// Evaluates `query` at `startMs, startMs + stepMs, …` up to `endMs`. The result is a matrix
    /// sorted by labels.
    public func rangeQuery(_ query: String, startMs: Int64, endMs: Int64, stepMs: Int64, querier: any Querier, options: QueryOptions = QueryOptions()) async throws(PromQLError) -> QueryResult<PromValue> {
        let expr = try parse(query)
        return try await rangeQuery(expr, startMs: startMs, endMs: endMs, stepMs: stepMs, querier: querier, options: options)
    }

    public func rangeQuery(_ expr: Expr, startMs: Int64, endMs: Int64, stepMs: Int64, querier: any Querier, options: QueryOptions = QueryOptions()) async throws(PromQLError) -> QueryResult<PromValue> {
        let type = expr.type
        guard type == .vector || type == .scalar else {
            throw .badData("invalid expression type \(goQuote(type.documentedName)) for range query, must be Scalar or instant Vector")
        }
        guard stepMs > 0 else {
            throw .badData("zero or negative query resolution step widths are not accepted. Try a positive integer")
        }
        guard endMs >= startMs else { throw .badData("end timestamp must not be before start time") }
        if (endMs - startMs) / stepMs > Int64(settings.maxPointsPerSeries) {
            metrics.limitHit("max_points_per_series")
            throw .badData("exceeded maximum resolution of \(groupedThousands(settings.maxPointsPerSeries)) points per timeseries. Try decreasing the query resolution (?step=XX)")
        }
        let state = QueryState(settings: settings, cancellation: options.cancellation, metrics: metrics)
        let prepared = preprocessExpr(expr, startMs: startMs, endMs: endMs)
        let ev = Evaluator(startMs: startMs, endMs: endMs, intervalMs: stepMs, lookbackMs: lookback(options), state: state, source: SeriesSource(querier: querier))
        let v = try await ev.eval(prepared)
        var out: [SeriesPoints]
        switch v {
        case .scalar(let s):
            out = [SeriesPoints(labels: .empty, samples: s.enumerated().map { Sample(ev.time(ofStep: $0.offset), $0.element) })]
        case .vector(let series):
            out = series.map { SeriesPoints(labels: $0.labels, samples: $0.samples(time: ev.time(ofStep:))) }
            out.sort { $0.labels < $1.labels }
        default:
            preconditionFailure("range query of type \(type)")
        }
        try state.checkCanceledNow()
        return QueryResult(.matrix(out), warnings: state.warnings)
    }

    public func parse(_ query: String) throws(PromQLError) -> Expr {
        do {
            return try PromQLParser.parseExpr(query)
        } catch {
            throw .parse(error.description)
        }
    }

    private func lookback(_ o: QueryOptions) -> Int64 {
        if let l = o.lookbackDeltaMs, l > 0 { return l }
        return settings.lookbackDeltaMs
    }
}

/// `11000` as Go's `%d` would not group it, but Prometheus's message spells "11,000".
private func groupedThousands(_ n: Int) -> String {
    let s = String(n)
    var out = ""
    for (i, ch) in s.enumerated() {
        if i > 0 && (s.count - i) % 3 == 0 { out += "," }
        out.append(ch)
    }
    return out
}
