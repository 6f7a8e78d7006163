/// Why samples were rejected: a closed list with stable snake_case names. The raw value is the
/// `reason` label of `starling_ingest_rejected_samples_total`, so cases are **append only**:
/// never rename or remove one (dashboards and alerts select on these strings).
public enum RejectionReason: String, Sendable, Hashable, CaseIterable, Codable, CustomStringConvertible {
    /// The body or line does not follow the format's syntax (protobuf wire format, line protocol
    /// grammar, JSON). For remote write this rejects the whole request.
    case malformedInput = "malformed_input"
    /// The series has no `__name__` label (or an empty one).
    case missingMetricName = "missing_metric_name"
    /// The metric name does not match `[a-zA-Z_:][a-zA-Z0-9_:]*` (only where names are not sanitized).
    case invalidMetricName = "invalid_metric_name"
    /// A label name is empty or does not match `[a-zA-Z_][a-zA-Z0-9_]*` (only where not sanitized).
    case invalidLabelName = "invalid_label_name"
    /// A label name or value is not valid UTF-8.
    case invalidUTF8 = "invalid_utf8"
    /// A label name or value contains a NUL byte (NUL separates fields in the storage key layout).
    case nulByte = "nul_byte"
    /// Two labels of one series have the same name.
    case duplicateLabelName = "duplicate_label_name"
    /// More labels than `IngestLimits.maxLabelsPerSeries`.
    case tooManyLabels = "too_many_labels"
    /// A label name longer than `IngestLimits.maxLabelNameBytes`.
    case labelNameTooLong = "label_name_too_long"
    /// A label value longer than `IngestLimits.maxLabelValueBytes`.
    case labelValueTooLong = "label_value_too_long"
    /// A timestamp older than `nowMs - IngestLimits.maxSampleAgeMs`.
    case timestampTooOld = "timestamp_too_old"
    /// A timestamp later than `nowMs + IngestLimits.maxFutureSkewMs`.
    case timestampTooNew = "timestamp_too_new"
    /// A timestamp that cannot be represented in milliseconds (overflow after applying precision).
    case invalidTimestamp = "invalid_timestamp"
    /// A field or sample value that is not a number of the declared type (e.g. `12x`, `1e999i`).
    case invalidValue = "invalid_value"
    /// A line longer than the line limit (`maxInfluxLineBytes` / `maxImportLineBytes`).
    case lineTooLong = "line_too_long"
    /// JSON import: `values` and `timestamps` have different lengths.
    case valueTimestampCountMismatch = "value_timestamp_count_mismatch"
    /// The (decoded) body is larger than the endpoint's limit. Used by the HTTP shell.
    case bodyTooLarge = "body_too_large"
    /// The body's `Content-Encoding` could not be undone (corrupt or unsupported). Used by the HTTP shell.
    case badContentEncoding = "bad_content_encoding"
    /// Accepting the series would exceed a series limit (`IngestLimits.maxSeriesPerTenant`). Used by storage.
    case seriesLimitExceeded = "series_limit_exceeded"

    public var description: String { rawValue }
}

/// Where in a request a problem was found. Fields that do not apply are nil. Lines and columns are
/// 1-based (columns count bytes); byte offsets and series indexes are 0-based.
public struct IngestLocation: Sendable, Equatable, CustomStringConvertible {
    /// Line number in a line-oriented body (line protocol, JSON import).
    public var line: Int?
    /// Byte column within `line`.
    public var column: Int?
    /// Index of the series in a remote-write `WriteRequest.timeseries`.
    public var seriesIndex: Int?
    /// The series' label set as sent (remote write), in Prometheus text form, truncated to 512 bytes.
    public var labels: String?
    /// Byte offset in the (decompressed) body.
    public var byteOffset: Int?

    public init(line: Int? = nil, column: Int? = nil, seriesIndex: Int? = nil, labels: String? = nil, byteOffset: Int? = nil) {
        self.line = line
        self.column = column
        self.seriesIndex = seriesIndex
        self.labels = labels
        self.byteOffset = byteOffset
    }

    public static let request = IngestLocation()

    public var description: String {
        var parts: [String] = []
        if let l = line { parts.append(column.map { "line \(l), column \($0)" } ?? "line \(l)") }
        if let s = seriesIndex { parts.append("series #\(s)") }
        if let labels { parts.append(labels) }
        if let o = byteOffset { parts.append("byte offset \(o)") }
        return parts.isEmpty ? "request" : parts.joined(separator: ", ")
    }
}

/// One rejected item: which rule (`reason`), where (`location`), a human-readable explanation
/// naming the offending name/value and the limit, and how many samples it cost.
public struct IngestError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: RejectionReason
    public var location: IngestLocation
    public var message: String
    /// Samples dropped because of this error (0 when none could be counted, e.g. a request-level failure).
    public var rejectedSamples: Int

    public init(reason: RejectionReason, location: IngestLocation, message: String, rejectedSamples: Int) {
        self.reason = reason
        self.location = location
        self.message = message
        self.rejectedSamples = rejectedSamples
    }

    /// `line 3, column 17: invalid_label_name: label name "a-b" ...`
    public var description: String { "\(location): \(reason): \(message)" }

    // MARK: Request-level errors raised by the HTTP shell and storage

    /// The body (after decompression) exceeds `limitBytes`.
    public static func bodyTooLarge(limitBytes: Int, actualBytes: Int? = nil) -> IngestError {
        let what = actualBytes.map { "\($0) bytes" } ?? "body"
        return IngestError(
            reason: .bodyTooLarge, location: .request,
            message: "\(what) exceeds the limit of \(limitBytes) bytes", rejectedSamples: 0)
    }

    /// The body's content encoding could not be undone.
    public static func badContentEncoding(_ detail: String) -> IngestError {
        IngestError(reason: .badContentEncoding, location: .request, message: detail, rejectedSamples: 0)
    }

    /// Storing `labels` would create a series beyond `limit`.
    public static func seriesLimitExceeded(labels: String, limit: Int, samples: Int) -> IngestError {
        IngestError(
            reason: .seriesLimitExceeded, location: IngestLocation(labels: labels),
            message: "new series would exceed the limit of \(limit) series", rejectedSamples: samples)
    }
}

/// Renders `bytes` for an error message: valid UTF-8 is quoted (Go-style escapes), anything else
/// is shown as escaped bytes. Truncated to `max` bytes so an error cannot echo a huge value.
func quoteForError(_ bytes: UnsafeRawBufferPointer, max: Int = 128) -> String {
    let slice = UnsafeRawBufferPointer(rebasing: bytes[0..<Swift.min(bytes.count, max)])
    var out = "\""
    var i = 0
    while i < slice.count {
        let b = slice[i]
        switch b {
        case 0x22: out += "\\\""
        case 0x5C: out += "\\\\"
        case 0x0A: out += "\\n"
        case 0x0D: out += "\\r"
        case 0x09: out += "\\t"
        case 0x20..<0x7F: out.unicodeScalars.append(Unicode.Scalar(b))
        default:
            let n = utf8SequenceLength(slice, at: i)
            if n > 1 {
                out += String(decoding: UnsafeRawBufferPointer(rebasing: slice[i..<i + n]), as: UTF8.self)
                i += n
                continue
            }
            let hex = String(b, radix: 16)
            out += "\\x" + (hex.count == 1 ? "0" + hex : hex)
        }
        i += 1
    }
    out += "\""
    if bytes.count > max { out += "…(\(bytes.count) bytes)" }
    return out
}

func quoteForError(_ bytes: [UInt8], max: Int = 128) -> String {
    bytes.withUnsafeBytes { quoteForError($0, max: max) }
}
