import Hummingbird
import NIOCore

/// Reads a request body into memory under a byte limit, failing with 413 before reading more
/// than `limit` bytes. A declared `Content-Length` above the limit is refused without reading.
public func collectBody(_ request: Request, limit: Int) async throws -> ByteBuffer {
    if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit {
        throw APIError(.tooLarge, "request body of \(declared) bytes exceeds the limit of \(limit) bytes (http.max_body_bytes)")
    }
    do {
        return try await request.body.collect(upTo: limit)
    } catch is NIOTooManyBytesError {
        throw APIError(.tooLarge, "request body exceeds the limit of \(limit) bytes (http.max_body_bytes)")
    }
}
