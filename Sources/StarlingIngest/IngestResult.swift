import StarlingCore

/// The outcome of decoding one write request.
///
/// **Partial-batch policy.** Valid items are accepted even when others in the same request are
/// rejected: `series` holds everything that passed, and the HTTP shell stores it before
/// answering. The answer is `204 No Content` when nothing was rejected, otherwise `400 Bad
/// Request` with `responseText()`/`responseJSON()`: counts of accepted and rejected samples per
/// reason and the first `IngestLimits.maxReportedErrors` errors. Prometheus does not retry a 4xx,
/// so the 400 only informs; the valid series are not lost. A remote-write body that is not a
/// valid protobuf message is the exception: nothing in it is trusted and nothing is accepted.
public struct IngestResult: Sendable {
    /// Accepted series, one entry per distinct label set, samples sorted by timestamp with exact
    /// duplicates removed.
    public var series: [SeriesSamples] = []
    /// Samples in `series`.
    public var acceptedSamples: Int = 0
    /// Samples rejected, summed over `rejectedSamplesByReason`.
    public var rejectedSamples: Int = 0
    /// Rejected samples per reason: what the HTTP shell adds to
    /// `starling_ingest_rejected_samples_total{reason}`.
    public var rejectedSamplesByReason: [RejectionReason: Int] = [:]
    /// The first `IngestLimits.maxReportedErrors` errors, in body order.
    public var errors: [IngestError] = []
    /// All errors (rejected items), including those not listed in `errors`.
    public var errorCount: Int = 0
    /// Samples dropped because the same series had the same sample (timestamp and value bits)
    /// more than once in this request. Not an error.
    public var duplicateSamplesDropped: Int = 0
    /// Influx string fields that were not numbers and so were skipped. Not an error.
    public var skippedStringFields: Int = 0
    /// Remote-write native histogram samples and exemplars, which Starling does not store yet.
    /// Not an error (see docs/ingest.md).
    public var ignoredHistograms: Int = 0
    public var ignoredExemplars: Int = 0
    /// Remote-write metadata entries (type/help/unit), skipped.
    public var ignoredMetadata: Int = 0
    /// Lines read (line protocol, JSON import), comments and blank lines included.
    public var lines: Int = 0
    /// Series whose labels came from / missed / were evicted from the `SeriesLabelCache` while
    /// decoding this request (all 0 without a cache): what the HTTP shell adds to
    /// `starling_ingest_series_cache_{hits,misses,evictions}_total`.
    public var seriesCacheHits: Int = 0
    public var seriesCacheMisses: Int = 0
    public var seriesCacheEvictions: Int = 0

    public init() {}

    /// True when nothing was rejected.
    public var isSuccess: Bool { errorCount == 0 }

    /// 204 when nothing was rejected, 400 otherwise (also when some items were accepted).
    public var httpStatus: Int { isSuccess ? 204 : 400 }

    /// One-line summary: `accepted 10 samples, rejected 3 samples (invalid_label_name: 2, timestamp_too_old: 1); 3 errors`.
    public var summary: String {
        var s = "accepted \(acceptedSamples) samples in \(series.count) series, rejected \(rejectedSamples) samples"
        if !rejectedSamplesByReason.isEmpty {
            let parts = rejectedSamplesByReason.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key): \($0.value)" }
            s += " (" + parts.joined(separator: ", ") + ")"
        }
        s += "; \(errorCount) error\(errorCount == 1 ? "" : "s")"
        return s
    }

    /// Plain-text body for a 400: the summary, then one error per line.
    public func responseText() -> String {
        var out = summary
        if errorCount > errors.count { out += ", first \(errors.count) listed" }
        out += "\n"
        for e in errors { out += e.description + "\n" }
        return out
    }

    /// JSON body for a 400. It carries InfluxDB v1's `error` and v2's `code`/`message` fields so
    /// Influx clients show the summary, plus Starling's details:
    ///
    ///     {"code":"invalid","message":"<summary>","error":"<summary>",
    ///      "accepted":10,"rejected":3,"rejectedByReason":{"invalid_label_name":2},
    ///      "errorCount":3,"errors":[{"reason":"invalid_label_name","line":3,"column":7,
    ///        "message":"label name \"a-b\" does not match …","rejectedSamples":1}]}
    ///
    /// Location keys (`line`, `column`, `series`, `labels`, `offset`) appear only when known.
    public func responseJSON() -> String {
        var out = "{\"code\":\"invalid\",\"message\":"
        appendJSONString(summary, to: &out)
        out += ",\"error\":"
        appendJSONString(summary, to: &out)
        out += ",\"accepted\":\(acceptedSamples),\"rejected\":\(rejectedSamples),\"rejectedByReason\":{"
        for (i, (r, n)) in rejectedSamplesByReason.sorted(by: { $0.key.rawValue < $1.key.rawValue }).enumerated() {
            if i > 0 { out += "," }
            out += "\"\(r.rawValue)\":\(n)"
        }
        out += "},\"errorCount\":\(errorCount),\"errors\":["
        for (i, e) in errors.enumerated() {
            if i > 0 { out += "," }
            out += "{\"reason\":\"\(e.reason.rawValue)\""
            if let l = e.location.line { out += ",\"line\":\(l)" }
            if let c = e.location.column { out += ",\"column\":\(c)" }
            if let s = e.location.seriesIndex { out += ",\"series\":\(s)" }
            if let l = e.location.labels {
                out += ",\"labels\":"
                appendJSONString(l, to: &out)
            }
            if let o = e.location.byteOffset { out += ",\"offset\":\(o)" }
            out += ",\"message\":"
            appendJSONString(e.message, to: &out)
            out += ",\"rejectedSamples\":\(e.rejectedSamples)}"
        }
        out += "]}"
        return out
    }

    /// Records a request-level error raised outside the decoders (body too large, bad encoding,
    /// series limit) so the HTTP shell renders one response shape for every failure.
    public mutating func record(_ error: IngestError, maxReportedErrors: Int = IngestLimits.default.maxReportedErrors) {
        errorCount += 1
        if errors.count < maxReportedErrors { errors.append(error) }
        rejectedSamples += error.rejectedSamples
        rejectedSamplesByReason[error.reason, default: 0] += error.rejectedSamples
    }
}

func appendJSONString(_ s: String, to out: inout String) {
    out += "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 {
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    out += "\""
}

/// Accumulates a result while decoding.
struct ResultAccumulator {
    var result = IngestResult()
    let maxReportedErrors: Int

    init(maxReportedErrors: Int) { self.maxReportedErrors = maxReportedErrors }

    @inline(__always)
    mutating func accept(_ s: SeriesSamples) {
        result.series.append(s)
    }

    mutating func reject(_ reason: RejectionReason, samples: Int, location: @autoclosure () -> IngestLocation, message: @autoclosure () -> String) {
        result.errorCount += 1
        result.rejectedSamples += samples
        result.rejectedSamplesByReason[reason, default: 0] += samples
        if result.errors.count < maxReportedErrors {
            result.errors.append(IngestError(reason: reason, location: location(), message: message(), rejectedSamples: samples))
        }
    }

    /// Merges series with equal label sets, drops exact duplicate samples and counts what is left.
    mutating func finalize() -> IngestResult {
        let dropped = BatchDeduplicator.mergeAndDeduplicate(&result.series)
        result.duplicateSamplesDropped += dropped
        var n = 0
        for s in result.series { n += s.sampleCount }
        result.acceptedSamples = n
        return result
    }
}

/// Deduplication within one request.
enum BatchDeduplicator {
    /// Merges entries with the same label set (in first-seen order) and, per series, sorts
    /// samples by timestamp and drops exact duplicates (same timestamp and same value bits, so
    /// NaN payloads such as stale markers compare exactly). Samples at one timestamp with
    /// different values are all kept: storage decides which wins. Cost: one XXH64 of the label
    /// bytes and one dictionary probe per entry when there is more than one, and a linear scan of
    /// each series' samples when they are already strictly increasing (the common case).
    /// `hash` is replaceable so tests can force collisions; by default each entry's `labelsHash`
    /// (known from the series cache, else computed). Works in place: the caller's array
    /// is uniquely owned, so nothing is copied unless two entries actually merge.
    static func mergeAndDeduplicate(
        _ series: inout [SeriesSamples], hash: ((Labels) -> UInt64)? = nil
    ) -> Int {
        if series.count > 1 {
            // Keyed by the labels' stable XXH64 (cheaper than hashing the bytes through
            // `Hasher`); a different label set with the same 64-bit hash — accidental or crafted —
            // goes to `collisions`, which is keyed by the labels themselves (seeded SipHash), so
            // a flood of colliding series cannot degrade the probing.
            var index: [UInt64: Int] = [:]
            index.reserveCapacity(series.count)
            var collisions: [Labels: Int] = [:]
            // Entries are compacted towards the front: `w` is the next free slot.
            var w = 0
            for k in series.indices {
                let h = hash?(series[k].labels) ?? series[k].labelsHash
                var existing: Int? = nil
                let first = index[h]
                if let i = first {
                    existing = series[i].labels == series[k].labels ? i : collisions[series[k].labels]
                }
                if let at = existing {
                    let moved = series[k].samples
                    series[at].samples.append(contentsOf: moved)
                } else {
                    if first == nil { index[h] = w } else { collisions[series[k].labels] = w }
                    if w != k { series.swapAt(w, k) }
                    w += 1
                }
            }
            if w < series.count { series.removeLast(series.count - w) }
        }
        var dropped = 0
        for k in series.indices where series[k].sampleCount > 1 && !series[k].withSamples(isStrictlyIncreasing) {
            dropped += dedupeSamples(&series[k].samples)
        }
        return dropped
    }

    @inline(__always)
    static func isStrictlyIncreasing(_ samples: UnsafeBufferPointer<Sample>) -> Bool {
        var i = 1
        while i < samples.count {
            if samples[i].timestampMs <= samples[i - 1].timestampMs { return false }
            i += 1
        }
        return true
    }

    /// Sorts `samples` by (timestamp, value bits) unless already strictly increasing in time,
    /// removes exact duplicates, returns how many were removed.
    static func dedupeSamples(_ samples: inout [Sample]) -> Int {
        if samples.withUnsafeBufferPointer(isStrictlyIncreasing) { return 0 }
        samples.sort { a, b in
            a.timestampMs != b.timestampMs ? a.timestampMs < b.timestampMs : a.value.bitPattern < b.value.bitPattern
        }
        var w = 1
        for r in 1..<samples.count where !samples[r].bitwiseEqual(samples[w - 1]) {
            samples[w] = samples[r]
            w += 1
        }
        let removed = samples.count - w
        samples.removeLast(removed)
        return removed
    }
}
