import StarlingCore

/// The result of a PromQL query, as the HTTP API encodes it.
public enum PromValue: Sendable {
    case scalar(timestampMs: Int64, value: Double)
    case string(timestampMs: Int64, value: String)
    /// An instant vector, in the order Prometheus produces it (`sort()` order matters).
    case vector([InstantSample])
    /// A range vector or a range query's result; range query results are sorted by labels.
    case matrix([SeriesPoints])

    /// `resultType` in the API response.
    public var resultType: String {
        switch self {
        case .scalar: return "scalar"
        case .string: return "string"
        case .vector: return "vector"
        case .matrix: return "matrix"
        }
    }
}

public struct InstantSample: Sendable {
    public var labels: Labels
    public var timestampMs: Int64
    public var value: Double
    public init(labels: Labels, timestampMs: Int64, value: Double) {
        self.labels = labels
        self.timestampMs = timestampMs
        self.value = value
    }
}

public struct SeriesPoints: Sendable {
    public var labels: Labels
    public var samples: [Sample]
    public init(labels: Labels, samples: [Sample]) {
        self.labels = labels
        self.samples = samples
    }
}

/// Errors of query execution. Their texts are Prometheus's, so clients matching on them work.
public enum PromQLError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The query could not be parsed or type-checked (HTTP 400, `bad_data`).
    case parse(String)
    /// A query parameter is invalid (HTTP 400, `bad_data`).
    case badData(String)
    /// Evaluation failed on the data (HTTP 422, `execution`), e.g. many-to-many matching.
    case execution(String)
    /// The `maxSamples` limit was hit (HTTP 422, `execution`).
    case tooManySamples
    /// The query ran longer than its timeout (HTTP 503, `timeout`).
    case timeout
    /// The query was canceled (HTTP 503, `canceled`).
    case canceled
    /// The storage failed (HTTP 500, `internal`).
    case storage(String)

    public var description: String {
        switch self {
        case .parse(let s), .badData(let s), .execution(let s), .storage(let s): return s
        case .tooManySamples: return "query processing would load too many samples into memory in query execution"
        case .timeout: return "query timed out in expression evaluation"
        case .canceled: return "query was canceled in expression evaluation"
        }
    }

    /// The API's `errorType`.
    public var errorType: String {
        switch self {
        case .parse, .badData: return "bad_data"
        case .execution, .tooManySamples: return "execution"
        case .timeout: return "timeout"
        case .canceled: return "canceled"
        case .storage: return "internal"
        }
    }
}

/// Prometheus's text form of a label set, `{__name__="up", job="a"}`, used in error messages.
func promLabelsString(_ l: Labels) -> String {
    "{" + l.array.map { "\($0.name)=\(goQuote($0.value))" }.joined(separator: ", ") + "}"
}
