/// Why a compressed payload could not be decoded. Every decoder in this module takes a
/// `maxDecodedBytes` limit: a payload from the network may be a decompression bomb (a few KiB
/// that expand to gigabytes), so decoders refuse to produce, or allocate, more than the caller
/// allows, and say which limit was hit.
public enum CompressionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The decoded payload would be larger than `limit` bytes. `declared` is the size the
    /// payload announced in its header when the format has one (Snappy, size-prefixed LZ4): such
    /// payloads are rejected before any output is allocated.
    case decodedSizeExceedsLimit(format: CompressionFormat, limit: Int, declared: Int?)
    /// The payload is not valid `format` data; `detail` says what was wrong and, where known, at
    /// which input byte offset.
    case corrupt(format: CompressionFormat, detail: String)
    /// A `Content-Encoding` this module does not decode.
    case unsupportedEncoding(String)

    public var description: String {
        switch self {
        case .decodedSizeExceedsLimit(let f, let limit, let declared?):
            return "\(f) payload declares \(declared) decoded bytes, more than the limit of \(limit) bytes"
        case .decodedSizeExceedsLimit(let f, let limit, nil):
            return "\(f) payload decodes to more than the limit of \(limit) bytes"
        case .corrupt(let f, let detail):
            return "corrupt \(f) payload: \(detail)"
        case .unsupportedEncoding(let e):
            return "unsupported content encoding \"\(e)\" (supported: identity, gzip, x-gzip, deflate, snappy)"
        }
    }
}

/// The compression formats this module speaks.
public enum CompressionFormat: String, Sendable, Equatable, CustomStringConvertible {
    /// An uncompressed body (only ever in `decodedSizeExceedsLimit`).
    case identity
    case snappy
    case lz4
    case gzip
    case deflate

    public var description: String { rawValue }
}

/// `withUnsafeBytes` only rethrows untyped errors; this keeps `CompressionError` typed.
@inline(__always)
func withBytes<T>(
    _ a: [UInt8], _ body: (UnsafeRawBufferPointer) throws(CompressionError) -> T
) throws(CompressionError) -> T {
    let r: Result<T, CompressionError> = a.withUnsafeBytes { b in
        do throws(CompressionError) { return .success(try body(b)) } catch { return .failure(error) }
    }
    return try r.get()
}
