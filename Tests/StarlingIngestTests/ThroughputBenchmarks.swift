import Foundation
import StarlingCompression
import StarlingCore
import StarlingProto
import Testing

@testable import StarlingIngest

/// Throughput figures, not assertions: run with
///
///     STARLING_INGEST_BENCH=1 swift test -c release --filter ThroughputBenchmarks
///
/// and read the printed figures. Skipped in normal test runs. The tests run one after another
/// (`.serialized`); each figure is given per wall-clock second and per second of the measuring
/// thread's CPU time — on a shared, oversubscribed machine the CPU-time figure is the one that
/// says what one core does.
@Suite(
    "ThroughputBenchmarks", .serialized,
    .enabled(if: ProcessInfo.processInfo.environment["STARLING_INGEST_BENCH"] != nil))
struct ThroughputBenchmarks {
    /// node-exporter-like series: 20 hosts × (cpu × mode, filesystem, network, memory) metrics.
    static func nodeExporterSeries(count: Int) -> [[(String, String)]] {
        var out: [[(String, String)]] = []
        var host = 0
        while out.count < count {
            let inst = ("instance", "node-\(host).prod.example.com:9100")
            let common = [("job", "node"), inst, ("region", "eu-west-1"), ("env", "production")]
            for cpu in 0..<8 {
                for mode in ["idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"] {
                    out.append([("__name__", "node_cpu_seconds_total"), ("cpu", "\(cpu)"), ("mode", mode)] + common)
                }
            }
            for dev in ["sda1", "sdb1", "nvme0n1p1"] {
                for m in ["node_filesystem_avail_bytes", "node_filesystem_size_bytes", "node_filesystem_files_free"] {
                    out.append([("__name__", m), ("device", "/dev/\(dev)"), ("fstype", "ext4"), ("mountpoint", "/mnt/\(dev)")] + common)
                }
            }
            for dev in ["eth0", "eth1", "lo"] {
                for m in ["node_network_receive_bytes_total", "node_network_transmit_bytes_total", "node_network_receive_packets_total"] {
                    out.append([("__name__", m), ("device", dev)] + common)
                }
            }
            for m in ["node_memory_MemFree_bytes", "node_memory_Cached_bytes", "node_load1", "node_load5", "node_context_switches_total"] {
                out.append([("__name__", m)] + common)
            }
            host += 1
        }
        return Array(out.prefix(count))
    }

    static func threadCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func measure(_ label: String, items: Int, unit: String, iterations: Int, _ body: () -> Int) {
        // Warm up.
        var sink = body()
        let clock = ContinuousClock()
        let start = clock.now
        let cpuStart = threadCPUSeconds()
        for _ in 0..<iterations { sink &+= body() }
        let cpu = threadCPUSeconds() - cpuStart
        let elapsed = clock.now - start
        let wall = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let total = Double(items * iterations)
        print(String(
            format: "%@: %.2f M %@/s per CPU-second (%.2f M/s wall; %.2f ms CPU per run; sink %d)",
            label, total / cpu / 1e6, unit, total / wall / 1e6, cpu * 1000 / Double(iterations), sink))
    }

    @Test func remoteWriteDecode() throws {
        let all = Self.nodeExporterSeries(count: 10_000)
        var req = Prometheus_WriteRequest()
        req.timeseries = all.enumerated().map { i, labels in
            var ts = Prometheus_TimeSeries()
            ts.labels = labels.map { var l = Prometheus_Label(); l.name = $0.0; l.value = $0.1; return l }
            var s = Prometheus_Sample()
            s.timestamp = testNowMs - Int64(i % 1000)
            s.value = Double(i) * 1.5
            ts.samples = [s]
            return ts
        }
        let body: [UInt8] = try req.serializedBytes()
        let compressed = Snappy.encode(body)
        print("remote write: 10k series x 1 sample, \(body.count) bytes protobuf, \(compressed.count) bytes snappy")
        Self.measure("remote write decode (protobuf -> validated [SeriesSamples])", items: 10_000, unit: "samples", iterations: 200) {
            RemoteWriteDecoder.decode(body, nowMs: testNowMs).acceptedSamples
        }
        Self.measure("remote write snappy + decode", items: 10_000, unit: "samples", iterations: 200) {
            let raw = try! Snappy.decode(compressed, maxDecodedBytes: 64 << 20)
            return RemoteWriteDecoder.decode(raw, nowMs: testNowMs).acceptedSamples
        }
        Self.measure("remote write SwiftProtobuf decode only (reference)", items: 10_000, unit: "samples", iterations: 20) {
            (try! Prometheus_WriteRequest(serializedBytes: body)).timeseries.count
        }
        // Ten samples per series (a request after a short outage).
        req.timeseries = req.timeseries.map { ts in
            var t = ts
            t.samples = (0..<10).map { k in var s = Prometheus_Sample(); s.timestamp = testNowMs - 150_000 + Int64(k) * 15_000; s.value = Double(k); return s }
            return t
        }
        let body10: [UInt8] = try req.serializedBytes()
        Self.measure("remote write decode, 10 samples/series", items: 100_000, unit: "samples", iterations: 50) {
            RemoteWriteDecoder.decode(body10, nowMs: testNowMs).acceptedSamples
        }
    }

    @Test func lineProtocolParse() {
        // Telegraf-style: one line per series and timestamp, one field.
        let all = Self.nodeExporterSeries(count: 10_000)
        var text = ""
        for (i, labels) in all.enumerated() {
            text += labels[0].1
            for (k, v) in labels.dropFirst() { text += ",\(k)=\(v)" }
            text += " value=\(Double(i) * 1.5) \(Int64(testNowMs - Int64(i % 1000)) * 1_000_000)\n"
        }
        let body = Array(text.utf8)
        print("line protocol: 10k lines, \(body.count) bytes")
        Self.measure("line protocol parse (1 field/line)", items: 10_000, unit: "lines", iterations: 100) {
            LineProtocolParser.parse(body, nowMs: testNowMs).acceptedSamples
        }
        // Telegraf's cpu input: several fields per line.
        var multi = ""
        for i in 0..<10_000 {
            multi += "cpu,cpu=cpu\(i % 64),host=node-\(i / 64).prod.example.com usage_user=\(Double(i % 100) / 3),usage_system=1.25,usage_idle=97.5,usage_iowait=0.125,usage_steal=0i \(Int64(testNowMs - Int64(i / 64)) * 1_000_000)\n"
        }
        let multiBody = Array(multi.utf8)
        Self.measure("line protocol parse (5 fields/line), lines", items: 10_000, unit: "lines", iterations: 50) {
            LineProtocolParser.parse(multiBody, nowMs: testNowMs).acceptedSamples
        }
        Self.measure("line protocol parse (5 fields/line), samples", items: 50_000, unit: "samples", iterations: 50) {
            LineProtocolParser.parse(multiBody, nowMs: testNowMs).acceptedSamples
        }
    }

    @Test func jsonImportParse() {
        let all = Self.nodeExporterSeries(count: 2_000)
        var text = ""
        for labels in all {
            text += "{\"metric\":{" + labels.map { "\"\($0.0)\":\"\($0.1)\"" }.joined(separator: ",") + "},\"values\":["
            text += (0..<50).map { String(Double($0) * 0.5) }.joined(separator: ",")
            text += "],\"timestamps\":["
            text += (0..<50).map { String(testNowMs - 750_000 + Int64($0) * 15_000) }.joined(separator: ",")
            text += "]}\n"
        }
        let body = Array(text.utf8)
        Self.measure("JSON import parse (50 samples/line)", items: 100_000, unit: "samples", iterations: 30) {
            JSONImportParser.parse(body, nowMs: testNowMs).acceptedSamples
        }
        // Foundation's JSONSerialization on the same lines, objects only (no validation, no
        // labels): the yardstick for "is a dedicated parser worth it".
        let lines = text.split(separator: "\n").map { Data($0.utf8) }
        Self.measure("JSONSerialization, objects only (comparison)", items: 100_000, unit: "samples", iterations: 5) {
            var n = 0
            for l in lines {
                let o = try! JSONSerialization.jsonObject(with: l) as! [String: Any]
                n += (o["values"] as! [Any]).count
            }
            return n
        }
    }
}
