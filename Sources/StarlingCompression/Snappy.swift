import CSnappy

/// Snappy *block* format (not the framing format): what Prometheus remote write bodies use
/// (`Content-Encoding: snappy`). A block starts with the decoded length as a uvarint, which lets
/// `decode` reject a bomb before allocating anything.
public enum Snappy {
    /// The decoded length a block declares in its header.
    public static func declaredDecodedLength(_ input: UnsafeRawBufferPointer) throws(CompressionError) -> Int {
        guard let base = input.baseAddress, !input.isEmpty else {
            throw .corrupt(format: .snappy, detail: "empty input (a block has at least its length header)")
        }
        var length = 0
        let status = snappy_uncompressed_length(base.assumingMemoryBound(to: CChar.self), input.count, &length)
        guard status == SNAPPY_OK else {
            throw .corrupt(format: .snappy, detail: "invalid length header at offset 0")
        }
        return length
    }

    /// Decodes a Snappy block. Throws `decodedSizeExceedsLimit` (without allocating the output)
    /// when the block declares more than `maxDecodedBytes`, and `corrupt` when the block is not
    /// valid Snappy (bad copy offsets, truncation, length mismatch).
    public static func decode(_ input: UnsafeRawBufferPointer, maxDecodedBytes: Int) throws(CompressionError) -> [UInt8] {
        let length = try declaredDecodedLength(input)
        guard length <= maxDecodedBytes else {
            throw .decodedSizeExceedsLimit(format: .snappy, limit: maxDecodedBytes, declared: length)
        }
        let src = input.baseAddress!.assumingMemoryBound(to: CChar.self)
        // Validate first: snappy_uncompress on a hostile block is safe, but validation lets us say
        // "corrupt" rather than return a partially written buffer.
        guard snappy_validate_compressed_buffer(src, input.count) == SNAPPY_OK else {
            throw .corrupt(format: .snappy, detail: "invalid block (bad tag, copy offset or truncated data)")
        }
        if length == 0 { return [] }
        var status = SNAPPY_OK
        let out = [UInt8](unsafeUninitializedCapacity: length) { buf, initialized in
            var outLength = length
            status = snappy_uncompress(
                src, input.count, UnsafeMutableRawPointer(buf.baseAddress!).assumingMemoryBound(to: CChar.self), &outLength)
            initialized = status == SNAPPY_OK && outLength == length ? length : 0
        }
        guard out.count == length else {
            throw .corrupt(format: .snappy, detail: "block does not decode to its declared \(length) bytes")
        }
        return out
    }

    public static func decode(_ input: [UInt8], maxDecodedBytes: Int) throws(CompressionError) -> [UInt8] {
        try withBytes(input) { (buf) throws(CompressionError) -> [UInt8] in try decode(buf, maxDecodedBytes: maxDecodedBytes) }
    }

    /// Encodes `input` as one Snappy block.
    public static func encode(_ input: UnsafeRawBufferPointer) -> [UInt8] {
        let bound = snappy_max_compressed_length(input.count)
        // snappy_compress needs a non-null source even for empty input.
        var empty: UInt8 = 0
        return withUnsafeMutablePointer(to: &empty) { emptyPtr in
            let src = input.baseAddress.map { $0.assumingMemoryBound(to: CChar.self) }
                ?? UnsafeRawPointer(emptyPtr).assumingMemoryBound(to: CChar.self)
            return [UInt8](unsafeUninitializedCapacity: bound) { buf, initialized in
                var outLength = bound
                let status = snappy_compress(
                    src, input.count, UnsafeMutableRawPointer(buf.baseAddress!).assumingMemoryBound(to: CChar.self),
                    &outLength)
                precondition(status == SNAPPY_OK, "snappy_compress failed with a buffer of snappy_max_compressed_length")
                initialized = outLength
            }
        }
    }

    public static func encode(_ input: [UInt8]) -> [UInt8] {
        input.withUnsafeBytes { encode($0) }
    }
}
