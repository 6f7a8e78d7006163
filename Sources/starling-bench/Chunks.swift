import ArgumentParser
import Foundation
import StarlingChunk
import StarlingCore

/// Encodes the workload straight into chunks, without a server or a store, and reports the chunk
/// bytes per sample of every metric family and encoding. The quick way to see what a codec
/// change does to the benchmark's storage figure (the on-disk figure adds keys, the index and
/// RocksDB's own overhead: see docs/benchmarks.md).
struct ChunksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chunks",
        abstract: "Encode the workload into chunks and report bytes per sample by metric family.")

    @OptionGroup var workload: WorkloadOptions

    @Option(help: "Samples per chunk (storage.samples_per_chunk).")
    var samplesPerChunk = ChunkCodec.defaultSamplesPerChunk

    func run() throws {
        guard (1...ChunkCodec.maxSamplesPerChunk).contains(samplesPerChunk) else {
            throw ValidationError("--samples-per-chunk \(samplesPerChunk) outside 1...\(ChunkCodec.maxSamplesPerChunk)")
        }
        let spec = workload.spec()
        struct Tally { var samples = 0, bytes = 0, chunks = 0, decimal = 0 }
        var byFamily: [String: Tally] = [:]
        var values: [Double] = []
        let clock = ContinuousClock()
        var encodeTime = Duration.zero
        var decodeTime = Duration.zero
        var decoded = 0
        for h in 0..<spec.hosts {
            var host = HostModel(index: h, seed: spec.seed, intervalMs: spec.intervalMs)
            var samples = [[Sample]](repeating: [], count: host.series.count)
            for k in 0..<spec.scrapes {
                let t = host.timestamp(scrape: k, spec: spec)
                host.scrape(timestampMs: t, first: k == 0, into: &values)
                for (i, v) in values.enumerated() { samples[i].append(Sample(t, v)) }
            }
            for (i, series) in samples.enumerated() {
                var tally = byFamily[host.series[i].name, default: Tally()]
                let start = clock.now
                let chunks = ChunkEncoder.encode(series, maxSamplesPerChunk: samplesPerChunk)
                let encoded = clock.now
                encodeTime += encoded - start
                for chunk in chunks {
                    var it = try ChunkIterator(chunk)
                    while try it.next() { decoded &+= 1 }
                }
                decodeTime += clock.now - encoded
                for chunk in chunks {
                    tally.bytes += chunk.bytes.count
                    tally.chunks += 1
                    if (try? ChunkEncoding.of(chunk.bytes)) == .decimal { tally.decimal += 1 }
                }
                tally.samples += series.count
                byFamily[host.series[i].name] = tally
            }
        }
        let total = byFamily.values.reduce(into: Tally()) {
            $0.samples += $1.samples; $0.bytes += $1.bytes; $0.chunks += $1.chunks; $0.decimal += $1.decimal
        }
        func row(_ name: String, _ t: Tally) -> String {
            let bits = Double(t.bytes * 8) / Double(max(1, t.samples))
            return name.padding(toLength: 44, withPad: " ", startingAt: 0) + String(format: " %10d %10d %8.2f %7d/%d", t.samples, t.bytes, bits, t.decimal, t.chunks)
        }
        print("family                                        samples      bytes bits/smp decimal/chunks")
        for (name, t) in byFamily.sorted(by: { $0.value.bytes > $1.value.bytes }) { print(row(name, t)) }
        print(row("total", total))
        print(String(format: "chunk bytes per sample: %.4f", Double(total.bytes) / Double(max(1, total.samples))))
        func nsPerSample(_ d: Duration) -> Double {
            (Double(d.components.seconds) * 1e9 + Double(d.components.attoseconds) / 1e9) / Double(max(1, total.samples))
        }
        precondition(decoded == total.samples, "decoded \(decoded) of \(total.samples) samples")
        print(String(format: "encode %.1f ns/sample, decode %.1f ns/sample (one thread)", nsPerSample(encodeTime), nsPerSample(decodeTime)))
    }
}
