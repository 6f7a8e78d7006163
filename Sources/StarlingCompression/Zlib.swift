// zlib (Debian's zlib1g-dev, the CZlib system-library target) is driven directly through its
// z_stream: bomb-safe HTTP body decoding must stop at an exact output limit and know where a
// stream ends, which higher-level wrappers such as compress-nio do not offer.
import CZlib

/// gzip (RFC 1952) bodies: Influx `Content-Encoding: gzip`, and `x-gzip`. Concatenated members
/// (what `cat a.gz b.gz` or multi-part writers produce) decode as their concatenation, as Go's
/// gzip reader does for VictoriaMetrics and InfluxDB.
public enum Gzip {
    public static func decode(_ input: UnsafeRawBufferPointer, maxDecodedBytes: Int) throws(CompressionError) -> [UInt8] {
        try ZlibInflater.inflate(input, mode: .gzip, maxDecodedBytes: maxDecodedBytes)
    }

    public static func decode(_ input: [UInt8], maxDecodedBytes: Int) throws(CompressionError) -> [UInt8] {
        try withBytes(input) { (b) throws(CompressionError) -> [UInt8] in try decode(b, maxDecodedBytes: maxDecodedBytes) }
    }

    /// Encodes `input` as a single gzip member (tests, clients, benchmarks).
    public static func encode(_ input: [UInt8], level: Int32 = 6) -> [UInt8] {
        input.withUnsafeBytes { ZlibInflater.deflate($0, windowBits: 15 + 16, level: level) }
    }
}

/// HTTP `Content-Encoding: deflate`. RFC 9110 defines it as the zlib format (RFC 1950), but some
/// clients send a raw deflate stream (RFC 1951); the two are told apart by the zlib header check
/// (CMF method 8, FCHECK divisibility), as browsers and curl do.
public enum Deflate {
    public static func decode(_ input: UnsafeRawBufferPointer, maxDecodedBytes: Int) throws(CompressionError) -> [UInt8] {
        let zlibWrapped = input.count >= 2 && input[0] & 0x0F == 8 && input[0] >> 4 <= 7
            && (UInt16(input[0]) << 8 | UInt16(input[1])) % 31 == 0
        return try ZlibInflater.inflate(input, mode: zlibWrapped ? .zlib : .raw, maxDecodedBytes: maxDecodedBytes)
    }

    public static func decode(_ input: [UInt8], maxDecodedBytes: Int) throws(CompressionError) -> [UInt8] {
        try withBytes(input) { (b) throws(CompressionError) -> [UInt8] in try decode(b, maxDecodedBytes: maxDecodedBytes) }
    }

    /// Encodes `input` in the zlib format (`zlibWrapped: true`, the HTTP meaning) or as raw deflate.
    public static func encode(_ input: [UInt8], zlibWrapped: Bool = true, level: Int32 = 6) -> [UInt8] {
        input.withUnsafeBytes { ZlibInflater.deflate($0, windowBits: zlibWrapped ? 15 : -15, level: level) }
    }
}

enum ZlibInflater {
    enum Mode {
        case gzip, zlib, raw

        var windowBits: Int32 {
            switch self {
            case .gzip: return 15 + 16
            case .zlib: return 15
            case .raw: return -15
            }
        }

        var format: CompressionFormat { self == .gzip ? .gzip : .deflate }
    }

    /// Inflates into an array that never grows past `maxDecodedBytes + 1` bytes: the output is
    /// grown geometrically (starting near 4× the input) and zlib is only ever offered space up to
    /// one byte beyond the limit, so a bomb costs at most `maxDecodedBytes` of memory.
    static func inflate(_ input: UnsafeRawBufferPointer, mode: Mode, maxDecodedBytes: Int) throws(CompressionError) -> [UInt8] {
        let format = mode.format
        precondition(maxDecodedBytes >= 0, "maxDecodedBytes must not be negative")
        guard input.count <= Int(UInt32.max) else {
            throw .corrupt(format: format, detail: "input larger than 4 GiB")
        }
        if input.isEmpty { throw .corrupt(format: format, detail: "empty input") }

        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer {
            inflateEnd(stream)
            stream.deinitialize(count: 1)
            stream.deallocate()
        }
        guard czlib_inflateInit2(stream, mode.windowBits) == Z_OK else {
            // Only fails on allocation failure or a broken zlib build.
            throw .corrupt(format: format, detail: "zlib inflateInit2 failed")
        }

        let hardCap = maxDecodedBytes == Int.max ? Int.max : maxDecodedBytes + 1
        var out: [UInt8] = []
        var produced = 0
        var consumed = 0
        var members = 0
        let base = input.baseAddress!
        while true {
            if produced == out.count {
                guard out.count < hardCap else {
                    throw .decodedSizeExceedsLimit(format: format, limit: maxDecodedBytes, declared: nil)
                }
                let want = Swift.max(64 * 1024, Swift.max(out.count, input.count * 4))
                let grow = Swift.min(want, hardCap - out.count, Int(UInt32.max))
                out += [UInt8](repeating: 0, count: grow)
            }
            let space = out.count - produced
            stream.pointee.next_in = UnsafeMutablePointer(mutating: (base + consumed).assumingMemoryBound(to: Bytef.self))
            stream.pointee.avail_in = UInt32(input.count - consumed)
            let rc: Int32 = out.withUnsafeMutableBytes { ob in
                stream.pointee.next_out = (ob.baseAddress! + produced).assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = UInt32(Swift.min(space, Int(UInt32.max)))
                return CZlib.inflate(stream, Z_NO_FLUSH)
            }
            let readNow = input.count - consumed - Int(stream.pointee.avail_in)
            let wroteNow = Swift.min(space, Int(UInt32.max)) - Int(stream.pointee.avail_out)
            consumed += readNow
            produced += wroteNow
            if produced > maxDecodedBytes {
                throw .decodedSizeExceedsLimit(format: format, limit: maxDecodedBytes, declared: nil)
            }
            switch rc {
            case Z_OK:
                continue
            case Z_STREAM_END:
                members += 1
                if consumed == input.count {
                    out.removeLast(out.count - produced)
                    return out
                }
                // Another gzip member may follow; anything else is trailing garbage.
                if mode == .gzip, input.count - consumed >= 2, input[consumed] == 0x1F, input[consumed + 1] == 0x8B {
                    guard inflateReset(stream) == Z_OK else {
                        throw .corrupt(format: format, detail: "zlib inflateReset failed")
                    }
                    continue
                }
                throw .corrupt(format: format, detail: "\(input.count - consumed) trailing bytes after the end of the stream at offset \(consumed)")
            case Z_BUF_ERROR:
                if stream.pointee.avail_out != 0 && stream.pointee.avail_in == 0 {
                    throw .corrupt(format: format, detail: "truncated: input ended at offset \(consumed) before the end of the stream")
                }
                continue  // out of output space: grow and retry.
            case Z_NEED_DICT:
                throw .corrupt(format: format, detail: "stream requires a preset dictionary")
            case Z_DATA_ERROR:
                let msg = stream.pointee.msg.map { String(cString: $0) } ?? "invalid data"
                throw .corrupt(format: format, detail: "\(msg) (near input offset \(consumed))")
            case Z_MEM_ERROR:
                throw .corrupt(format: format, detail: "zlib ran out of memory")
            default:
                throw .corrupt(format: format, detail: "zlib inflate returned \(rc)")
            }
        }
    }

    static func deflate(_ input: UnsafeRawBufferPointer, windowBits: Int32, level: Int32) -> [UInt8] {
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer {
            deflateEnd(stream)
            stream.deinitialize(count: 1)
            stream.deallocate()
        }
        precondition(
            czlib_deflateInit2(stream, level, Z_DEFLATED, windowBits, 8, Z_DEFAULT_STRATEGY) == Z_OK,
            "zlib deflateInit2 failed")
        let bound = Int(deflateBound(stream, UInt(input.count))) + 32
        var empty: UInt8 = 0
        return withUnsafeMutablePointer(to: &empty) { emptyPtr in
            [UInt8](unsafeUninitializedCapacity: bound) { buf, initialized in
                stream.pointee.next_in = input.baseAddress.map {
                    UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: Bytef.self))
                } ?? emptyPtr
                stream.pointee.avail_in = UInt32(input.count)
                stream.pointee.next_out = UnsafeMutableRawPointer(buf.baseAddress!).assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = UInt32(bound)
                let rc = CZlib.deflate(stream, Z_FINISH)
                precondition(rc == Z_STREAM_END, "zlib deflate with deflateBound output returned \(rc)")
                initialized = bound - Int(stream.pointee.avail_out)
            }
        }
    }
}
