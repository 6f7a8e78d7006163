import ArgumentParser
import AsyncHTTPClient
import Foundation
import Histogram
import StarlingCompression
import StarlingProto

@main
struct StarlingBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "starling-bench",
        abstract: "Ingest benchmark: node-exporter-like load over remote write or line protocol, against Starling or VictoriaMetrics.",
        discussion: "scripts/bench-ingest runs both servers side by side; docs/benchmarks.md has the figures.",
        subcommands: [Ingest.self, Table.self, Describe.self, PipelineCommand.self, ChunksCommand.self],
        defaultSubcommand: Ingest.self)
}

/// Options that define the workload; identical values give identical requests.
struct WorkloadOptions: ParsableArguments {
    @Option(help: "Scrape targets (hosts); about 100 series each.")
    var hosts = 120

    @Option(help: "Scrape rounds per host (the data spans scrapes × interval).")
    var scrapes = 240

    @Option(help: "Scrape interval, milliseconds.")
    var intervalMs: Int64 = 15_000

    @Option(help: "Seed of the value and timestamp generators.")
    var seed: UInt64 = 1

    @Option(help: "End of the data, Unix milliseconds (default: now, rounded down to the interval).")
    var endMs: Int64?

    @Option(help: "Percent of scrapes whose timestamp is moved by 1–5 ms.")
    var jitterPercent = 2

    func spec() -> WorkloadSpec {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return WorkloadSpec(
            hosts: hosts, scrapes: scrapes, intervalMs: intervalMs, seed: seed,
            endMs: endMs ?? (now / intervalMs * intervalMs), jitterPercent: jitterPercent)
    }
}

struct Ingest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send the workload to one server and report samples/s, latency, RSS and bytes on disk.")

    @OptionGroup var workload: WorkloadOptions

    @Option(help: "Server base URL, e.g. http://127.0.0.1:9470.")
    var url: String

    @Option(help: "Which server this is (decides the flush call): starling | victoriametrics.")
    var system: ServerKind = .starling

    @Option(name: .customLong("protocol"), help: "remote-write | influx.")
    var proto: WireProtocol = .remoteWrite

    @Option(help: "Bearer token sent with every request (env STARLING_BENCH_TOKEN).")
    var token: String?

    @Option(help: "Concurrent connections; hosts are partitioned across them.")
    var connections = 4

    @Option(help: "Remote write: samples per request (Prometheus max_samples_per_send).")
    var samplesPerRequest = 2_000

    @Option(help: "Line protocol: lines per request (Telegraf metric_batch_size).")
    var linesPerRequest = 1_000

    @Flag(help: "Line protocol: gzip request bodies.")
    var gzip = false

    @Option(help: "PID of the server process, for peak RSS and CPU time.")
    var serverPID: Int32?

    @Option(name: .customLong("also-url"), help: "Another node of the same cluster (repeatable): connections are spread over --url and these, round robin.")
    var alsoURLs: [String] = []

    @Option(name: .customLong("also-server-pid"), help: "PID of another server process of the cluster (repeatable): CPU time is summed, peak RSS is the largest.")
    var alsoServerPIDs: [Int32] = []

    @Option(help: "Server data directory: after the load, flush and compact, then measure its size.")
    var dataDir: String?

    @Flag(inversion: .prefixedNo, help: "Read every series back with /api/v1/export after the flush and count samples.")
    var verify = true

    @Option(help: "Append the result as one JSON line to this file.")
    var json: String?

    @Option(help: "Round number recorded in the JSON result.")
    var round = 1

    mutating func run() async throws {
        let spec = workload.spec()
        let token = self.token ?? ProcessInfo.processInfo.environment["STARLING_BENCH_TOKEN"]
        var encoding = EncodingSettings()
        encoding.samplesPerRequest = samplesPerRequest
        encoding.linesPerRequest = linesPerRequest
        encoding.gzip = gzip
        let connections = max(1, self.connections)

        // 1. Pre-encode every request, one list per connection (hosts h with h % connections == c).
        let clock = ContinuousClock()
        let genStart = clock.now
        let proto = self.proto
        let builder = RequestBuilder(spec: spec, settings: encoding, proto: proto)
        let perConnection: [[PreparedRequest]] = await withTaskGroup(of: (Int, [PreparedRequest]).self) { group in
            for c in 0..<connections {
                let hosts = Array(stride(from: c, to: spec.hosts, by: connections))
                group.addTask { (c, builder.build(hosts: hosts)) }
            }
            var lists = [[PreparedRequest]](repeating: [], count: connections)
            for await (c, l) in group { lists[c] = l }
            return lists
        }
        let all = perConnection.flatMap { $0 }
        let samples = all.reduce(0) { $0 + $1.samples }
        let wire = all.reduce(0) { $0 + $1.body.readableBytes }
        let raw = all.reduce(0) { $0 + $1.rawBytes }
        let series = (0..<spec.hosts).reduce(0) { $0 + HostModel(index: $1, seed: spec.seed, intervalMs: spec.intervalMs).series.count }
        try Self.crossCheck(all.first, proto: proto, gzip: gzip)
        log(String(
            format: "%@ → %@ %@: %d series, %d samples in %d requests (%.1f MB sent, %.1f MB raw), encoded in %.1f s",
            proto.rawValue, system.displayName, url, series, samples, all.count, Double(wire) / 1e6, Double(raw) / 1e6,
            LoadRunner.seconds(clock.now - genStart)))

        // 2. The load.
        var config = HTTPClient.Configuration()
        config.connectionPool = .init(idleTimeout: .seconds(120), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)
        config.httpVersion = .http1Only
        config.decompression = .disabled
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: config)
        do {
            try await measure(client: client, spec: spec, token: token, connections: connections, perConnection: perConnection, series: series)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }

    func measure(client: HTTPClient, spec: WorkloadSpec, token: String?, connections: Int, perConnection: [[PreparedRequest]], series: Int) async throws {
        let clock = ContinuousClock()
        let all = perConnection.flatMap { $0 }
        let samples = all.reduce(0) { $0 + $1.samples }
        let wire = all.reduce(0) { $0 + $1.body.readableBytes }
        let raw = all.reduce(0) { $0 + $1.rawBytes }
        let targets = ([url] + alsoURLs).map { LoadRunner.Target(baseURL: $0, proto: proto, bearerToken: token, gzip: gzip) }
        let pids = (serverPID.map { [$0] } ?? []) + alsoServerPIDs
        func cpu() -> Double? {
            let all = pids.compactMap { ServerProbe.cpuSeconds(pid: $0) }
            return pids.isEmpty || all.count < pids.count ? nil : all.reduce(0, +)
        }
        let cpuBefore = cpu()
        let selfBefore = ServerProbe.selfCPUSeconds()
        let outcome = await LoadRunner(targets: targets, client: client).run(perConnection)
        let selfCPU = ServerProbe.selfCPUSeconds() - selfBefore
        var serverCPU: Double? = nil
        if let before = cpuBefore, let after = cpu() { serverCPU = after - before }
        let rss = pids.compactMap { ServerProbe.peakRSSBytes(pid: $0) }.max()

        let h = outcome.latencyUs
        var result = RunResult(
            system: system, proto: proto, round: round, hosts: spec.hosts, series: series, scrapes: spec.scrapes,
            connections: connections, seed: spec.seed, batchSize: proto == .remoteWrite ? samplesPerRequest : linesPerRequest,
            gzip: proto == .influx && gzip, requests: outcome.requests, failedRequests: outcome.failedRequests, samplesSent: samples,
            acceptedSamples: outcome.acceptedSamples, seconds: outcome.elapsedSeconds,
            samplesPerSecond: Double(outcome.acceptedSamples) / max(outcome.elapsedSeconds, 1e-9),
            p50Ms: Double(h.valueAtPercentile(50)) / 1000, p90Ms: Double(h.valueAtPercentile(90)) / 1000,
            p99Ms: Double(h.valueAtPercentile(99)) / 1000, maxMs: Double(h.max) / 1000,
            wireBytes: wire, rawBytes: raw, peakRSSBytes: rss, serverCPUSeconds: serverCPU, clientCPUSeconds: selfCPU,
            diskBytes: nil, bytesPerSample: nil, exportedSeries: nil, exportedSamples: nil, errors: outcome.firstErrors)
        log(String(
            format: "  %@ samples/s accepted (%d of %d samples, %d failed requests) in %.2f s; latency p50 %.1f ms, p99 %.1f ms, max %.1f ms",
            ReportTable.fmtInt(result.samplesPerSecond), result.acceptedSamples, samples, result.failedRequests, result.seconds,
            result.p50Ms, result.p99Ms, result.maxMs))
        if let serverCPU {
            log(String(format: "  server CPU %.1f s (%.2f µs/sample), client CPU %.1f s", serverCPU, serverCPU * 1e6 / Double(max(outcome.acceptedSamples, 1)), selfCPU))
        }
        if let rss { log("  server peak RSS \(rss / 1_048_576) MiB") }
        for e in outcome.firstErrors { log("  error: \(e)") }

        // 3. Flush, size on disk, read back.
        let probe = ServerProbe(kind: system, baseURL: url, bearerToken: token, client: client)
        if let dataDir {
            let flushStart = clock.now
            try await probe.flushAndCompact()
            let bytes = ServerProbe.directoryBytes(dataDir)
            result.diskBytes = bytes
            result.bytesPerSample = Double(bytes) / Double(max(outcome.acceptedSamples, 1))
            log(String(
                format: "  on disk after flush and compaction (%.1f s): %.1f MB = %.2f bytes/sample", LoadRunner.seconds(clock.now - flushStart),
                Double(bytes) / 1e6, result.bytesPerSample!))
        }
        if verify {
            let (s, n) = try await probe.exportCounts(match: "{job=\"node\"}", startMs: spec.startMs - spec.intervalMs, endMs: spec.endMs + spec.intervalMs)
            result.exportedSeries = s
            result.exportedSamples = n
            log("  read back: \(s) series, \(n) samples\(n == outcome.acceptedSamples && s == series ? " (all)" : " — MISMATCH: expected \(series) series, \(outcome.acceptedSamples) samples")")
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            var line = try encoder.encode(result)
            line.append(UInt8(ascii: "\n"))
            if !FileManager.default.fileExists(atPath: json) { _ = FileManager.default.createFile(atPath: json, contents: nil) }
            let fh = try FileHandle(forWritingTo: URL(fileURLWithPath: json))
            try fh.seekToEnd()
            try fh.write(contentsOf: line)
            try fh.close()
        }
        if outcome.failedRequests > 0 { throw ExitCode(2) }
    }

    /// Decodes the first request with independent code (SwiftProtobuf, or a line count) and
    /// checks it carries the samples the builder says it does.
    static func crossCheck(_ r: PreparedRequest?, proto: WireProtocol, gzip: Bool) throws {
        guard let r else { return }
        let body = r.body.getBytes(at: r.body.readerIndex, length: r.body.readableBytes) ?? []
        switch proto {
        case .remoteWrite:
            let raw = try Snappy.decode(body, maxDecodedBytes: 64 << 20)
            let msg = try Prometheus_WriteRequest(serializedBytes: raw)
            let n = msg.timeseries.reduce(0) { $0 + $1.samples.count }
            guard n == r.samples else { throw BenchError.failed("encoder self-check: request decodes to \(n) samples, expected \(r.samples)") }
        case .influx:
            let raw = gzip ? try Gzip.decode(body, maxDecodedBytes: 64 << 20) : body
            guard raw.last == UInt8(ascii: "\n") else { throw BenchError.failed("encoder self-check: body does not end with a newline") }
        }
    }
}

struct Table: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the side-by-side table (Markdown) of results written by `ingest --json`.")

    @Argument(help: "Files of JSON result lines.")
    var files: [String]

    func run() throws {
        var runs: [RunResult] = []
        let decoder = JSONDecoder()
        for f in files {
            let text = try String(contentsOfFile: f, encoding: .utf8)
            for line in text.split(separator: "\n") where !line.isEmpty {
                runs.append(try decoder.decode(RunResult.self, from: Data(line.utf8)))
            }
        }
        print(ReportTable.render(runs))
    }
}

struct Describe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe the workload: series per family, and the first lines of each encoding.")

    @OptionGroup var workload: WorkloadOptions

    func run() throws {
        let spec = workload.spec()
        var families: [String: Int] = [:]
        var total = 0
        for h in 0..<spec.hosts {
            for s in HostModel(index: h, seed: spec.seed, intervalMs: spec.intervalMs).series {
                families[s.name, default: 0] += 1
                total += 1
            }
        }
        print("\(spec.hosts) hosts, \(total) series, \(spec.scrapes) scrapes every \(spec.intervalMs) ms → \(total * spec.scrapes) samples")
        for (name, n) in families.sorted(by: { $0.key < $1.key }) { print("  \(name): \(n)") }
        var one = spec
        one.hosts = 1
        one.scrapes = 2
        var settings = EncodingSettings()
        settings.linesPerRequest = 1 << 30
        let lp = RequestBuilder(spec: one, settings: settings, proto: .influx).build(hosts: [0])
        print("\nline protocol, host 0, two scrapes:")
        for r in lp { print(String(buffer: r.body), terminator: "") }
    }
}

extension ServerKind: ExpressibleByArgument {}
extension WireProtocol: ExpressibleByArgument {}

func log(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}
