import StarlingChunk
import StarlingCore
import StarlingTestKit
import Testing

@Suite struct XORChunkTests {
    /// Round trip through the appender (encoding 1), the best encoding, and validation.
    func roundTrip(_ samples: [Sample], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let chunk = xorChunk(samples)
        #expect(chunk.bytes.first == ChunkEncoding.xor.rawValue, sourceLocation: sourceLocation)
        expectBitwiseEqual(try decodeChunk(chunk.bytes), samples, "\(what) xor", sourceLocation: sourceLocation)
        #expect(try ChunkCodec.validate(chunk) == samples.count, sourceLocation: sourceLocation)
        #expect(try ChunkCodec.sampleCount(chunk.bytes) == samples.count, sourceLocation: sourceLocation)
        for best in ChunkEncoder.encode(samples, maxSamplesPerChunk: 240) {
            try ChunkCodec.validate(best)
        }
        let merged = try SeriesSampleIterator.collect(chunks: ChunkEncoder.encode(samples))
        expectBitwiseEqual(merged, samples, "\(what) best", sourceLocation: sourceLocation)
    }

    @Test func constantSeries() throws {
        try roundTrip(series(regularTimestamps(240)) { _ in 42.5 }, "constant")
        try roundTrip(series(regularTimestamps(240)) { _ in 0 }, "zero")
    }

    @Test func jitteredSeries() throws {
        var rng = SeededRandom(seed: 1)
        var t: Int64 = 1_700_000_000_000
        var ts: [Int64] = []
        for _ in 0..<240 {
            t += 15_000 + Int64(rng.int(-40...40))
            ts.append(t)
        }
        try roundTrip(series(ts) { Double($0) * 0.1 + rng.unit() }, "jittered")
    }

    @Test func gappySeries() throws {
        var rng = SeededRandom(seed: 2)
        var t: Int64 = 1_700_000_000_000
        var ts: [Int64] = []
        for _ in 0..<200 {
            t += rng.chance(0.1) ? Int64(rng.int(1...40)) * 15_000 : 15_000
            ts.append(t)
        }
        try roundTrip(series(ts) { Double($0 % 7) }, "gappy")
    }

    @Test func hugeGapsAndExtremeTimestamps() throws {
        try roundTrip([Sample(.min, 1), Sample(.max, 2)], "min to max")
        try roundTrip([Sample(.min, 1), Sample(0, 2), Sample(.max, 3)], "min, 0, max")
        try roundTrip([Sample(-1, 1), Sample(Int64.max - 1, 1), Sample(.max, 1)], "wrapping deltas")
        try roundTrip(series([0, 1, 2, 1 << 40, (1 << 40) + 1, 1 << 62]) { Double($0) }, "huge gaps")
    }

    @Test func negativeTimestamps() throws {
        try roundTrip(series(regularTimestamps(100, start: -10_000_000, stepMs: 15_000)) { Double($0) }, "negative crossing zero")
        try roundTrip(series(regularTimestamps(50, start: -1_000_000_000_000, stepMs: 1)) { -Double($0) }, "negative 1 ms")
    }

    @Test func counterReset() throws {
        var v = 1_000_000.0
        let samples = series(regularTimestamps(240)) { i in
            v = i == 120 ? 3 : v + Double(i % 13)
            return v
        }
        try roundTrip(samples, "counter reset")
    }

    @Test func randomFloats() throws {
        var rng = SeededRandom(seed: 3)
        let samples = series(regularTimestamps(240)) { _ in Double(bitPattern: rng.next()) }
        try roundTrip(samples, "random bits")
    }

    @Test func specialValuesBitwise() throws {
        let specials: [Double] = [
            StaleMarker.value, .nan, -.nan, Double(bitPattern: 0x7FF8_0000_DEAD_BEEF), Double(bitPattern: 0xFFF0_0000_0000_0001),
            .infinity, -.infinity, 0.0, -0.0, .leastNonzeroMagnitude, -.leastNonzeroMagnitude,
            Double(bitPattern: 0x000F_FFFF_FFFF_FFFF), .leastNormalMagnitude, .greatestFiniteMagnitude,
            -.greatestFiniteMagnitude, 1, -1, 0.1, 1e-300,
        ]
        // Every ordered pair, so each value is XORed against every other.
        var values: [Double] = []
        for a in specials { for b in specials { values += [a, b] } }
        try roundTrip(series(regularTimestamps(values.count, stepMs: 1_000)) { values[$0] }, "special pairs")
        for v in specials {
            try roundTrip(series(regularTimestamps(3)) { _ in v }, "constant \(v.bitPattern)")
        }
    }

    /// Each timestamp bucket at and around its bounds: 8 consecutive delta-of-deltas equal to
    /// `d` must cost exactly 8 × (bucket bits + 1 value bit).
    @Test(arguments: [
        (Int64(0), 1),
        (-1, 9), (1, 9), (-64, 9), (63, 9),
        (-65, 12), (64, 12), (-256, 12), (255, 12),
        (-257, 16), (256, 16), (-2048, 16), (2047, 16),
        (-2049, 25), (2048, 25), (-524_288, 25), (524_287, 25),
        (-524_289, 69), (524_288, 69), (1 << 40, 69), (-(1 << 40), 69),
    ])
    func timestampBuckets(dod: Int64, bits: Int) throws {
        let first: Int64 = 1 << 44  // first delta: escape bucket, large enough to keep deltas > 0
        let t0: Int64 = 1_700_000_000_000
        var ts = [t0, t0 + first]
        for j in 1...8 { ts.append(ts.last! + first + Int64(j) * dod) }
        let samples = series(ts) { _ in 1.0 }
        let chunk = xorChunk(samples)
        var varint: [UInt8] = []
        varint.appendVarint(t0)
        let headerBits = 24 + 8 * varint.count
        let totalBits = headerBits + 64 + (69 + 1) + 8 * (bits + 1)
        #expect(chunk.bytes.count == (totalBits + 7) / 8, "dod \(dod)")
        expectBitwiseEqual(try decodeChunk(chunk.bytes), samples, "dod \(dod)")
        try ChunkCodec.validate(chunk)
    }

    @Test func appenderStateAndSnapshots() throws {
        var a = XORAppender()
        #expect(a.count == 0)
        #expect(a.minTimeMs > a.maxTimeMs)
        #expect(a.bytes == [1, 0, 0])
        #expect(try ChunkCodec.validate(a.chunk) == 0)
        #expect(!a.chunk.overlaps(0, 1_000_000))
        var rng = SeededRandom(seed: 4)
        var want: [Sample] = []
        var t: Int64 = -5_000
        for _ in 0..<300 {
            t += Int64(rng.int(1...30_000))
            let v = rng.chance(0.3) ? Double(rng.int(0...9)) : Double(bitPattern: rng.next())
            let before = a.bytes  // a snapshot must stay intact while the appender goes on
            a.append(t, v)
            want.append(Sample(t, v))
            #expect(a.count == want.count)
            #expect(a.minTimeMs == want[0].timestampMs)
            #expect(a.maxTimeMs == t)
            #expect(a.lastValue.bitPattern == v.bitPattern)
            if want.count % 37 == 0 {
                expectBitwiseEqual(try decodeChunk(before), Array(want.dropLast()), "snapshot")
                expectBitwiseEqual(try decodeChunk(a.bytes), want, "current")
                try ChunkCodec.validate(a.chunk)
            }
        }
    }

    @Test func resumeAppendingAtEveryLength() throws {
        var rng = SeededRandom(seed: 5)
        var t: Int64 = 1_000
        let samples = (0..<60).map { i -> Sample in
            t += Int64(rng.int(1...20_000))
            let v = i % 5 == 0 ? StaleMarker.value : (i % 3 == 0 ? Double(i) : Double(bitPattern: rng.next()))
            return Sample(t, v)
        }
        for cut in 0...samples.count {
            let prefix = xorChunk(Array(samples[..<cut]))
            var resumed = try XORAppender(resuming: prefix.bytes)
            #expect(resumed.count == cut)
            for s in samples[cut...] { resumed.append(s.timestampMs, s.value) }
            // Resuming continues the very same bit stream as an uninterrupted appender.
            #expect(resumed.bytes == xorChunk(samples).bytes, "cut at \(cut)")
            #expect(resumed.minTimeMs == samples[0].timestampMs)
            #expect(resumed.maxTimeMs == samples.last!.timestampMs)
        }
    }

    @Test func resumeFromDecimalChunkTranscodes() throws {
        let samples = series(regularTimestamps(50)) { Double($0 * 3) / 100 }
        let decimal = try #require(ChunkEncoder.encode(samples[...], as: .decimal))
        var a = try XORAppender(resuming: decimal.bytes)
        #expect(a.bytes.first == ChunkEncoding.xor.rawValue)
        a.append(samples.last!.timestampMs + 15_000, 7.5)
        expectBitwiseEqual(try decodeChunk(a.bytes), samples + [Sample(samples.last!.timestampMs + 15_000, 7.5)], "transcoded")
    }

    @Test func resumeRejectsDamagedChunks() {
        let chunk = xorChunk(series(regularTimestamps(20)) { Double($0) * 1.5 })
        #expect(throws: DecodeError.self) { try XORAppender(resuming: Array(chunk.bytes.dropLast())) }
        #expect(throws: DecodeError.self) { try XORAppender(resuming: []) }
        #expect(throws: DecodeError.self) { try XORAppender(resuming: [9, 0, 0]) }
    }

    @Test func closedPicksTheSmallestEncoding() throws {
        var a = XORAppender()
        for (i, t) in regularTimestamps(240).enumerated() { a.append(t, Double(i * 7 % 50) / 10) }
        let closed = a.closed()
        #expect(closed.bytes.first == ChunkEncoding.decimal.rawValue)
        #expect(closed.bytes.count < a.bytes.count)
        #expect(closed.minTimeMs == a.minTimeMs && closed.maxTimeMs == a.maxTimeMs)
        expectBitwiseEqual(try decodeChunk(closed.bytes), try decodeChunk(a.bytes), "closed")

        var f = XORAppender()
        var rng = SeededRandom(seed: 6)
        for t in regularTimestamps(100) { f.append(t, rng.unit()) }
        #expect(f.closed() == f.chunk)
        #expect(XORAppender().closed() == XORAppender().chunk)
    }

    @Test func fullChunk() {
        var a = XORAppender(expectedSamples: 0)
        for i in 0..<ChunkCodec.maxSamplesPerChunk { a.append(Int64(i), 1) }
        #expect(a.isFull)
        #expect(a.count == 65_535)
        #expect(a.bytes[1] == 0xFF && a.bytes[2] == 0xFF)
        #expect((try? ChunkCodec.validate(a.chunk)) == 65_535)
    }
}
