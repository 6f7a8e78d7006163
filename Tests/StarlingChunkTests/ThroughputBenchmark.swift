import Foundation
import StarlingChunk
import StarlingCore
import StarlingTestKit
import Testing

/// Throughput measurement, not a test: it asserts nothing about time and runs only when asked.
///
///     STARLING_CHUNK_BENCH=1 swift test -c release --filter ThroughputBenchmark
///
/// Reports samples/s for appending (XOR appender, 240-sample chunks), best-encoding encode, and
/// merged decode through `SeriesSampleIterator` of one series' non-overlapping chunks, for each
/// node-exporter-like kind and for random floats. Times are CPU time of the calling thread, so
/// other load on the machine inflates them less than wall time would.
@Suite struct ThroughputBenchmark {
    static let enabled = ProcessInfo.processInfo.environment["STARLING_CHUNK_BENCH"] == "1"

    static func cpuSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Best of `repeats` runs of `body`, in samples per second.
    static func rate(samples: Int, repeats: Int = 5, _ body: () throws -> Void) rethrows -> Double {
        var best = Double.infinity
        for _ in 0..<repeats {
            let start = cpuSeconds()
            try body()
            best = min(best, cpuSeconds() - start)
        }
        return Double(samples) / best
    }

    @Test(.enabled(if: enabled))
    func throughput() throws {
        var rng = SeededRandom(seed: 77)
        let seriesLength = 240 * 2_000  // 480,000 samples: 2,000 chunks of one series
        var report = ["kind            append M/s  encode M/s  decode M/s  B/sample"]
        var kinds: [(String, [Sample])] = NodeKind.allCases.map { ($0.rawValue, nodeExporterSeries($0, samples: seriesLength, rng: &rng)) }
        var t: Int64 = 1_700_000_000_000
        kinds.append(("randomFloat", (0..<seriesLength).map { _ in
            t += 15_000
            return Sample(t, rng.unit() * 1e6)
        }))
        var sink = 0.0
        for (name, samples) in kinds {
            let ts = samples.map(\.timestampMs)
            let vs = samples.map(\.value)
            var chunks: [EncodedChunk] = []
            let append = Self.rate(samples: samples.count) {
                var bytes = 0
                var a = XORAppender()
                for i in 0..<ts.count {
                    if a.count == ChunkCodec.defaultSamplesPerChunk {
                        bytes += a.bytes.count
                        a = XORAppender()
                    }
                    a.append(ts[i], vs[i])
                }
                sink += Double(bytes + a.bytes.count)
            }
            let encode = Self.rate(samples: samples.count, repeats: 2) { chunks = ChunkEncoder.encode(samples) }
            let decode = try Self.rate(samples: samples.count) {
                var it = SeriesSampleIterator(chunks: chunks)
                var n = 0
                while try it.next() {
                    n += 1
                    sink += it.value
                }
                precondition(n == samples.count)
            }
            let size = Double(chunks.reduce(0) { $0 + $1.bytes.count }) / Double(samples.count)
            report.append(name.padding(16) + format3(append / 1e6).padding(12) + format3(encode / 1e6).padding(12)
                          + format3(decode / 1e6).padding(12) + format3(size))
        }
        print(report.joined(separator: "\n") + "\n(sink \(sink.isFinite))")
    }
}
