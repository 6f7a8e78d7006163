import Foundation
import StarlingChunk
import StarlingCore
import Testing

/// Golden bytes: small chunks of both encodings checked byte for byte against
/// `Fixtures/<name>.hex`, so the format cannot drift silently. A format change is a new encoding
/// (see `docs/formats/chunk.md`), never an edit of these files. An encoder change that picks
/// different parameters within the same format keeps the old file as a decode-only case (chunks
/// written by older versions stay readable) before regenerating:
/// `STARLING_UPDATE_FIXTURES=1 swift test --filter GoldenTests`.
@Suite struct GoldenTests {
    struct Case: Sendable, CustomStringConvertible {
        let name: String
        let encoding: ChunkEncoding
        let samples: [Sample]
        /// Written by an earlier encoder: must decode, need not be what the encoder writes now.
        var decodeOnly = false
        var description: String { name }
    }

    static let t0: Int64 = 1_700_000_000_000

    static func samples(_ ts: [Int64], _ vs: [Double]) -> [Sample] {
        precondition(ts.count == vs.count)
        return zip(ts, vs).map { Sample($0, $1) }
    }

    static let specialTimestamps: [Int64] = [-30_000, -15_000, -14_997, 0, 15_000, 1 << 40, (1 << 40) + 64]
    static let specialValues: [Double] = [
        StaleMarker.value, .infinity, -.infinity, -0.0, .leastNonzeroMagnitude, Double(bitPattern: 0x7FF8_0000_DEAD_BEEF), 0.1,
    ]
    static let gaugeTimestamps: [Int64] = [t0, t0 + 15_000, t0 + 30_003, t0 + 45_000, t0 + 60_000, t0 + 75_000]
    static let gaugeValues: [Double] = [45.27, 45.3, 45.25, 45.31, 45.31, 45.2]
    static let counterValues: [Double] = [12_345.67, 12_359.9, 12_374.12, 12_388.37, 12_402.6, 12_416.84]
    static let pageValues: [Double] = [4_096_000, 4_108_288, 4_087_808, 4_087_808, 4_136_960]
    /// A counter whose rate grows steadily: delta of delta.
    static let rampValues: [Double] = (0..<16).map { Double(1_000 + 5 * $0 * ($0 + 1)) }
    /// Mostly flat with rare large moves: peaked codes, which buckets hold in fewer bits than a range.
    static let stepValues: [Double] = [7, 7, 7, 7, 7, 7, 7, 7, 9_007, 9_007, 9_007, 9_007, 9_007, 9_007, 9_007, 9_008]
    /// One delta-of-delta in each timestamp bucket: 0, ±64, ±256, ±2048, ±2^19, escape.
    static let bucketTimestamps: [Int64] = timestamps(dods: [15_000, 0, 5, -70, 300, -2_000, 600_000, 1 << 33])

    static let cases: [Case] = [
        Case(name: "xor-empty", encoding: .xor, samples: []),
        Case(name: "xor-regular", encoding: .xor, samples: samples(regularTimestamps(6), [1.5, 1.5, 2.25, 1e10, 3, 3])),
        Case(name: "xor-special", encoding: .xor, samples: samples(specialTimestamps, specialValues)),
        Case(name: "xor-buckets", encoding: .xor, samples: samples(bucketTimestamps, bucketTimestamps.indices.map { Double($0) })),
        Case(name: "decimal-gauge", encoding: .decimal, samples: samples(gaugeTimestamps, gaugeValues)),
        Case(name: "decimal-counter", encoding: .decimal, samples: samples(regularTimestamps(6), counterValues)),
        Case(name: "decimal-constant", encoding: .decimal, samples: samples(regularTimestamps(4), [Double](repeating: 16_777_216_000, count: 4))),
        Case(name: "decimal-large", encoding: .decimal, samples: samples(regularTimestamps(3), [1e20, 2e20, 3.5e21])),
        Case(name: "decimal-pages", encoding: .decimal, samples: samples(regularTimestamps(5), pageValues)),
        Case(name: "decimal-ramp", encoding: .decimal, samples: samples(regularTimestamps(16), rampValues)),
        Case(name: "decimal-steps", encoding: .decimal, samples: samples(regularTimestamps(16), stepValues)),
        Case(name: "decimal-pages-sorted-widths", encoding: .decimal, samples: samples(regularTimestamps(5), pageValues), decodeOnly: true),
        Case(name: "decimal-gauge-before-ranges", encoding: .decimal, samples: samples(gaugeTimestamps, gaugeValues), decodeOnly: true),
        Case(name: "decimal-counter-before-ranges", encoding: .decimal, samples: samples(regularTimestamps(6), counterValues), decodeOnly: true),
        Case(name: "decimal-large-before-ranges", encoding: .decimal, samples: samples(regularTimestamps(3), [1e20, 2e20, 3.5e21]), decodeOnly: true),
        Case(name: "decimal-pages-before-ranges", encoding: .decimal, samples: samples(regularTimestamps(5), pageValues), decodeOnly: true),
    ]

    static func timestamps(dods: [Int64]) -> [Int64] {
        var ts = [t0]
        var delta: Int64 = 0
        for d in dods {
            delta += d
            ts.append(ts.last! + delta)
        }
        return ts
    }

    static func encode(_ c: Case) throws -> [UInt8] {
        if c.samples.isEmpty { return XORAppender().bytes }
        return try #require(ChunkEncoder.encode(c.samples[...], as: c.encoding)).bytes
    }

    static func hex(_ bytes: [UInt8]) -> String {
        var lines: [String] = []
        for start in stride(from: 0, to: bytes.count, by: 16) {
            lines.append(bytes[start..<min(start + 16, bytes.count)].map { String(format: "%02x", $0) }.joined(separator: " "))
        }
        return lines.joined(separator: "\n")
    }

    static func parseHex(_ text: String) throws -> [UInt8] {
        var out: [UInt8] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            for token in line.split(separator: " ") {
                out.append(try #require(UInt8(token, radix: 16), "bad hex token \(token)"))
            }
        }
        return out
    }

    @Test(arguments: cases)
    func goldenBytes(_ c: Case) throws {
        let bytes = try Self.encode(c)
        #expect(bytes.first == c.encoding.rawValue)
        if !c.decodeOnly && ProcessInfo.processInfo.environment["STARLING_UPDATE_FIXTURES"] == "1" {
            let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
            let header = "# \(c.name): \(c.samples.count) samples, \(c.encoding) encoding, \(bytes.count) bytes\n"
            try (header + Self.hex(bytes) + "\n").write(to: dir.appendingPathComponent("\(c.name).hex"), atomically: true, encoding: .utf8)
        }
        let url = try #require(Bundle.module.url(forResource: c.name, withExtension: "hex", subdirectory: "Fixtures"),
                               "missing fixture \(c.name).hex")
        let golden = try Self.parseHex(String(contentsOf: url, encoding: .utf8))
        #expect(c.decodeOnly || bytes == golden, "\(c.name): encoder output\n\(Self.hex(bytes))\ndiffers from the fixture\n\(Self.hex(golden))")
        // The fixture decodes to the samples, bit for bit, and validates.
        expectBitwiseEqual(try decodeChunk(golden), c.samples, c.name)
        let chunk = EncodedChunk(minTimeMs: c.samples.first?.timestampMs ?? .max, maxTimeMs: c.samples.last?.timestampMs ?? .min, bytes: golden)
        #expect(try ChunkCodec.validate(chunk) == c.samples.count)
    }

    /// The value mode and whether the codes are one range, from a decimal chunk's header.
    static func valueCoding(_ bytes: [UInt8]) -> (mode: UInt8, oneRange: Bool) {
        var r = ByteReader(bytes)
        func skipVarint() { while (try? r.readByte("varint")).map({ $0 & 0x80 != 0 }) == true {} }
        _ = try? r.readByte("encoding")
        _ = try? r.readBigEndian(UInt16.self, "count")
        skipVarint()  // first timestamp
        _ = try? r.readByte("exponent")
        let mode = (try? r.readByte("mode")) ?? 0xFF
        skipVarint()  // first mantissa
        guard mode != 0 else { return (mode, false) }
        skipVarint()  // divisor
        if mode == 3 { skipVarint() }  // centre
        return (mode, (try? r.readByte("widths")) == 0x80)
    }

    @Test func fixturesCoverEveryValueCoding() throws {
        func coding(_ name: String) throws -> (mode: UInt8, oneRange: Bool) {
            Self.valueCoding(try Self.encode(Self.cases.first { $0.name == name }!))
        }
        #expect(try coding("decimal-constant").mode == 0)
        #expect(try coding("decimal-gauge") == (1, true))
        #expect(try coding("decimal-ramp").mode == 2)
        #expect(try coding("decimal-counter") == (3, true))
        #expect(try coding("decimal-steps").oneRange == false)
        // Chunks of the earlier encoder: every mode with four bucket widths.
        let old = try ["gauge", "counter", "pages"].map { name in
            let url = try #require(Bundle.module.url(forResource: "decimal-\(name)-before-ranges", withExtension: "hex", subdirectory: "Fixtures"))
            return Self.valueCoding(try Self.parseHex(String(contentsOf: url, encoding: .utf8)))
        }
        #expect(old.map(\.mode) == [1, 2, 1] && old.allSatisfy { !$0.oneRange })
    }
}
