import Foundation
import StarlingCore
import StarlingPromQL
import StarlingTestKit
import Testing

/// The node-core data set: `hosts` node-exporter-like hosts scraped every 15 s for `hours`
/// (CPU per core and mode, memory, load, network, disk, filesystem, an HTTP latency histogram),
/// and the representative query set of the latency benchmark. Shared by the in-process benchmark
/// below and, through `scripts/promql-bench.py`, by the three-way benchmark.
enum NodeCoreDataSet {
    static let startMs: Int64 = 1_700_000_000_000
    static let scrapeMs: Int64 = 15_000
    static let regions = ["eu-west", "us-east", "us-west", "ap-south", "sa-east"]

    static func generate(hosts: Int, hours: Int, seed: UInt64, _ add: (Labels, [Sample]) -> Void) {
        var rnd = SeededRandom(seed: seed)
        let n = hours * 3600 * 1000 / Int(scrapeMs) + 1
        func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * Double(rnd.next() >> 11) / Double(1 << 53) }
        func counter(_ labels: [String: String], rate: Double) {
            var v = uniform(0, 1e6)
            var out: [Sample] = []
            out.reserveCapacity(n)
            for i in 0..<n {
                v += rate * uniform(0.5, 1.5) * 15
                out.append(Sample(startMs + Int64(i) * scrapeMs, v.rounded()))
            }
            add(Labels(labels), out)
        }
        func gauge(_ labels: [String: String], base: Double, jitter: Double) {
            var v = base
            var out: [Sample] = []
            out.reserveCapacity(n)
            for i in 0..<n {
                v = Swift.max(0, v + uniform(-jitter, jitter))
                out.append(Sample(startMs + Int64(i) * scrapeMs, v))
            }
            add(Labels(labels), out)
        }
        let modes = ["idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"]
        let buckets = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"]
        for h in 0..<hosts {
            let inst = "host-" + String(format: "%03d", h) + ":9100"
            let base = ["job": "node", "instance": inst, "region": regions[h % regions.count]]
            func with(_ name: String, _ extra: [String: String] = [:]) -> [String: String] {
                var l = base
                l["__name__"] = name
                for (k, v) in extra { l[k] = v }
                return l
            }
            for cpu in 0..<8 {
                for m in modes { counter(with("node_cpu_seconds_total", ["cpu": String(cpu), "mode": m]), rate: m == "idle" ? 0.7 : 0.05) }
            }
            gauge(with("node_memory_MemAvailable_bytes"), base: uniform(2e9, 3e10), jitter: 5e7)
            gauge(with("node_memory_MemTotal_bytes"), base: 3.2e10, jitter: 0)
            gauge(with("node_memory_Buffers_bytes"), base: uniform(1e8, 1e9), jitter: 1e6)
            gauge(with("node_memory_Cached_bytes"), base: uniform(1e9, 8e9), jitter: 1e7)
            for l in ["node_load1", "node_load5", "node_load15"] { gauge(with(l), base: uniform(0, 8), jitter: 0.3) }
            for d in ["eth0", "eth1", "lo"] {
                counter(with("node_network_receive_bytes_total", ["device": d]), rate: uniform(1e3, 1e7))
                counter(with("node_network_transmit_bytes_total", ["device": d]), rate: uniform(1e3, 1e7))
            }
            for d in ["sda", "sdb"] {
                counter(with("node_disk_read_bytes_total", ["device": d]), rate: uniform(1e3, 1e6))
                counter(with("node_disk_written_bytes_total", ["device": d]), rate: uniform(1e3, 1e6))
                counter(with("node_disk_io_time_seconds_total", ["device": d]), rate: 0.1)
            }
            for m in ["/", "/data"] { gauge(with("node_filesystem_avail_bytes", ["mountpoint": m]), base: uniform(1e10, 1e12), jitter: 1e6) }
            for handler in ["/api", "/health"] {
                var counts = [Double](repeating: 0, count: buckets.count)
                var series = [[Sample]](repeating: [], count: buckets.count)
                var sum = 0.0
                var sums: [Sample] = [], cnts: [Sample] = []
                for i in 0..<n {
                    let t = startMs + Int64(i) * scrapeMs
                    for _ in 0..<Int(uniform(0, 20)) {
                        let obs = -log(uniform(1e-9, 1)) * 0.08
                        sum += obs
                        for (k, b) in buckets.enumerated() where b == "+Inf" || obs <= Double(b)! { counts[k] += 1 }
                    }
                    for k in buckets.indices { series[k].append(Sample(t, counts[k])) }
                    sums.append(Sample(t, sum))
                    cnts.append(Sample(t, counts[buckets.count - 1]))
                }
                for (k, b) in buckets.enumerated() { add(Labels(with("http_request_duration_seconds_bucket", ["handler": handler, "le": b])), series[k]) }
                add(Labels(with("http_request_duration_seconds_sum", ["handler": handler])), sums)
                add(Labels(with("http_request_duration_seconds_count", ["handler": handler])), cnts)
            }
        }
    }

    /// The representative queries: name and expression.
    static let queries: [(String, String)] = [
        ("rate_sum_by_host", #"sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))"#),
        ("avg_by_region", "avg by (region) (node_memory_MemAvailable_bytes)"),
        ("max_over_time", "max_over_time(node_load1[1h])"),
        ("topk", "topk(5, rate(node_network_receive_bytes_total[5m]))"),
        ("histogram_quantile", "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"),
        ("single_series", #"node_load1{instance="host-042:9100"}"#),
        ("cpu_utilisation", #"1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))"#),
        ("memory_ratio", "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes"),
    ]
}

/// In-process latency of the benchmark queries over a `MemoryQuerier` (no HTTP, no storage):
/// the engine's own cost. Opt-in: `PROMQL_BENCH=1 swift test -c release --filter EngineBenchmark`.
@Suite struct EngineBenchmark {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["PROMQL_BENCH"] != nil))
    func latencies() async throws {
        let env = ProcessInfo.processInfo.environment
        let hosts = Int(env["PROMQL_BENCH_HOSTS"] ?? "") ?? 100
        let hours = Int(env["PROMQL_BENCH_HOURS"] ?? "") ?? 6
        let runs = Int(env["PROMQL_BENCH_RUNS"] ?? "") ?? 20
        let q = MemoryQuerier()
        var series = 0, samples = 0
        NodeCoreDataSet.generate(hosts: hosts, hours: hours, seed: 42) { l, s in
            q.add(l, s)
            series += 1
            samples += s.count
        }
        print("node-core: \(hosts) hosts, \(series) series, \(samples) samples")
        let engine = Engine()
        let end = NodeCoreDataSet.startMs + Int64(hours) * 3_600_000
        let clock = ContinuousClock()
        for (name, query) in NodeCoreDataSet.queries {
            for (mode, start, step) in [("instant", end, Int64(0)), ("range1h/15s", end - 3_600_000, Int64(15_000)), ("range6h/60s", end - Int64(hours) * 3_600_000, Int64(60_000))] {
                var times: [Double] = []
                for _ in 0..<runs {
                    let t0 = clock.now
                    if step == 0 {
                        _ = try await engine.instantQuery(query, timeMs: end, querier: q)
                    } else {
                        _ = try await engine.rangeQuery(query, startMs: start, endMs: end, stepMs: step, querier: q)
                    }
                    let d = t0.duration(to: clock.now)
                    times.append(Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
                }
                times.sort()
                let p50 = times[times.count / 2]
                let p99 = times[Swift.min(times.count - 1, Int(Double(times.count) * 0.99))]
                print(String(format: "%-20@ %-12@ p50 %8.2f ms  p99 %8.2f ms", name as NSString, mode as NSString, p50, p99))
            }
        }
    }
}
