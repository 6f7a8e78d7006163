/// Limits and defaults of the PromQL engine. Every default is Prometheus 2.42's, so the same
/// query behaves the same way out of the box.
public struct EngineSettings: Sendable {
    /// How far back an instant selector looks for the latest sample, ms. Default 5 min
    /// (Prometheus `--query.lookback-delta`). Longer bridges bigger scrape gaps but keeps
    /// vanished series visible longer; a query may override it.
    public var lookbackDeltaMs: Int64 = 5 * 60_000

    /// Most samples a query may hold in memory at once (selected points in the current range
    /// windows plus result points). Default 50,000,000 (Prometheus `--query.max-samples`), about
    /// 0.8–1.2 GB. Hitting it fails the query with `tooManySamples`; counted in `limitHits`.
    public var maxSamples: Int = 50_000_000

    /// Longest a query may run. Default 2 min (Prometheus `--query.timeout`). Enforced by
    /// `QueryLimiter.run`, which races the query against the injected clock.
    public var timeout: Duration = .seconds(120)

    /// Step of subqueries written without one (`[1h:]`), ms. Default 1 min: Prometheus uses the
    /// global rule evaluation interval, whose default is 1 min.
    public var defaultSubqueryStepMs: Int64 = 60_000

    /// Most points one series of a range query may have (`(end - start) / step + 1`). Default
    /// 11,000, as Prometheus's API enforces: a longer range needs a coarser step.
    public var maxPointsPerSeries: Int = 11_000

    public init() {}

    /// Small limits for tests of the limit paths.
    public static func testing(maxSamples: Int) -> EngineSettings {
        var s = EngineSettings()
        s.maxSamples = maxSamples
        return s
    }
}
