import Foundation

/// One run against one server: what `ingest --json` appends (one JSON object per line) and
/// `table` reads.
struct RunResult: Codable, Sendable {
    var system: ServerKind
    var proto: WireProtocol
    var round: Int
    var hosts: Int
    var series: Int
    var scrapes: Int
    var connections: Int
    var seed: UInt64
    /// Samples per request (remote write) or lines per request (line protocol).
    var batchSize: Int
    var gzip: Bool

    var requests: Int
    var failedRequests: Int
    var samplesSent: Int
    var acceptedSamples: Int
    /// Wall-clock seconds from the first request sent to the last response read.
    var seconds: Double
    var samplesPerSecond: Double
    var p50Ms: Double
    var p90Ms: Double
    var p99Ms: Double
    var maxMs: Double
    /// Request bytes as sent (compressed) and before compression.
    var wireBytes: Int
    var rawBytes: Int

    /// Server's `VmHWM` after the load (before flush).
    var peakRSSBytes: Int?
    /// Server CPU seconds (user + system, all threads) spent during the load.
    var serverCPUSeconds: Double?
    /// This process's CPU seconds during the load (the client shares the machine).
    var clientCPUSeconds: Double
    /// Data directory size after flush and compaction.
    var diskBytes: Int?
    var bytesPerSample: Double?
    /// What `/api/v1/export` returned after the flush.
    var exportedSeries: Int?
    var exportedSamples: Int?
    var errors: [String]
}

/// Renders runs as a side-by-side table per protocol: Starling, VictoriaMetrics, and the ratio
/// Starling / VictoriaMetrics. With several rounds, each figure is the median over rounds.
enum ReportTable {
    struct Row: Sendable {
        let name: String
        let value: @Sendable (RunResult) -> Double?
        let format: @Sendable (Double) -> String
        /// How to read the ratio: higher is better for Starling (throughput) or lower (latency, memory, bytes).
        let higherIsBetter: Bool
    }

    static let rows: [Row] = [
        Row(name: "accepted samples/s", value: { $0.samplesPerSecond }, format: { fmtInt($0) }, higherIsBetter: true),
        Row(name: "request p50 (ms)", value: { $0.p50Ms }, format: { String(format: "%.1f", $0) }, higherIsBetter: false),
        Row(name: "request p99 (ms)", value: { $0.p99Ms }, format: { String(format: "%.1f", $0) }, higherIsBetter: false),
        Row(name: "server CPU µs/sample", value: { r in r.serverCPUSeconds.map { $0 * 1e6 / Double(max(r.acceptedSamples, 1)) } },
            format: { String(format: "%.2f", $0) }, higherIsBetter: false),
        Row(name: "peak RSS (MiB)", value: { $0.peakRSSBytes.map { Double($0) / 1_048_576 } }, format: { String(format: "%.0f", $0) }, higherIsBetter: false),
        Row(name: "disk bytes/sample", value: { $0.bytesPerSample }, format: { String(format: "%.2f", $0) }, higherIsBetter: false),
        Row(name: "failed requests", value: { Double($0.failedRequests) }, format: { fmtInt($0) }, higherIsBetter: false),
        Row(name: "samples read back", value: { $0.exportedSamples.map(Double.init) }, format: { fmtInt($0) }, higherIsBetter: true),
    ]

    static func fmtInt(_ v: Double) -> String {
        let s = String(Int(v.rounded()))
        var out = ""
        for (i, c) in s.reversed().enumerated() {
            if i > 0 && i % 3 == 0 && c != "-" { out.append(",") }
            out.append(c)
        }
        return String(out.reversed())
    }

    static func median(_ xs: [Double]) -> Double? {
        guard !xs.isEmpty else { return nil }
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    static func render(_ runs: [RunResult]) -> String {
        var out = ""
        for proto in WireProtocol.allCases {
            let ofProto = runs.filter { $0.proto == proto }
            guard !ofProto.isEmpty else { continue }
            let st = ofProto.filter { $0.system == .starling }
            let vm = ofProto.filter { $0.system == .victoriametrics }
            let any = ofProto[0]
            let rounds = max(st.count, vm.count)
            out += "\n### \(proto == .remoteWrite ? "Prometheus remote write" : "Influx line protocol")"
            out += " — \(fmtInt(Double(any.series))) series, \(any.scrapes) scrapes, \(fmtInt(Double(any.samplesSent))) samples, "
            out += "\(any.connections) connections, \(proto == .remoteWrite ? "\(any.batchSize) samples" : "\(any.batchSize) lines")/request"
            if any.gzip { out += ", gzip" }
            out += rounds > 1 ? " (median of \(rounds) rounds)\n\n" : "\n\n"
            out += "| | Starling | VictoriaMetrics | Starling / VM |\n| --- | ---: | ---: | ---: |\n"
            for row in rows {
                let a = median(st.compactMap(row.value)), b = median(vm.compactMap(row.value))
                let ratio: String
                if let a, let b, b != 0 { ratio = String(format: "%.2f", a / b) } else { ratio = "–" }
                out += "| \(row.name) | \(a.map(row.format) ?? "–") | \(b.map(row.format) ?? "–") | \(ratio) |\n"
            }
            if rounds > 1 {
                out += "\nsamples/s per round: Starling \(st.map { fmtInt($0.samplesPerSecond) }.joined(separator: ", ")); "
                out += "VictoriaMetrics \(vm.map { fmtInt($0.samplesPerSecond) }.joined(separator: ", "))\n"
            }
        }
        return out
    }
}
