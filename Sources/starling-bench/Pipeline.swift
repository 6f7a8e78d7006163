import ArgumentParser
import Foundation
import StarlingCompression
import StarlingCore
import StarlingIngest
import StarlingRocksDB
import StarlingStorage

/// The node's ingest path without HTTP: body decoding (snappy/gzip), the protocol decoder and
/// `TimeSeriesDB.append` over RocksDB, on one thread, timed per stage with the thread's CPU
/// clock. Separates what the storage and decoders cost from what the HTTP shell and thread hops
/// add (compare with `ingest`'s server CPU per sample), and is the quickest loop for profiling
/// (`perf record -g starling-bench pipeline …`).
struct PipelineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "Decode and store the workload in-process (no HTTP); CPU time per stage.")

    @OptionGroup var workload: WorkloadOptions

    @Option(name: .customLong("protocol"), help: "remote-write | influx.")
    var proto: WireProtocol = .remoteWrite

    @Option(help: "RocksDB directory (must not exist, or be a previous pipeline run's to append again).")
    var dataDir: String

    @Option(help: "Remote write: samples per request.")
    var samplesPerRequest = 2_000

    @Option(help: "Line protocol: lines per request.")
    var linesPerRequest = 1_000

    @Flag(help: "Decode without the series label cache (as before it existed).")
    var noSeriesCache = false

    func run() throws {
        let spec = workload.spec()
        var settings = EncodingSettings()
        settings.samplesPerRequest = samplesPerRequest
        settings.linesPerRequest = linesPerRequest
        let requests = RequestBuilder(spec: spec, settings: settings, proto: proto).build(hosts: Array(0..<spec.hosts))
        let bodies = requests.map { $0.body.getBytes(at: $0.body.readerIndex, length: $0.body.readableBytes) ?? [] }
        let samples = requests.reduce(0) { $0 + $1.samples }
        log("\(proto.rawValue): \(samples) samples in \(requests.count) requests")

        let store = try RocksDBStore(path: dataDir)
        let db = try TimeSeriesDB(store: store, nowMs: spec.endMs)
        let limits = IngestLimits.default
        let cache = SeriesLabelCache(settings: .init(maxBytes: noSeriesCache ? 0 : SeriesLabelCache.Settings().maxBytes))
        var unwrapCPU = 0.0, decodeCPU = 0.0, appendCPU = 0.0
        var accepted = 0
        let wallStart = ContinuousClock.now
        for body in bodies {
            let t0 = threadCPUSeconds()
            let raw = proto == .remoteWrite ? try Snappy.decode(body, maxDecodedBytes: limits.maxBodyBytes) : body
            let t1 = threadCPUSeconds()
            let result: IngestResult
            switch proto {
            case .remoteWrite: result = RemoteWriteDecoder.decode(raw, nowMs: spec.endMs, limits: limits, cache: cache)
            case .influx: result = LineProtocolParser.parse(raw, precision: .milliseconds, nowMs: spec.endMs, limits: limits, cache: cache)
            }
            let t2 = threadCPUSeconds()
            let report = try db.append(result.series, nowMs: spec.endMs)
            let t3 = threadCPUSeconds()
            unwrapCPU += t1 - t0
            decodeCPU += t2 - t1
            appendCPU += t3 - t2
            accepted += report.accepted
        }
        let wall = LoadRunner.seconds(ContinuousClock.now - wallStart)
        let n = Double(max(accepted, 1))
        log(String(
            format: "accepted %d samples; CPU µs/sample: body %.3f, decode %.3f, append %.3f, total %.3f → %@ samples/s per core (wall %.1f s)",
            accepted, unwrapCPU * 1e6 / n, decodeCPU * 1e6 / n, appendCPU * 1e6 / n, (unwrapCPU + decodeCPU + appendCPU) * 1e6 / n,
            ReportTable.fmtInt(n / (unwrapCPU + decodeCPU + appendCPU)), wall))
        let cs = cache.statistics
        log("series cache: \(cs.hits) hits, \(cs.misses) misses, \(cs.evictions) evictions, \(cs.entries) entries, \(cs.bytes / 1024) KiB")
        try db.close(nowMs: spec.endMs)
    }

    func threadCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
