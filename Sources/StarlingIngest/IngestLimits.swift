import StarlingCore

/// Limits applied to ingested data. Every limit, when hit, rejects only the offending items
/// (counted under its `RejectionReason`) — except the body limits, which the HTTP shell applies
/// to a whole request. Defaults follow VictoriaMetrics where it has an equivalent flag.
public struct IngestLimits: Sendable, Equatable {
    /// Maximum labels in one series, `__name__` and enrichment labels included (the stored set is
    /// what costs index space). Default 30, VictoriaMetrics' `-maxLabelsPerTimeseries`:
    /// node-exporter/kube-state-metrics series carry 5–15 labels, so 30 leaves room while
    /// stopping label explosions (a request id put in labels); Prometheus has no limit by
    /// default, which is a frequent cause of index blow-ups. Bound: inclusive.
    public var maxLabelsPerSeries: Int = 30

    /// Maximum bytes in a label name (UTF-8). Default 256, VictoriaMetrics' `-maxLabelNameLen`.
    /// Bound: inclusive.
    public var maxLabelNameBytes: Int = 256

    /// Maximum bytes in a label value, `__name__` included. Default 4096, VictoriaMetrics'
    /// `-maxLabelValueLen`; VictoriaMetrics truncates longer values silently, Starling rejects the
    /// series instead (a truncated value would silently merge distinct series). Bound: inclusive.
    public var maxLabelValueBytes: Int = 4096

    /// Samples older than `nowMs - maxSampleAgeMs` are rejected (`timestamp_too_old`).
    /// Default 5 years: long enough for backfills through `/api/v1/import`, short enough to catch
    /// the usual unit mistake (seconds sent as milliseconds land in January 1970). Retention,
    /// enforced by storage, is the real bound on what is kept. `nil` disables the check.
    public var maxSampleAgeMs: Int64? = 5 * 365 * Millis.day

    /// Samples later than `nowMs + maxFutureSkewMs` are rejected (`timestamp_too_new`).
    /// Default 1 hour: covers clock skew between agents and nodes; an agent sending local time as
    /// UTC (hours ahead) is rejected with a clear reason instead of writing samples that will
    /// shadow real ones. VictoriaMetrics allows 2 days. `nil` disables the check.
    public var maxFutureSkewMs: Int64? = Millis.hour

    /// Longest Influx line, in bytes, terminator excluded. Default 256 KiB, VictoriaMetrics'
    /// `-influx.maxLineSize`. A longer line is skipped (`line_too_long`) without being buffered.
    public var maxInfluxLineBytes: Int = 256 * 1024

    /// Longest JSON-import line, in bytes. Default 10 MiB, VictoriaMetrics' `-import.maxLineLen`:
    /// one line carries a whole series with many values.
    public var maxImportLineBytes: Int = 10 * 1024 * 1024

    /// Maximum decompressed body size the HTTP shell accepts for one write request. Default
    /// 64 MiB (VictoriaMetrics: `-maxInsertRequestSize` 32 MB for remote write,
    /// `-influx.maxRequestSize` 64 MiB). Also the `maxDecodedBytes` passed to StarlingCompression,
    /// so a decompression bomb is cut off at this size. Bound: inclusive.
    public var maxBodyBytes: Int = 64 * 1024 * 1024

    /// Maximum series one tenant may have; enforced by storage when a write would create a new
    /// series (`series_limit_exceeded`). `nil` (the default) means unlimited, as in VictoriaMetrics
    /// without `-storage.maxHourlySeries`.
    public var maxSeriesPerTenant: Int? = nil

    /// How many individual errors a response lists; the rest are only counted (per reason).
    /// Default 20: enough to diagnose a bad agent, small enough to keep a 400 response readable
    /// and cheap when every line of a large body is wrong.
    public var maxReportedErrors: Int = 20

    public init() {}

    public static let `default` = IngestLimits()

    /// The timestamp window `[oldest, newest]` (inclusive) for `nowMs`.
    @inlinable
    public func timestampWindow(nowMs: Int64) -> ClosedRange<Int64> {
        let lo = maxSampleAgeMs.map { nowMs.subtractingReportingOverflow($0).overflow ? Int64.min : nowMs - $0 } ?? Int64.min
        let hi = maxFutureSkewMs.map { nowMs.addingReportingOverflow($0).overflow ? Int64.max : nowMs + $0 } ?? Int64.max
        return lo...Swift.max(lo, hi)
    }
}
