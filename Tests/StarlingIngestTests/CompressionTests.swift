import StarlingCompression
import StarlingTestKit
import Testing

private func randomBytes(_ n: Int, compressible: Bool, seed: UInt64) -> [UInt8] {
    var rng = SeededRandom(seed: seed)
    if !compressible { return (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) } }
    let words = ["cpu", "host=", "node-", "1700000000", " usage_idle=", "\n", "99.5"].map { Array($0.utf8) }
    var out: [UInt8] = []
    while out.count < n { out += words.randomElement(using: &rng)! }
    return Array(out.prefix(n))
}

@Suite("Compression")
struct CompressionTests {
    static let sizes = [0, 1, 7, 100, 4096, 70_000, 1_000_003]

    @Test(arguments: sizes)
    func snappyRoundTrip(size: Int) throws {
        for compressible in [true, false] {
            let input = randomBytes(size, compressible: compressible, seed: UInt64(size))
            let enc = Snappy.encode(input)
            #expect(try Snappy.decode(enc, maxDecodedBytes: size) == input)
            if size > 0 {
                #expect(throws: CompressionError.decodedSizeExceedsLimit(format: .snappy, limit: size - 1, declared: size)) {
                    try Snappy.decode(enc, maxDecodedBytes: size - 1)
                }
            }
        }
    }

    @Test(arguments: sizes)
    func lz4RoundTrip(size: Int) throws {
        for compressible in [true, false] {
            let input = randomBytes(size, compressible: compressible, seed: UInt64(size) &+ 1)
            let block = LZ4Block.compress(input)
            #expect(try LZ4Block.decompress(block, decodedSize: size) == input)
            let prefixed = LZ4Block.compressSizePrefixed(input)
            #expect(try LZ4Block.decompressSizePrefixed(prefixed, maxDecodedBytes: size) == input)
            if size > 0 {
                #expect(throws: CompressionError.self) { try LZ4Block.decompress(block, decodedSize: size - 1) }
                #expect(throws: CompressionError.decodedSizeExceedsLimit(format: .lz4, limit: size - 1, declared: size)) {
                    try LZ4Block.decompressSizePrefixed(prefixed, maxDecodedBytes: size - 1)
                }
            }
        }
    }

    @Test(arguments: sizes)
    func gzipAndDeflateRoundTrip(size: Int) throws {
        for compressible in [true, false] {
            let input = randomBytes(size, compressible: compressible, seed: UInt64(size) &+ 2)
            #expect(try Gzip.decode(Gzip.encode(input), maxDecodedBytes: size) == input)
            #expect(try Deflate.decode(Deflate.encode(input), maxDecodedBytes: size) == input)
            #expect(try Deflate.decode(Deflate.encode(input, zlibWrapped: false), maxDecodedBytes: size) == input)
            if size > 0 {
                #expect(throws: CompressionError.decodedSizeExceedsLimit(format: .gzip, limit: size - 1, declared: nil)) {
                    try Gzip.decode(Gzip.encode(input), maxDecodedBytes: size - 1)
                }
            }
        }
    }

    @Test func concatenatedGzipMembersDecodeAsOneBody() throws {
        let a = Array("cpu v=1\n".utf8), b = Array("mem v=2\n".utf8)
        #expect(try Gzip.decode(Gzip.encode(a) + Gzip.encode(b), maxDecodedBytes: 100) == a + b)
        #expect(throws: CompressionError.self) { try Gzip.decode(Gzip.encode(a) + [1, 2, 3], maxDecodedBytes: 100) }
    }

    @Test func contentEncodingHeader() throws {
        #expect(try ContentEncoding(headerValue: nil) == .identity)
        #expect(try ContentEncoding(headerValue: " GZIP ") == .gzip)
        #expect(try ContentEncoding(headerValue: "x-gzip") == .gzip)
        #expect(try ContentEncoding(headerValue: "snappy") == .snappy)
        #expect(throws: CompressionError.unsupportedEncoding("br")) { try ContentEncoding(headerValue: "br") }
        let body = Array("hello".utf8)
        #expect(try ContentEncoding.gzip.decode(Gzip.encode(body), maxDecodedBytes: 5) == body)
        #expect(throws: CompressionError.decodedSizeExceedsLimit(format: .identity, limit: 4, declared: 5)) {
            try ContentEncoding.identity.decode(body, maxDecodedBytes: 4)
        }
    }

    /// A few hundred KiB of gzip that inflates to 256 MiB is cut off at the limit.
    @Test func gzipBombIsRejectedAtTheLimit() throws {
        let chunk = [UInt8](repeating: 0, count: 1 << 20)
        var member = Gzip.encode(chunk, level: 9)
        // 256 concatenated members of 1 MiB of zeros each: ~260 KiB in, 256 MiB out.
        var bomb: [UInt8] = []
        for _ in 0..<256 { bomb += member }
        #expect(bomb.count < 1 << 20)
        #expect(throws: CompressionError.decodedSizeExceedsLimit(format: .gzip, limit: 4 << 20, declared: nil)) {
            try Gzip.decode(bomb, maxDecodedBytes: 4 << 20)
        }
        member = Deflate.encode([UInt8](repeating: 7, count: 64 << 20), level: 9)
        #expect(throws: CompressionError.decodedSizeExceedsLimit(format: .deflate, limit: 1 << 20, declared: nil)) {
            try Deflate.decode(member, maxDecodedBytes: 1 << 20)
        }
    }

    /// A snappy block header claiming 4 GiB is rejected before any allocation.
    @Test func snappyBombIsRejectedFromItsHeader() {
        let hostile: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x00]  // uvarint 4 GiB - 1, then garbage
        #expect(throws: CompressionError.decodedSizeExceedsLimit(format: .snappy, limit: 64 << 20, declared: 4_294_967_295)) {
            try Snappy.decode(hostile, maxDecodedBytes: 64 << 20)
        }
        let prefixed: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x00]
        #expect(throws: CompressionError.decodedSizeExceedsLimit(format: .lz4, limit: 1 << 20, declared: 4_294_967_295)) { try LZ4Block.decompressSizePrefixed(prefixed, maxDecodedBytes: 1 << 20) }
    }

    @Test func corruptInputsThrowAndNeverCrash() {
        var rng = SeededRandom(seed: 5)
        let input = randomBytes(20_000, compressible: true, seed: 9)
        let encoded: [(String, [UInt8], ([UInt8]) throws -> [UInt8])] = [
            ("snappy", Snappy.encode(input), { try Snappy.decode($0, maxDecodedBytes: 1 << 20) }),
            ("gzip", Gzip.encode(input), { try Gzip.decode($0, maxDecodedBytes: 1 << 20) }),
            ("deflate", Deflate.encode(input), { try Deflate.decode($0, maxDecodedBytes: 1 << 20) }),
            ("lz4", LZ4Block.compressSizePrefixed(input), { try LZ4Block.decompressSizePrefixed($0, maxDecodedBytes: 1 << 20) }),
        ]
        for (name, enc, decode) in encoded {
            // Truncations.
            for cut in [0, 1, 2, enc.count / 2, enc.count - 1] {
                #expect(throws: CompressionError.self, "\(name) cut at \(cut)") { try decode(Array(enc.prefix(cut))) }
            }
            // Random corruption: must either throw or return something; never crash or over-allocate.
            for _ in 0..<300 {
                var b = enc
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                if let out = try? decode(b) { #expect(out.count <= 1 << 20) }
            }
            // Pure garbage.
            for _ in 0..<100 {
                let g = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if let out = try? decode(g) { #expect(out.count <= 1 << 20) }
            }
        }
    }
}
