import Foundation
import StarlingChunk
import StarlingCore
import StarlingTestKit
import Testing

/// Draws for the codec tests on top of TestKit's seeded SplitMix64: every test replays exactly.
extension SeededRandom {
    mutating func unit() -> Double { Double(next() >> 11) / 9_007_199_254_740_992 }
    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }
    mutating func chance(_ p: Double) -> Bool { unit() < p }
}

/// All samples of one chunk, in order.
func decodeChunk(_ bytes: [UInt8]) throws(DecodeError) -> [Sample] {
    var it = try ChunkIterator(bytes)
    var out: [Sample] = []
    while try it.next() { out.append(it.sample) }
    return out
}

/// Bitwise equality of two sample lists, with the first difference recorded as an issue.
func expectBitwiseEqual(_ got: [Sample], _ want: [Sample], _ what: String = "", sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(got.count == want.count, "\(what): \(got.count) samples, want \(want.count)", sourceLocation: sourceLocation)
    for i in 0..<min(got.count, want.count) where !got[i].bitwiseEqual(want[i]) {
        Issue.record("\(what): sample \(i) is \(got[i]) (bits \(String(got[i].value.bitPattern, radix: 16))), want \(want[i]) (bits \(String(want[i].value.bitPattern, radix: 16)))", sourceLocation: sourceLocation)
        return
    }
}

func xorChunk(_ samples: [Sample]) -> EncodedChunk {
    var a = XORAppender()
    for s in samples { a.append(s.timestampMs, s.value) }
    return a.chunk
}

/// Samples at `timestamps` with `value(i)`.
func series(_ timestamps: [Int64], _ value: (Int) -> Double) -> [Sample] {
    timestamps.enumerated().map { Sample($0.element, value($0.offset)) }
}

func regularTimestamps(_ n: Int, start: Int64 = 1_700_000_000_000, stepMs: Int64 = 15_000) -> [Int64] {
    (0..<n).map { start + Int64($0) * stepMs }
}

/// Synthetic node-exporter-like series: what a 15 s scrape of a Linux host yields.
///
/// Timestamps: a 15 s grid starting at 2023-11-14T22:13:20Z; 5% of scrapes land 1–5 ms off the
/// grid in either direction (Prometheus aligns scrapes to its grid, so jitter does not
/// accumulate). Kinds:
/// - `constant`: sizes, limits, info metrics, counters that never move (values such as 0, 1,
///   a CPU count, a filesystem size in bytes).
/// - `integerCounter`: packets, interrupts, context switches, bytes: a per-series rate drawn
///   log-uniformly from 1 to 10,000 per scrape, each increment 0.5–1.5× the rate, 10% of
///   scrapes without increment.
/// - `cpuSeconds`: `node_cpu_seconds_total`, USER_HZ ticks / 100 (exactly two decimals): per
///   series a mode (idle 80–98% busy, user 1–15%, system 0.5–5%, iowait 0–1%, softirq 0–0.5%),
///   each scrape adding 1500 × share × (0.7–1.3) ticks.
/// - `gauge`: random walks, half with two decimals (a temperature like 45.27 stepping by up to
///   ±0.05, or a load average stepping by up to ±0.20), half with one decimal (stepping by up to
///   ±0.2).
/// - `byteGauge` (reported, not in the mix): memory in bytes moving in 4 KiB pages.
enum NodeKind: String, CaseIterable {
    case constant, integerCounter, cpuSeconds, gauge, byteGauge

    static let mix: [NodeKind] = [.constant, .integerCounter, .cpuSeconds, .gauge]
}

func nodeExporterSeries(_ kind: NodeKind, samples n: Int, rng: inout SeededRandom) -> [Sample] {
    var out: [Sample] = []
    out.reserveCapacity(n)
    let start: Int64 = 1_700_000_000_000
    var timestamps: [Int64] = []
    for i in 0..<n {
        var t = start + Int64(i) * 15_000
        if rng.chance(0.05) { t += Int64(rng.int(1...5)) * (rng.chance(0.5) ? 1 : -1) }
        timestamps.append(t)
    }
    switch kind {
    case .constant:
        let choices: [Double] = [0, 1, 2, 4, 8, 16, 1_048_576, 499_963_174_912, 16_777_216_000, 1_699_990_000]
        let v = choices[rng.int(0...choices.count - 1)]
        for t in timestamps { out.append(Sample(t, v)) }
    case .integerCounter:
        let rate = pow(10, rng.unit() * 4)
        var v = Double(rng.int(0...1_000_000_000))
        for t in timestamps {
            if !rng.chance(0.1) { v += (rate * (0.5 + rng.unit())).rounded() }
            out.append(Sample(t, v))
        }
    case .cpuSeconds:
        let shares: [ClosedRange<Double>] = [0.80...0.98, 0.01...0.15, 0.005...0.05, 0...0.01, 0...0.005]
        let range = shares[rng.int(0...shares.count - 1)]
        let share = range.lowerBound + rng.unit() * (range.upperBound - range.lowerBound)
        var ticks = rng.int(0...500_000_000)
        for t in timestamps {
            ticks += Int((1500 * share * (0.7 + 0.6 * rng.unit())).rounded())
            out.append(Sample(t, Double(ticks) / 100))
        }
    case .gauge:
        let (scale, step, startUnits): (Double, Int, Int) = switch rng.int(0...2) {
        case 0: (100, 5, rng.int(3000...6000))   // temperature, °C
        case 1: (100, 20, rng.int(0...400))      // load average
        default: (10, 2, rng.int(0...1000))      // a one-decimal gauge
        }
        var units = startUnits
        for t in timestamps {
            units = max(0, units + rng.int(-step...step))
            out.append(Sample(t, Double(units) / scale))
        }
    case .byteGauge:
        var pages = rng.int(100_000...4_000_000)
        for t in timestamps {
            pages = max(0, pages + rng.int(-200...200))
            out.append(Sample(t, Double(pages * 4096)))
        }
    }
    return out
}
