import StarlingChunk
import StarlingCore
import StarlingTestKit
import Testing

@Suite struct DecimalChunkTests {
    func decimal(_ samples: [Sample]) -> EncodedChunk? { ChunkEncoder.encode(samples[...], as: .decimal) }

    /// Header fields after the count: exponent and value mode (first timestamp varint skipped).
    func header(_ chunk: EncodedChunk) -> (exponent: Int8, mode: UInt8) {
        var i = 3
        while chunk.bytes[i] & 0x80 != 0 { i += 1 }
        return (Int8(bitPattern: chunk.bytes[i + 1]), chunk.bytes[i + 2])
    }

    func roundTrip(_ samples: [Sample], sourceLocation: SourceLocation = #_sourceLocation) throws -> EncodedChunk {
        let chunk = try #require(decimal(samples), sourceLocation: sourceLocation)
        #expect(chunk.bytes.first == ChunkEncoding.decimal.rawValue, sourceLocation: sourceLocation)
        expectBitwiseEqual(try decodeChunk(chunk.bytes), samples, "decimal", sourceLocation: sourceLocation)
        #expect(try ChunkCodec.validate(chunk) == samples.count, sourceLocation: sourceLocation)
        return chunk
    }

    @Test func exponentIsTheSmallestThatRoundTrips() throws {
        let ts = regularTimestamps(4)
        #expect(header(try roundTrip(series(ts) { Double($0 * 1000) })).exponent == 0)
        #expect(header(try roundTrip(series(ts) { [45.27, 45.3, 45, 44.99][$0] })).exponent == 2)
        #expect(header(try roundTrip(series(ts) { [0.5, 1, 1.5, 2][$0] })).exponent == 1)
        #expect(header(try roundTrip(series(ts) { [1e-9, 2e-9, 3.5e-9, 0][$0] })).exponent == 10)
        #expect(header(try roundTrip(series(ts) { [-1.25, 3.5, -0.75, 100][$0] })).exponent == 2)
        // Integers beyond 2^53 with trailing zeros take a negative exponent.
        let big = try roundTrip(series(ts) { [1e20, 2e20, 1.5e21, 3e22][$0] })
        #expect(header(big).exponent < 0)
    }

    @Test func constantDeltaAndDeltaOfDeltaModes() throws {
        let ts = regularTimestamps(240)
        #expect(header(try roundTrip(series(ts) { _ in 123.45 })).mode == 0)
        var rng = SeededRandom(seed: 7)
        var walk = 4500
        let gauge = try roundTrip(series(ts) { _ in
            walk += rng.int(-5...5)
            return Double(walk) / 100
        })
        #expect(header(gauge).mode == 1)
        var ticks = 1_000_000
        let counter = try roundTrip(series(ts) { _ in
            ticks += 1400 + rng.int(-3...3)
            return Double(ticks) / 100
        })
        #expect(header(counter).mode == 2)
        // A single sample is always the constant mode.
        #expect(header(try roundTrip([Sample(5, 0.25)])).mode == 0)
    }

    @Test func commonDivisorOfDifferences() throws {
        var rng = SeededRandom(seed: 8)
        var pages = 1_000_000
        let samples = series(regularTimestamps(240)) { _ in
            pages += rng.int(-100...100)
            return Double(pages * 4096)
        }
        let chunk = try roundTrip(samples)
        // 4096 divides every delta: ~8 bits per value plus the timestamp bit, not 20+.
        #expect(chunk.bytes.count < 240 * 11 / 8)
    }

    @Test func negativeAndMixedSignValues() throws {
        var rng = SeededRandom(seed: 9)
        var v = 0
        _ = try roundTrip(series(regularTimestamps(240)) { _ in
            v += rng.int(-1000...1000)
            return Double(v) / 1000
        })
        _ = try roundTrip(series(regularTimestamps(3)) { [-9_007_199_254_740_992, 9_007_199_254_740_992, 0][$0] })
    }

    @Test func refusesValuesThatDoNotRoundTrip() {
        let ts = regularTimestamps(3)
        for bad in [-0.0, .nan, StaleMarker.value, .infinity, -.infinity, 0.1 + 0.2, 1.0 / 3, 9_007_199_254_740_993.0 * 3,
                    .leastNonzeroMagnitude, .greatestFiniteMagnitude, 1e-30] {
            #expect(decimal(series(ts) { [1, bad, 2][$0] }) == nil, "value bits \(String(bad.bitPattern, radix: 16))")
        }
        // The best encoding still holds them, bit for bit.
        let samples = series(ts) { [1, -0.0, 2][$0] }
        let best = ChunkEncoder.encode(samples)
        #expect(best.count == 1 && best[0].bytes[0] == ChunkEncoding.xor.rawValue)
        expectBitwiseEqual(try! decodeChunk(best[0].bytes), samples, "-0.0 fallback")
    }

    @Test func extremeMantissaJumpsUseWideBuckets() throws {
        let samples = series(regularTimestamps(6)) { [0, 9_007_199_254_740_992, -9_007_199_254_740_992, 1, 0, 9_007_199_254_740_992][$0] }
        _ = try roundTrip(samples)
    }

    @Test func smallerThanXORForDecimalData() throws {
        var rng = SeededRandom(seed: 10)
        for kind in [NodeKind.integerCounter, .cpuSeconds, .gauge, .byteGauge] {
            let samples = nodeExporterSeries(kind, samples: 240, rng: &rng)
            let dec = try roundTrip(samples)
            let xor = xorChunk(samples)
            #expect(dec.bytes.count < xor.bytes.count, "\(kind)")
            #expect(ChunkEncoder.encodeChunk(samples[...]) == dec, "\(kind)")
        }
    }

    @Test func encoderCutsBalancedChunks() throws {
        let samples = series(regularTimestamps(500)) { Double($0) }
        let chunks = ChunkEncoder.encode(samples, maxSamplesPerChunk: 240)
        #expect(try chunks.map { try ChunkCodec.sampleCount($0.bytes) } == [166, 167, 167])
        for c in chunks { try ChunkCodec.validate(c) }
        expectBitwiseEqual(try SeriesSampleIterator.collect(chunks: chunks), samples, "balanced")
        #expect(ChunkEncoder.encode([]).isEmpty)
        let big = ChunkEncoder.encode(samples, maxSamplesPerChunk: 1_000)
        #expect(big.count == 1)
    }
}
