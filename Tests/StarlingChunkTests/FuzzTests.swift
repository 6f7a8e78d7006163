import StarlingChunk
import StarlingCore
import StarlingTestKit
import Testing

/// Seeded fuzzing. Every seed replays exactly; a failure message names its seed and round.
@Suite struct FuzzTests {
    /// Random series shaped to reach every code path: timestamp steps from 1 ms to whole
    /// Int64 ranges, values from a few decimals to arbitrary bit patterns.
    static func randomSamples(_ rng: inout SeededRandom) -> [Sample] {
        let n = rng.int(1...300)
        var t = Int64(bitPattern: rng.next()) >> rng.int(0...63)
        let stepStyle = rng.int(0...3)
        let valueStyle = rng.int(0...4)
        var out: [Sample] = []
        var units = rng.int(-1000...1000)
        let scale = [1.0, 10, 100, 1000][rng.int(0...3)]
        for i in 0..<n {
            if i > 0 {
                let step: Int64 = switch stepStyle {
                case 0: 15_000 + (rng.chance(0.1) ? Int64(rng.int(-5...5)) : 0)
                case 1: Int64(rng.int(1...100))
                case 2: Int64(rng.next() >> UInt64(rng.int(1...63)))
                default: Int64(rng.int(1...3_600_000))
                }
                let (next, overflow) = t.addingReportingOverflow(max(1, step))
                if overflow { break }
                t = next
            }
            let v: Double = switch valueStyle {
            case 0: Double(units) / scale
            case 1: Double(bitPattern: rng.next())
            case 2: [StaleMarker.value, .nan, .infinity, -.infinity, -0.0, 0, .leastNonzeroMagnitude, 1][rng.int(0...7)]
            case 3: Double(rng.int(0...1 << 40))
            default: rng.unit() * 100
            }
            units += rng.int(-50...50)
            out.append(Sample(t, v))
        }
        return out
    }

    @Test(arguments: 0..<8)
    func encodeDecodeEquality(seed: Int) throws {
        var rng = SeededRandom(seed: UInt64(seed) &* 0x1234_5678_9ABC)
        for round in 0..<60 {
            let samples = Self.randomSamples(&rng)
            let xor = xorChunk(samples)
            expectBitwiseEqual(try decodeChunk(xor.bytes), samples, "seed \(seed) round \(round) xor")
            try ChunkCodec.validate(xor)
            let best = ChunkEncoder.encodeChunk(samples[...])
            if let dec = ChunkEncoder.encode(samples[...], as: .decimal) {
                expectBitwiseEqual(try decodeChunk(dec.bytes), samples, "seed \(seed) round \(round) decimal")
                try ChunkCodec.validate(dec)
                // The smaller wins; equal sizes keep XOR (appendable).
                #expect(best == (dec.bytes.count < xor.bytes.count ? dec : xor), "seed \(seed) round \(round)")
            } else {
                #expect(best == xor)
            }
            let chunks = ChunkEncoder.encode(samples, maxSamplesPerChunk: rng.int(1...300))
            expectBitwiseEqual(try SeriesSampleIterator.collect(chunks: chunks), samples, "seed \(seed) round \(round) best")
        }
    }

    /// Decodes a chunk as every reader would; must only ever return or throw `DecodeError`.
    static func exercise(_ bytes: [UInt8]) {
        var decoded = 0
        if var it = try? ChunkIterator(bytes) {
            while (try? it.next()) == true { decoded += 1 }
            #expect(decoded <= it.count)
        }
        _ = try? ChunkCodec.validate(EncodedChunk(minTimeMs: .min, maxTimeMs: .max, bytes: bytes))
        _ = try? SeriesSampleIterator.collect(chunks: [EncodedChunk(minTimeMs: .min, maxTimeMs: .max, bytes: bytes)])
        _ = try? XORAppender(resuming: bytes)
    }

    @Test func everyTruncationThrows() throws {
        var rng = SeededRandom(seed: 99)
        for round in 0..<40 {
            // Short series keep the quadratic cost of trying every prefix small.
            let samples = Array(Self.randomSamples(&rng).prefix(40))
            for chunk in [xorChunk(samples), ChunkEncoder.encodeChunk(samples[...])] {
                for cut in 0..<chunk.bytes.count {
                    let prefix = Array(chunk.bytes[..<cut])
                    #expect(throws: DecodeError.self, "round \(round) cut \(cut) of \(chunk.bytes.count)") {
                        var it = try ChunkIterator(prefix)
                        while try it.next() {}
                    }
                    Self.exercise(prefix)
                }
            }
        }
    }

    @Test(arguments: 0..<4)
    func mutationsNeverCrash(seed: Int) {
        var rng = SeededRandom(seed: 7_000 + UInt64(seed))
        for _ in 0..<250 {
            let samples = Self.randomSamples(&rng)
            let base = rng.chance(0.5) ? xorChunk(samples).bytes : ChunkEncoder.encodeChunk(samples[...]).bytes
            for _ in 0..<8 {
                var bytes = base
                for _ in 0..<rng.int(1...4) {
                    switch rng.int(0...3) {
                    case 0: bytes[rng.int(0...bytes.count - 1)] ^= UInt8(1) << UInt8(rng.int(0...7))
                    case 1: bytes[rng.int(0...bytes.count - 1)] = UInt8(truncatingIfNeeded: rng.next())
                    case 2: bytes.removeLast(rng.int(0...bytes.count - 1))
                    default: bytes.append(UInt8(truncatingIfNeeded: rng.next()))
                    }
                    if bytes.isEmpty { bytes = [1] }
                }
                Self.exercise(bytes)
            }
        }
    }

    @Test func oversizedChunksAreRefusedBeforeDecoding() throws {
        let bytes: [UInt8] = [1, 0xFF, 0xFF, 0] + [UInt8](repeating: 0, count: ChunkCodec.maxChunkBytes)
        #expect(throws: DecodeError.malformed(context: "chunk of \(bytes.count) bytes exceeds the \(ChunkCodec.maxChunkBytes)-byte limit")) {
            try ChunkIterator(bytes)
        }
        // The largest chunk the appender can produce fits the limit.
        var a = XORAppender(expectedSamples: 0)
        var rng = SeededRandom(seed: 5)
        var t = Int64.min
        for _ in 0..<ChunkCodec.maxSamplesPerChunk {
            a.append(t, Double(bitPattern: rng.next()))
            t += 1 << 40
        }
        #expect(a.bytes.count <= ChunkCodec.maxChunkBytes)
        #expect(try ChunkCodec.validate(a.chunk) == ChunkCodec.maxSamplesPerChunk)
    }

    @Test func garbageNeverCrashes() {
        var rng = SeededRandom(seed: 4242)
        for _ in 0..<3_000 {
            var bytes = (0..<rng.int(0...64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if !bytes.isEmpty && rng.chance(0.8) { bytes[0] = UInt8(rng.int(1...2)) }
            if bytes.count > 2 && rng.chance(0.5) { bytes[1] = 0 }
            Self.exercise(bytes)
        }
        // Hand-made hostile headers.
        for bytes: [UInt8] in [
            [], [0], [3, 0, 1], [1], [1, 0], [1, 0, 1], [2, 0, 0], [2, 0, 1, 0], [2, 0, 1, 0, 23, 0, 0],
            [2, 0, 2, 0, 0, 1, 0, 0, 65, 0, 0, 0], [2, 0, 2, 0, 0, 3, 0], [2, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0],
            [1, 0xFF, 0xFF, 0] + [UInt8](repeating: 0xFF, count: 40),
            [1, 0, 2] + [UInt8](repeating: 0x80, count: 11),
        ] {
            Self.exercise(bytes)
            #expect(throws: DecodeError.self) {
                try ChunkCodec.validate(EncodedChunk(minTimeMs: 0, maxTimeMs: 0, bytes: bytes))
            }
        }
    }
}
