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
///
/// One sample — what a scrape-driven request carries per series, thousands of series a
/// request — is kept inline instead of in a heap array of its own: a request then costs no
/// allocation per series on the decoding thread, no free per series on the thread that drops
/// the batch, and no cold array for the storage append to fetch. `samples` reads as an array
/// either way (building one for an inline sample); hot paths use `sampleCount`, `withSamples`
/// and `samples(in:at:)`.
public struct SeriesSamples: Sendable {
    public var labels: Labels {
        didSet { knownLabelsHash = nil }
    }
    /// The only sample when `isSingle`.
    private var single: Sample
    /// The samples when not `isSingle` (any number, including one).
    @usableFromInline private(set) var array: [Sample]
    @usableFromInline private(set) var isSingle: Bool
    /// `labels.stableHash` when the producer already had it (the ingest series cache), so the
    /// deduplication and storage lookups downstream do not hash ~200 label bytes again per series.
    private var knownLabelsHash: UInt64?

    public init(labels: Labels, samples: [Sample]) {
        self.labels = labels
        self.single = Sample(0, 0)
        self.array = samples
        self.isSingle = false
        self.knownLabelsHash = nil
    }

    /// - Precondition: `labelsHash == labels.stableHash` (checked in debug builds).
    public init(labels: Labels, labelsHash: UInt64, samples: [Sample]) {
        assert(labelsHash == labels.stableHash, "SeriesSamples: labelsHash is not the labels' stableHash")
        self.labels = labels
        self.single = Sample(0, 0)
        self.array = samples
        self.isSingle = false
        self.knownLabelsHash = labelsHash
    }

    /// One sample, kept inline. `labelsHash` as in `init(labels:labelsHash:samples:)`.
    public init(labels: Labels, labelsHash: UInt64? = nil, sample: Sample) {
        assert(labelsHash == nil || labelsHash == labels.stableHash, "SeriesSamples: labelsHash is not the labels' stableHash")
        self.labels = labels
        self.single = sample
        self.array = []
        self.isSingle = true
        self.knownLabelsHash = labelsHash
    }

    /// The samples, as an array (one is built for an inline sample).
    public var samples: [Sample] {
        get { isSingle ? [single] : array }
        set {
            array = newValue
            isSingle = false
        }
        _modify {
            if isSingle {
                array = [single]
                isSingle = false
            }
            yield &array
        }
    }

    @inlinable
    public var sampleCount: Int { isSingle ? 1 : array.count }

    /// Where `single` lies in the struct, for `samples(in:at:)`.
    private static let singleOffset = MemoryLayout<SeriesSamples>.offset(of: \.single)!

    /// Calls `body` with the samples, without building an array.
    public func withSamples<R, E: Error>(_ body: (UnsafeBufferPointer<Sample>) throws(E) -> R) throws(E) -> R {
        if isSingle {
            var one = single
            return try withUnsafePointer(to: &one) { (p) throws(E) -> R in try body(UnsafeBufferPointer(start: p, count: 1)) }
        }
        return try array.withUnsafeBufferPointer { (b) throws(E) -> R in try body(b) }
    }

    /// The samples of `items[i]`, pointing into `items` or into the entry's array: valid while
    /// `items`' memory is and nothing changes it. Touches neither reference counts nor the
    /// array of an inline sample.
    @inline(__always)
    public static func samples(in items: UnsafeBufferPointer<SeriesSamples>, at i: Int) -> UnsafeBufferPointer<Sample> {
        let entry = items.baseAddress! + i
        if entry.pointee.isSingle {
            let p = UnsafeRawPointer(entry) + singleOffset
            return UnsafeBufferPointer(start: p.assumingMemoryBound(to: Sample.self), count: 1)
        }
        return entry.pointee.array.withUnsafeBufferPointer { $0 }
    }

    /// The address of the samples' array storage, for a prefetch; `nil` for an inline sample.
    @inline(__always)
    public var samplesStorageIdentity: UnsafeRawPointer? {
        isSingle ? nil : unsafeBitCast(array, to: UnsafeRawPointer.self)
    }

    /// `labels.stableHash`: the one given at creation if any, else computed now.
    public var labelsHash: UInt64 { knownLabelsHash ?? labels.stableHash }
}
