/// A sample: a timestamp in milliseconds since the Unix epoch and a float64 value.
public struct Sample: Sendable, CustomStringConvertible {
    public var timestampMs: Int64
    public var value: Double

    @inlinable
    public init(_ timestampMs: Int64, _ value: Double) {
        self.timestampMs = timestampMs
        self.value = value
    }

    /// Equality of timestamp and the value's bit pattern: NaN payloads (stale markers) count.
    @inlinable
    public func bitwiseEqual(_ other: Sample) -> Bool {
        timestampMs == other.timestampMs && value.bitPattern == other.value.bitPattern
    }

    public var description: String { "\(formatSampleValue(value)) @\(timestampMs)" }
}

/// Prometheus's staleness marker: a NaN with payload 2, written when a series disappears.
/// It must be preserved bit for bit through every codec.
public enum StaleMarker {
    public static let bitPattern: UInt64 = 0x7FF0_0000_0000_0002
    public static let value = Double(bitPattern: bitPattern)

    @inlinable
    public static func isStale(_ v: Double) -> Bool { v.bitPattern == bitPattern }
}

/// Formats a value as Prometheus's API does (Go `strconv.FormatFloat(v, 'f', -1, 64)` with
/// `NaN`, `+Inf`, `-Inf`).
public func formatSampleValue(_ v: Double) -> String {
    var out: [UInt8] = []
    out.reserveCapacity(24)
    appendSampleValue(v, to: &out)
    return String(decoding: out, as: UTF8.self)
}

/// `formatSampleValue` appended to a byte buffer, without building a String: the query API
/// writes one per point.
public func appendSampleValue(_ v: Double, to out: inout [UInt8]) {
    if v == v.rounded(), abs(v) < 9.007_199_254_740_992e15, !(v == 0 && v.sign == .minus) {
        // Integral values print without a fraction or exponent.
        return out.appendDecimal(Int64(v))
    }
    ShortestDecimal.append(v, to: &out)  // also NaN and ±Inf
}

/// Time helpers. Pure code never reads a clock: `now` is always passed in.
public enum Millis {
    public static let second: Int64 = 1000
    public static let minute: Int64 = 60 * second
    public static let hour: Int64 = 60 * minute
    public static let day: Int64 = 24 * hour

    public static func from(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        return s * 1000 + atto / 1_000_000_000_000_000
    }
}

extension Duration {
    /// Whole milliseconds in this duration.
    public var milliseconds: Int64 { Millis.from(self) }
}

/// A series' label set with samples to write: what ingest decoders produce and the storage and
/// replication layers consume.
public struct SeriesSamples: Sendable {
    public var labels: Labels {
        didSet { knownLabelsHash = nil }
    }
    public var samples: [Sample]
    /// `labels.stableHash` when the producer already had it (the ingest series cache), so the
    /// deduplication and storage lookups downstream do not hash ~200 label bytes again per series.
    private var knownLabelsHash: UInt64?

    public init(labels: Labels, samples: [Sample]) {
        self.labels = labels
        self.samples = samples
        self.knownLabelsHash = nil
    }

    /// - Precondition: `labelsHash == labels.stableHash` (checked in debug builds).
    public init(labels: Labels, labelsHash: UInt64, samples: [Sample]) {
        assert(labelsHash == labels.stableHash, "SeriesSamples: labelsHash is not the labels' stableHash")
        self.labels = labels
        self.samples = samples
        self.knownLabelsHash = labelsHash
    }

    /// `labels.stableHash`: the one given at creation if any, else computed now.
    public var labelsHash: UInt64 { knownLabelsHash ?? labels.stableHash }
}
