import Prometheus
import Synchronization

/// The node's own Prometheus metrics, served at `/metrics`.
///
/// One registry per node: `StarlingNode` also bootstraps swift-metrics with a
/// `PrometheusMetricsFactory` over the same registry, so libraries and later subsystems that use
/// the swift-metrics API (gossip, replication) appear on the same page. Metrics with labels are
/// created on first use and cached here, so the hot path is one dictionary lookup under a lock.
///
/// Naming: `starling_<subsystem>_<name>_<unit>`; every label has a bounded value set (routes are
/// route templates, reasons are enum cases, protocols a fixed list).
public final class StarlingMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    /// Latency buckets for HTTP handlers: 1 ms … 30 s. Ingest requests land at 1–50 ms, export
    /// and large reads reach seconds.
    public static let latencyBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30),
    ]

    private struct Caches {
        var requests: [String: Counter] = [:]
        var latency: [String: DurationHistogram] = [:]
        var labeled: [String: Counter] = [:]
    }
    private let caches = Mutex(Caches())

    public let storageSeries: Gauge
    public let storageSamples: Gauge
    public let storageBytesOnDisk: Gauge
    public let storageReady: Gauge
    public let chunkCacheBytes: Gauge
    public let chunkCacheHits: Counter
    public let chunkCacheMisses: Counter
    public let postingsCacheBytes: Gauge
    public let postingsCacheHits: Counter
    public let postingsCacheMisses: Counter
    public let recoveryDurationSeconds: Gauge
    public let maintenanceRuns: Counter
    public let maintenanceFailures: Counter

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        storageSeries = registry.makeGauge(descriptor: .init(
            namespace: "starling", subsystem: "storage", metricName: "series", unitName: "",
            helpText: "Series stored on this node."))
        storageSamples = registry.makeGauge(descriptor: .init(
            namespace: "starling", subsystem: "storage", metricName: "samples", unitName: "",
            helpText: "Samples stored on this node (as last reported by the storage engine)."))
        storageBytesOnDisk = registry.makeGauge(descriptor: .init(
            namespace: "starling", subsystem: "storage", metricName: "disk", unitName: "bytes",
            helpText: "Bytes the storage engine occupies on disk."))
        (chunkCacheBytes, chunkCacheHits, chunkCacheMisses) = Self.cacheMetrics(
            registry, name: "chunk_cache",
            bytesHelp: "Bytes held by the recent-chunk cache (storage.chunk_cache), chunk bytes plus a per-chunk allowance.",
            lookupsHelp: "Reads of one series' chunks in the newest block, by whether the recent-chunk cache answered them.")
        (postingsCacheBytes, postingsCacheHits, postingsCacheMisses) = Self.cacheMetrics(
            registry, name: "postings_cache",
            bytesHelp: "Bytes held by the postings cache (storage.postings_cache).",
            lookupsHelp: "Postings list lookups by queries, by whether the postings cache answered them.")
        storageReady = registry.makeGauge(descriptor: .init(
            namespace: "starling", subsystem: "storage", metricName: "ready", unitName: "",
            helpText: "1 once storage recovery has finished and the node serves reads and writes."))
        recoveryDurationSeconds = registry.makeGauge(descriptor: .init(
            namespace: "starling", subsystem: "storage", metricName: "recovery_duration", unitName: "seconds",
            helpText: "Wall time of the last start-up recovery (WAL replay)."))
        maintenanceRuns = registry.makeCounter(descriptor: .init(
            namespace: "starling", subsystem: "storage", metricName: "maintenance_runs", unitName: "total",
            helpText: "Storage maintenance passes (checkpoint, compaction, retention)."))
        maintenanceFailures = registry.makeCounter(descriptor: .init(
            namespace: "starling", subsystem: "storage", metricName: "maintenance_failures", unitName: "total",
            helpText: "Storage maintenance passes that failed."))
    }

    /// `starling_storage_<name>_bytes` and `starling_storage_<name>_lookups_total{result="hit"|"miss"}`.
    private static func cacheMetrics(_ registry: PrometheusCollectorRegistry, name: String, bytesHelp: String, lookupsHelp: String) -> (Gauge, Counter, Counter) {
        let bytes = registry.makeGauge(descriptor: .init(
            namespace: "starling", subsystem: "storage", metricName: name, unitName: "bytes", helpText: bytesHelp))
        let lookups = MetricNameDescriptor(
            namespace: "starling", subsystem: "storage", metricName: name + "_lookups", unitName: "total", helpText: lookupsHelp)
        return (bytes, registry.makeCounter(descriptor: lookups, labels: [("result", "hit")]),
                registry.makeCounter(descriptor: lookups, labels: [("result", "miss")]))
    }

    /// Records one finished HTTP request.
    public func request(route: String, method: String, status: Int, duration: Duration) {
        let (counter, histogram) = caches.withLock { c -> (Counter, DurationHistogram) in
            let ck = route + "\u{0}" + method + "\u{0}" + String(status)
            let counter: Counter
            if let x = c.requests[ck] {
                counter = x
            } else {
                counter = registry.makeCounter(
                    descriptor: .init(
                        namespace: "starling", subsystem: "http", metricName: "requests", unitName: "total",
                        helpText: "HTTP requests by route template, method and status code."),
                    labels: [("route", route), ("method", method), ("code", String(status))])
                c.requests[ck] = counter
            }
            let hk = route + "\u{0}" + method
            let histogram: DurationHistogram
            if let x = c.latency[hk] {
                histogram = x
            } else {
                histogram = registry.makeDurationHistogram(
                    descriptor: .init(
                        namespace: "starling", subsystem: "http", metricName: "request_duration", unitName: "seconds",
                        helpText: "HTTP request latency by route template and method, until the response body is written."),
                    labels: [("route", route), ("method", method)], buckets: Self.latencyBuckets)
                c.latency[hk] = histogram
            }
            return (counter, histogram)
        }
        counter.increment()
        histogram.record(duration)
    }

    /// Requests refused by authentication or authorization, by reason (`AuthFailure` raw values
    /// and `forbidden`).
    public func authFailure(_ reason: String) {
        labeled("starling_http_auth_failures_total", help: "Requests refused for lack of valid credentials or permission, by reason.", [("reason", reason)]).increment()
    }

    /// Ingest requests by protocol (`remote_write`, `influx`, `import`) and outcome (`ok`,
    /// `partial`, `rejected`, `error`).
    public func ingestRequest(protocol proto: String, outcome: String) {
        labeled("starling_ingest_requests_total", help: "Ingest requests by protocol and outcome (ok, partial, rejected, error).", [("protocol", proto), ("outcome", outcome)]).increment()
    }

    /// Samples accepted into storage, by protocol.
    public func ingestSamples(protocol proto: String, _ n: Int) {
        guard n > 0 else { return }
        labeled("starling_ingest_samples_total", help: "Samples accepted into storage by protocol.", [("protocol", proto)]).increment(by: Int64(n))
    }

    /// Samples refused, by protocol and the rule they broke (1 for a request refused whole).
    public func ingestRejected(protocol proto: String, reason: String, _ n: Int = 1) {
        guard n > 0 else { return }
        labeled("starling_ingest_rejected_samples_total", help: "Samples rejected at ingest, by protocol and reason (a request refused whole, e.g. body_too_large, counts 1).", [("protocol", proto), ("reason", reason)]).increment(by: Int64(n))
    }

    /// Series label cache outcomes of one request (`SeriesLabelCache`).
    public func seriesCache(hits: Int, misses: Int, evictions: Int) {
        if hits > 0 {
            labeled("starling_ingest_series_cache_hits_total", help: "Series whose labels came from the ingest series cache (no label parsing or validation).", []).increment(by: Int64(hits))
        }
        if misses > 0 {
            labeled("starling_ingest_series_cache_misses_total", help: "Series looked up in the ingest series cache and not found (labels built and validated).", []).increment(by: Int64(misses))
        }
        if evictions > 0 {
            labeled("starling_ingest_series_cache_evictions_total", help: "Entries dropped from the ingest series cache to stay within its memory bound or context limit.", []).increment(by: Int64(evictions))
        }
    }

    /// A labelled counter from the cache. `name` is the full metric name.
    public func labeled(_ name: String, help: String, _ labels: [(String, String)]) -> Counter {
        let key = name + labels.map { "\u{0}" + $0.0 + "=" + $0.1 }.joined()
        return caches.withLock { c in
            if let x = c.labeled[key] { return x }
            let (base, unit) = Self.splitUnit(name)
            let counter = registry.makeCounter(
                descriptor: .init(metricName: base, unitName: unit, helpText: help), labels: labels)
            c.labeled[key] = counter
            return counter
        }
    }

    private static func splitUnit(_ name: String) -> (String, String) {
        if name.hasSuffix("_total") { return (String(name.dropLast(6)), "total") }
        return (name, "")
    }

    /// The exposition text (Prometheus text format 0.0.4).
    public func render() -> [UInt8] {
        registry.emitToBuffer()
    }
}
