/// An HTTP `Content-Encoding` the ingest endpoints accept, and the one call the HTTP shell makes
/// to undo it with a bound on the decoded size.
public enum ContentEncoding: String, Sendable, Equatable, CaseIterable {
    case identity
    case gzip
    case deflate
    case snappy

    /// Parses a `Content-Encoding` header value (case-insensitive; `x-gzip` is `gzip`; an absent
    /// or empty header is `identity`). Stacked encodings (`gzip, br`) are not accepted: no agent
    /// sends them to a metrics endpoint.
    public init(headerValue: String?) throws(CompressionError) {
        let v = (headerValue ?? "").trimmingSpaces().lowercased()
        switch v {
        case "", "identity": self = .identity
        case "gzip", "x-gzip": self = .gzip
        case "deflate": self = .deflate
        case "snappy": self = .snappy
        default: throw .unsupportedEncoding(headerValue ?? "")
        }
    }

    /// Decodes `body`. `identity` returns the body unchanged after checking its size against
    /// `maxDecodedBytes`, so the caller applies one limit whatever the encoding.
    public func decode(_ body: [UInt8], maxDecodedBytes: Int) throws(CompressionError) -> [UInt8] {
        switch self {
        case .identity:
            guard body.count <= maxDecodedBytes else {
                throw .decodedSizeExceedsLimit(format: .identity, limit: maxDecodedBytes, declared: body.count)
            }
            return body
        case .gzip: return try Gzip.decode(body, maxDecodedBytes: maxDecodedBytes)
        case .deflate: return try Deflate.decode(body, maxDecodedBytes: maxDecodedBytes)
        case .snappy: return try Snappy.decode(body, maxDecodedBytes: maxDecodedBytes)
        }
    }
}

extension String {
    fileprivate func trimmingSpaces() -> Substring {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return s
    }
}
