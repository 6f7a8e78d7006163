import CLZ4

/// LZ4 *block* compression (liblz4's `LZ4_compress_default` / `LZ4_decompress_safe`), for peer
/// RPC payloads and storage blocks. A raw LZ4 block does not record its decoded size, so callers
/// either keep the size themselves (`decompress(_:decodedSize:)`) or use the size-prefixed form:
///
///     uvarint(decodedSize) lz4-block
///
/// which lets `decompressSizePrefixed` reject a bomb before allocating.
public enum LZ4Block {
    /// Largest input liblz4 accepts (`LZ4_MAX_INPUT_SIZE`, 0x7E000000 bytes).
    public static let maxInputBytes = 0x7E00_0000

    /// Compresses `input` into one raw LZ4 block.
    /// - Precondition: `input.count <= maxInputBytes`.
    public static func compress(_ input: UnsafeRawBufferPointer) -> [UInt8] {
        precondition(input.count <= maxInputBytes, "LZ4 input of \(input.count) bytes exceeds LZ4_MAX_INPUT_SIZE")
        if input.isEmpty { return [0] }  // LZ4's encoding of the empty block: one token byte.
        let bound = Int(LZ4_compressBound(Int32(input.count)))
        return [UInt8](unsafeUninitializedCapacity: bound) { buf, initialized in
            let n = LZ4_compress_default(
                input.baseAddress!.assumingMemoryBound(to: CChar.self),
                UnsafeMutableRawPointer(buf.baseAddress!).assumingMemoryBound(to: CChar.self),
                Int32(input.count), Int32(bound))
            precondition(n > 0, "LZ4_compress_default failed with a buffer of LZ4_compressBound")
            initialized = Int(n)
        }
    }

    public static func compress(_ input: [UInt8]) -> [UInt8] {
        input.withUnsafeBytes { compress($0) }
    }

    /// Decompresses a raw block whose decoded size is known exactly. Throws `corrupt` when the
    /// block is malformed or does not decode to exactly `decodedSize` bytes.
    public static func decompress(_ input: UnsafeRawBufferPointer, decodedSize: Int) throws(CompressionError) -> [UInt8] {
        guard decodedSize >= 0, decodedSize <= maxInputBytes else {
            throw .corrupt(format: .lz4, detail: "decoded size \(decodedSize) out of range")
        }
        guard let src = input.baseAddress, !input.isEmpty, input.count <= Int(Int32.max) else {
            throw .corrupt(format: .lz4, detail: "empty or oversized block")
        }
        if decodedSize == 0 {
            guard input.count == 1, input[0] == 0 else {
                throw .corrupt(format: .lz4, detail: "non-empty block for a declared size of 0")
            }
            return []
        }
        var produced: Int32 = -1
        let out = [UInt8](unsafeUninitializedCapacity: decodedSize) { buf, initialized in
            produced = LZ4_decompress_safe(
                src.assumingMemoryBound(to: CChar.self),
                UnsafeMutableRawPointer(buf.baseAddress!).assumingMemoryBound(to: CChar.self),
                Int32(input.count), Int32(decodedSize))
            initialized = produced == Int32(decodedSize) ? decodedSize : 0
        }
        guard produced == Int32(decodedSize) else {
            if produced < 0 {
                throw .corrupt(format: .lz4, detail: "malformed block (error at input offset \(-Int(produced) - 1))")
            }
            throw .corrupt(format: .lz4, detail: "block decodes to \(produced) bytes, expected \(decodedSize)")
        }
        return out
    }

    public static func decompress(_ input: [UInt8], decodedSize: Int) throws(CompressionError) -> [UInt8] {
        try withBytes(input) { (b) throws(CompressionError) -> [UInt8] in try decompress(b, decodedSize: decodedSize) }
    }

    /// `uvarint(input.count)` followed by the LZ4 block of `input`.
    public static func compressSizePrefixed(_ input: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var v = UInt64(input.count)
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
        out.append(contentsOf: compress(input))
        return out
    }

    /// Decodes the size-prefixed form, rejecting a declared size above `maxDecodedBytes` before
    /// allocating.
    public static func decompressSizePrefixed(_ input: [UInt8], maxDecodedBytes: Int) throws(CompressionError) -> [UInt8] {
        var size: UInt64 = 0
        var shift: UInt64 = 0
        var i = 0
        while true {
            guard i < input.count, i < 10 else {
                throw .corrupt(format: .lz4, detail: "truncated or overlong size prefix")
            }
            let b = input[i]
            i += 1
            size |= UInt64(b & 0x7F) << shift
            if b < 0x80 { break }
            shift += 7
        }
        guard size <= UInt64(maxDecodedBytes) else {
            throw .decodedSizeExceedsLimit(
                format: .lz4, limit: maxDecodedBytes, declared: size > UInt64(Int.max) ? Int.max : Int(size))
        }
        return try withBytes(input) { (b) throws(CompressionError) -> [UInt8] in
            try decompress(UnsafeRawBufferPointer(rebasing: b[i...]), decodedSize: Int(size))
        }
    }
}
