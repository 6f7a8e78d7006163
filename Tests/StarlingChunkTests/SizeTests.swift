import StarlingChunk
import StarlingCore
import StarlingTestKit
import Testing

/// The storage target: at most 1.4 bytes per sample (chunk bytes only) on node-exporter-like
/// data. A size property of the format on a fixed seed, not a timing.
@Suite struct SizeTests {
    static let seriesPerKind = 200
    /// Three hours at 15 s: three chunks of 240 samples per series.
    static let samplesPerSeries = 720

    struct Measurement {
        var samples = 0
        var bestBytes = 0
        var xorBytes = 0
        var decimalChunks = 0
        var chunks = 0
        var bestPerSample: Double { Double(bestBytes) / Double(samples) }
        var xorPerSample: Double { Double(xorBytes) / Double(samples) }
    }

    static func measure(_ kind: NodeKind, rng: inout SeededRandom) throws -> Measurement {
        var m = Measurement()
        for _ in 0..<seriesPerKind {
            let samples = nodeExporterSeries(kind, samples: samplesPerSeries, rng: &rng)
            let best = ChunkEncoder.encode(samples)
            for c in best {
                m.bestBytes += c.bytes.count
                m.chunks += 1
                if c.bytes[0] == ChunkEncoding.decimal.rawValue { m.decimalChunks += 1 }
            }
            for start in stride(from: 0, to: samples.count, by: ChunkCodec.defaultSamplesPerChunk) {
                m.xorBytes += xorChunk(Array(samples[start..<min(start + ChunkCodec.defaultSamplesPerChunk, samples.count)])).bytes.count
            }
            m.samples += samples.count
            let back = try SeriesSampleIterator.collect(chunks: best)
            #expect(back.count == samples.count && zip(back, samples).allSatisfy { $0.bitwiseEqual($1) }, "\(kind) round trip")
        }
        return m
    }

    @Test func nodeExporterMixIsAtMost1Point4BytesPerSample() throws {
        var rng = SeededRandom(seed: 20_260_101)
        var mix = Measurement()
        var lines = ["kind            best B/sample  xor-only B/sample  decimal chunks"]
        for kind in NodeKind.allCases {
            let m = try Self.measure(kind, rng: &rng)
            lines.append(kind.rawValue.padding(16) + String(format3(m.bestPerSample)).padding(15)
                         + String(format3(m.xorPerSample)).padding(19) + "\(m.decimalChunks)/\(m.chunks)")
            if NodeKind.mix.contains(kind) {
                mix.samples += m.samples
                mix.bestBytes += m.bestBytes
                mix.xorBytes += m.xorBytes
                mix.decimalChunks += m.decimalChunks
                mix.chunks += m.chunks
            }
            // Every kind of decimal data is far below XOR, and constants nearly free.
            #expect(m.bestPerSample < m.xorPerSample, "\(kind)")
        }
        lines.append("mix (4 kinds)".padding(16) + format3(mix.bestPerSample).padding(15)
                     + format3(mix.xorPerSample).padding(19) + "\(mix.decimalChunks)/\(mix.chunks)")
        print(lines.joined(separator: "\n"))
        #expect(mix.bestPerSample <= 1.4, "node-exporter mix: \(mix.bestPerSample) bytes/sample")
    }
}

func format3(_ v: Double) -> String {
    let scaled = Int((v * 1000).rounded())
    let frac = String(scaled % 1000)
    return "\(scaled / 1000)." + String(repeating: "0", count: 3 - frac.count) + frac
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
}
