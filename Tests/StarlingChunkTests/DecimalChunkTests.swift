import Foundation
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

    @Test func everyValueMode() throws {
        let ts = regularTimestamps(240)
        #expect(header(try roundTrip(series(ts) { _ in 123.45 })).mode == 0)
        var rng = SeededRandom(seed: 7)
        var walk = 4500
        let gauge = try roundTrip(series(ts) { _ in
            walk += rng.int(-5...5)
            return Double(walk) / 100
        })
        #expect(header(gauge).mode == 1)
        // A counter at a steady rate: its deltas against their median.
        var ticks = 1_000_000
        let counter = try roundTrip(series(ts) { _ in
            ticks += 1400 + rng.int(-3...3)
            return Double(ticks) / 100
        })
        #expect(header(counter).mode == 3)
        // A counter whose rate keeps growing: delta of delta.
        var rate = 100
        let accelerating = try roundTrip(series(ts) { _ in
            rate += 50 + rng.int(-1...1)
            ticks += rate
            return Double(ticks)
        })
        #expect(header(accelerating).mode == 2)
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

    /// Codes spread evenly over 0...M take one range, in truncated binary; this walks M over
    /// powers of two and their neighbours, as far as mantissas stay below 2^53, and checks every
    /// chunk round-trips and is about as small as the range allows.
    @Test func oneRangeCodesEveryRangeWidth() throws {
        var rng = SeededRandom(seed: 12)
        var ranges: [Int64] = [0, 1, 2, 3, 5, 6, 7]
        for bits in 3...44 { ranges += [(1 << bits) - 1, 1 << bits, (1 << bits) + 1, (1 << bits) + (1 << (bits - 1))] }
        for r in ranges {
            // Deltas uniform in 1000 + 0...r, both ends present, so the codes cover the range.
            var v: Int64 = 0
            let deltas = (0..<239).map { i -> Int64 in i == 0 ? 1000 : i == 1 ? 1000 + r : 1000 + Int64.random(in: 0...r, using: &rng) }
            let samples = series(regularTimestamps(240)) { i in
                if i > 0 { v += deltas[i - 1] }
                return Double(v)
            }
            let chunk = try roundTrip(samples)
            let coding = GoldenTests.valueCoding(chunk.bytes)
            if r >= 2 { #expect(coding.oneRange, "range \(r)") }
            // At most 30 header bytes; the first timestamp delta takes 25 bits and every other
            // one bit; each value within 1.1 bits of log2 of the ~r + 2 codes.
            let bound = 30 * 8 + 25 + 238 + Int((239 * (log2(Double(r) + 2) + 1.1)).rounded(.up))
            #expect(chunk.bytes.count * 8 <= bound, "range \(r): \(chunk.bytes.count * 8) bits, bound \(bound)")
        }
    }

    /// Codes of 56 bits and more, which no encoder run on real mantissas writes but a damaged or
    /// hostile chunk may hold, take the decoder's two-load path. Hand-made: two samples, delta
    /// mode, one range with M = 3 × 2^59 - 1 (k = 60, u = 2^59), the second value's code 2^60
    /// written as 2^60 + 2^59 in 61 bits; it decodes to a mantissa of 2^59.
    @Test func oneRangeCodesBeyondOneLoad() throws {
        var bytes: [UInt8] = [0x02, 0x00, 0x02, 0x00, 0x00, 0x01, 0x00, 0x01, 0x80]
        var m: UInt64 = 3 << 59 - 1
        while m >= 0x80 {
            bytes.append(UInt8(m & 0x7F) | 0x80)
            m >>= 7
        }
        bytes.append(UInt8(m))
        // Bit stream: timestamp dod 15,000 as `11110` + 20 bits, then the 61-bit code.
        var bits: [Bool] = [true, true, true, true, false]
        bits += (0..<20).reversed().map { 15_000 >> $0 & 1 == 1 }
        let code: UInt64 = 1 << 60 + 1 << 59
        bits += (0..<61).reversed().map { code >> UInt64($0) & 1 == 1 }
        for start in stride(from: 0, to: bits.count, by: 8) {
            var byte: UInt8 = 0
            for i in 0..<8 { byte = byte << 1 | (start + i < bits.count && bits[start + i] ? 1 : 0) }
            bytes.append(byte)
        }
        let samples = try decodeChunk(bytes)
        expectBitwiseEqual(samples, [Sample(0, 0), Sample(15_000, Double(1 << 59 as Int64))], "61-bit code")
        // A largest code of 2^63 or more is refused.
        var bad: [UInt8] = [0x02, 0x00, 0x02, 0x00, 0x00, 0x01, 0x00, 0x01, 0x80]
        bad += [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]  // 2^63
        bad += [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        #expect(throws: DecodeError.self) { try decodeChunk(bad) }
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
