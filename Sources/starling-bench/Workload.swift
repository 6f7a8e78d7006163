import StarlingTestKit

/// The benchmark's data: node-exporter-like metrics of `hosts` scrape targets, scraped every
/// `intervalMs` for `scrapes` rounds ending near `endMs`. Deterministic: the same parameters and
/// seed produce the same series, values and timestamps, whatever the connection count (each
/// host has its own generator, seeded from the run seed and the host index).
///
/// Per host (~100 series with the default CPU mix, 4.5 CPUs on average):
///
/// | family | labels | kind |
/// | --- | --- | --- |
/// | `node_cpu_seconds_total` | `cpu`, `mode` (8 modes) | counter, 2 decimals (USER_HZ = 100) |
/// | `node_memory_*_bytes` (12) | | gauges, random walk in 4 KiB pages; totals constant |
/// | `node_load1/5/15` | | gauges, 2 decimals, random walk (5 and 15 smoothed) |
/// | `node_network_*_total` (6) | `device` (eth0, lo) | integer counters, errors/drops mostly flat |
/// | `node_filesystem_*` (5) | `device`, `fstype`, `mountpoint` (3) | sizes/files constant, free space walking |
/// | `node_disk_*_total` (5) | `device` (sda, sdb) | integer counters; `io_time_seconds_total` 3 decimals |
/// | `node_context_switches_total`, `node_intr_total`, `node_forks_total` | | integer counters |
/// | `node_procs_running/blocked`, `node_entropy_available_bits`, `node_filefd_allocated` | | small integer gauges |
/// | `node_boot_time_seconds`, `node_time_seconds` | | constant; scrape time with sub-ms decimals |
/// | `node_uname_info` | `nodename`, `release`, `machine` | constant 1 |
/// | `scrape_duration_seconds`, `scrape_samples_scraped` | | noisy float; constant |
///
/// Every series also carries the target labels `instance`, `job`, `region`, `zone`.
///
/// Timestamps: each host has a fixed phase in `[0, intervalMs)`; scrape `k` of host `h` is at
/// `startMs + k × intervalMs + phase(h)`, and `jitterPercent` percent of scrapes are moved by a
/// few milliseconds (±1…5 ms), as Prometheus' scrape loop does under load.
struct WorkloadSpec: Sendable, Equatable {
    var hosts: Int
    var scrapes: Int
    var intervalMs: Int64 = 15_000
    var seed: UInt64
    /// Timestamp of the end of the data; the last scrape of every host is within `intervalMs` before it.
    var endMs: Int64
    var jitterPercent = 2

    var startMs: Int64 { endMs - Int64(scrapes) * intervalMs }
}

/// One series of a host: the labels beyond the target labels, and how its values move.
struct SeriesTemplate {
    /// Influx measurement and field: the metric name is `measurement_field`.
    let measurement: String
    let field: String
    /// Labels other than `__name__` and the target labels, sorted by name.
    let labels: [(String, String)]
    var kind: ValueKind
    var name: String { measurement + "_" + field }
}

/// How a series' value evolves from one scrape to the next.
enum ValueKind {
    /// Never changes.
    case constant(Double)
    /// Grows by about `perScrape` (±`noise` fraction) each scrape, rounded to `decimals` decimals.
    case counter(value: Double, perScrape: Double, noise: Double, decimals: Int)
    /// Random walk within `[min, max]`, steps of up to `step`, values multiple of `quantum`.
    case walk(value: Double, step: Double, min: Double, max: Double, quantum: Double)
    /// Exponential smoothing toward another series of the same host (load5/load15 follow load1).
    case smoothed(value: Double, of: Int, factor: Double)
    /// The scrape's own time in seconds, with the sub-millisecond digits node exporter prints.
    case scrapeTime
    /// A duration of a few milliseconds with full float noise (scrape_duration_seconds).
    case noisyDuration(base: Double)

    var isIntegral: Bool {
        switch self {
        case .constant(let v): return v == v.rounded() && abs(v) < 1e15
        case .counter(_, _, _, let d): return d == 0
        case .walk(_, _, _, _, let q): return q == q.rounded()
        case .smoothed, .scrapeTime, .noisyDuration: return false
        }
    }
}

/// One scrape target's series and value state.
struct HostModel {
    let index: Int
    /// `instance`, `job`, `region`, `zone`, sorted by name.
    let targetLabels: [(String, String)]
    var series: [SeriesTemplate]
    let phaseMs: Int64
    var rng: SeededRandom

    init(index: Int, seed: UInt64, intervalMs: Int64) {
        self.index = index
        var rng = SeededRandom(seed: seed ^ (0x9E37_79B9_7F4A_7C15 &* UInt64(index + 1)))
        let regions = ["eu-west-1", "us-east-1", "ap-southeast-2"]
        let region = regions[index % regions.count]
        let zone = region + ["a", "b", "c"][(index / regions.count) % 3]
        targetLabels = [
            ("instance", "node-\(Self.pad(index)).\(region).prod.example.net:9100"),
            ("job", "node"),
            ("region", region),
            ("zone", zone),
        ]
        phaseMs = Int64(rng.next() % UInt64(intervalMs))
        let interval = Double(intervalMs) / 1000
        var s: [SeriesTemplate] = []

        // CPU: a quarter of the hosts have 2 CPUs, a quarter 8, the rest 4.
        let cpus = [2, 4, 4, 8][Int(rng.next() % 4)]
        let busy = Self.uniform(&rng, 0.05, 0.6)
        let modes: [(String, Double)] = [
            ("idle", 1 - busy), ("iowait", busy * 0.05), ("irq", 0), ("nice", 0),
            ("softirq", busy * 0.03), ("steal", busy * 0.01), ("system", busy * 0.25), ("user", busy * 0.66),
        ]
        let uptime = Self.uniform(&rng, 3_600, 90 * 86_400)
        for cpu in 0..<cpus {
            for (mode, share) in modes {
                let start = (uptime * share * Self.uniform(&rng, 0.9, 1.1) * 100).rounded() / 100
                s.append(SeriesTemplate(
                    measurement: "node_cpu", field: "seconds_total", labels: [("cpu", String(cpu)), ("mode", mode)],
                    kind: .counter(value: start, perScrape: share * interval, noise: 0.3, decimals: 2)))
            }
        }

        // Memory, in 4 KiB pages.
        let page = 4096.0
        let total = Double([4, 8, 16, 32, 64][Int(rng.next() % 5)]) * 1_073_741_824
        func mem(_ field: String, _ fraction: Double, _ stepFraction: Double) -> SeriesTemplate {
            let v = (total * fraction / page).rounded() * page
            return SeriesTemplate(
                measurement: "node_memory", field: field + "_bytes", labels: [],
                kind: stepFraction == 0
                    ? .constant(v) : .walk(value: v, step: (total * stepFraction / page).rounded() * page, min: 0, max: total, quantum: page))
        }
        s += [
            mem("MemTotal", 1, 0), mem("MemFree", 0.2, 0.002), mem("MemAvailable", 0.55, 0.002), mem("Buffers", 0.02, 0.0001),
            mem("Cached", 0.3, 0.001), mem("Active", 0.35, 0.001), mem("Inactive", 0.25, 0.001), mem("Dirty", 0.0005, 0.0002),
            mem("Slab", 0.03, 0.00005), mem("SwapTotal", 0.25, 0), mem("SwapFree", 0.24, 0.00001), mem("Committed_AS", 0.6, 0.001),
        ]

        // Host-wide gauges and counters: measurement "node".
        let load = (Self.uniform(&rng, 0.1, Double(cpus)) * 100).rounded() / 100
        let load1 = s.count
        s.append(SeriesTemplate(
            measurement: "node", field: "load1", labels: [],
            kind: .walk(value: load, step: 0.3, min: 0, max: Double(cpus) * 2, quantum: 0.01)))
        s.append(SeriesTemplate(measurement: "node", field: "load5", labels: [], kind: .smoothed(value: load, of: load1, factor: 0.2)))
        s.append(SeriesTemplate(measurement: "node", field: "load15", labels: [], kind: .smoothed(value: load, of: load1, factor: 0.07)))
        func counter(_ field: String, _ start: Double, _ perSecond: Double) -> SeriesTemplate {
            SeriesTemplate(
                measurement: "node", field: field, labels: [],
                kind: .counter(value: start.rounded(), perScrape: perSecond * interval, noise: 0.4, decimals: 0))
        }
        s += [
            counter("context_switches_total", uptime * 2_000, Self.uniform(&rng, 500, 20_000)),
            counter("intr_total", uptime * 1_500, Self.uniform(&rng, 300, 10_000)),
            counter("forks_total", uptime * 3, Self.uniform(&rng, 0.5, 20)),
            SeriesTemplate(measurement: "node", field: "procs_running", labels: [], kind: .walk(value: 2, step: 2, min: 1, max: Double(cpus * 3), quantum: 1)),
            SeriesTemplate(measurement: "node", field: "procs_blocked", labels: [], kind: .walk(value: 0, step: 1, min: 0, max: 4, quantum: 1)),
            SeriesTemplate(measurement: "node", field: "entropy_available_bits", labels: [], kind: .walk(value: 3_500, step: 40, min: 256, max: 4_096, quantum: 1)),
            SeriesTemplate(measurement: "node", field: "filefd_allocated", labels: [], kind: .walk(value: Self.uniform(&rng, 800, 20_000).rounded(), step: 20, min: 100, max: 100_000, quantum: 1)),
            SeriesTemplate(measurement: "node", field: "boot_time_seconds", labels: [], kind: .constant((Double(1_700_000_000) - uptime).rounded())),
            SeriesTemplate(measurement: "node", field: "time_seconds", labels: [], kind: .scrapeTime),
        ]

        // Network: eth0 busy, lo light.
        for (device, scale) in [("eth0", 1.0), ("lo", 0.05)] {
            let bytesPerSecond = Self.uniform(&rng, 10_000, 5_000_000) * scale
            for (field, perSecond) in [
                ("receive_bytes_total", bytesPerSecond), ("transmit_bytes_total", bytesPerSecond * 0.6),
                ("receive_packets_total", bytesPerSecond / 900), ("transmit_packets_total", bytesPerSecond / 1_100),
                ("receive_errs_total", 0.0001), ("receive_drop_total", 0.001),
            ] {
                s.append(SeriesTemplate(
                    measurement: "node_network", field: field, labels: [("device", device)],
                    kind: .counter(value: (uptime * perSecond).rounded(), perScrape: perSecond * interval, noise: 0.5, decimals: 0)))
            }
        }

        // Filesystems.
        for (device, fstype, mountpoint, gib) in [
            ("/dev/nvme0n1p1", "ext4", "/", 100.0), ("/dev/nvme0n1p15", "vfat", "/boot/efi", 0.1), ("/dev/nvme1n1", "xfs", "/var/lib/data", 1_000.0),
        ] {
            let size = (gib * 1_073_741_824 / page).rounded() * page
            let labels = [("device", device), ("fstype", fstype), ("mountpoint", mountpoint)]
            let free = (size * Self.uniform(&rng, 0.2, 0.8) / page).rounded() * page
            let files = (size / 16_384).rounded()
            s += [
                SeriesTemplate(measurement: "node_filesystem", field: "size_bytes", labels: labels, kind: .constant(size)),
                SeriesTemplate(measurement: "node_filesystem", field: "free_bytes", labels: labels,
                               kind: .walk(value: free, step: page * 64, min: 0, max: size, quantum: page)),
                SeriesTemplate(measurement: "node_filesystem", field: "avail_bytes", labels: labels,
                               kind: .walk(value: free * 0.95, step: page * 64, min: 0, max: size, quantum: page)),
                SeriesTemplate(measurement: "node_filesystem", field: "files", labels: labels, kind: .constant(files)),
                SeriesTemplate(measurement: "node_filesystem", field: "files_free", labels: labels,
                               kind: .walk(value: (files * 0.9).rounded(), step: 5, min: 0, max: files, quantum: 1)),
            ]
        }

        // Disks.
        for device in ["nvme0n1", "nvme1n1"] {
            let reads = Self.uniform(&rng, 1, 500), writes = Self.uniform(&rng, 5, 800)
            let labels = [("device", device)]
            for (field, perSecond) in [
                ("read_bytes_total", reads * 16_384), ("written_bytes_total", writes * 8_192),
                ("reads_completed_total", reads), ("writes_completed_total", writes),
            ] {
                s.append(SeriesTemplate(
                    measurement: "node_disk", field: field, labels: labels,
                    kind: .counter(value: (uptime * perSecond).rounded(), perScrape: perSecond * interval, noise: 0.6, decimals: 0)))
            }
            s.append(SeriesTemplate(
                measurement: "node_disk", field: "io_time_seconds_total", labels: labels,
                kind: .counter(value: (uptime * 0.02 * 1000).rounded() / 1000, perScrape: 0.02 * interval, noise: 0.8, decimals: 3)))
        }

        s.append(SeriesTemplate(
            measurement: "node_uname", field: "info",
            labels: [("machine", "x86_64"), ("nodename", "node-\(Self.pad(index))"), ("release", "6.1.0-\(13 + index % 5)-amd64")],
            kind: .constant(1)))
        s.append(SeriesTemplate(measurement: "scrape", field: "duration_seconds", labels: [], kind: .noisyDuration(base: Self.uniform(&rng, 0.004, 0.03))))
        s.append(SeriesTemplate(measurement: "scrape", field: "samples_scraped", labels: [], kind: .constant(Double(s.count + 1 + 700))))
        series = s
        self.rng = rng
    }

    static func pad(_ i: Int) -> String {
        let s = String(i)
        return String(repeating: "0", count: max(0, 4 - s.count)) + s
    }

    static func uniform(_ rng: inout SeededRandom, _ lo: Double, _ hi: Double) -> Double {
        lo + (hi - lo) * Double(rng.next() >> 11) / Double(1 << 53)
    }

    static func round(_ v: Double, decimals: Int) -> Double {
        switch decimals {
        case 0: return v.rounded()
        default:
            let m = [1.0, 10, 100, 1_000, 10_000][min(decimals, 4)]
            return (v * m).rounded() / m
        }
    }

    /// The timestamp of scrape `k`.
    mutating func timestamp(scrape k: Int, spec: WorkloadSpec) -> Int64 {
        var t = spec.startMs + Int64(k) * spec.intervalMs + phaseMs
        if Int(rng.next() % 100) < spec.jitterPercent {
            let j = Int64(rng.next() % 5) + 1
            t += rng.next() & 1 == 0 ? j : -j
        }
        return t
    }

    /// Advances every series by one scrape taken at `timestampMs` and writes the values into
    /// `values` (one per series, in `series` order).
    mutating func scrape(timestampMs: Int64, first: Bool, into values: inout [Double]) {
        values.removeAll(keepingCapacity: true)
        for i in series.indices {
            var v: Double
            switch series[i].kind {
            case .constant(let c):
                v = c
            case .counter(let value, let perScrape, let noise, let decimals):
                v = value
                if !first {
                    let inc = perScrape * (1 + noise * (Self.uniform(&rng, -1, 1)))
                    v = Self.round(value + max(0, inc), decimals: decimals)
                    // Slow counters (errors, drops) mostly stay flat.
                    if perScrape < 1 && decimals == 0 { v = Self.uniform(&rng, 0, 1) < perScrape ? value + 1 : value }
                }
                series[i].kind = .counter(value: v, perScrape: perScrape, noise: noise, decimals: decimals)
            case .walk(let value, let step, let lo, let hi, let quantum):
                v = value
                if !first {
                    let delta = (Self.uniform(&rng, -step, step) / quantum).rounded() * quantum
                    v = Swift.min(hi, Swift.max(lo, value + delta))
                }
                // Integral quanta stay exact; decimal quanta are rounded to their decimals.
                v = quantum >= 1 ? (v / quantum).rounded() * quantum : Self.round(v, decimals: 2)
                series[i].kind = .walk(value: v, step: step, min: lo, max: hi, quantum: quantum)
            case .smoothed(let value, let of, let factor):
                let target = values.indices.contains(of) ? values[of] : value
                v = Self.round(value + (target - value) * factor, decimals: 2)
                series[i].kind = .smoothed(value: v, of: of, factor: factor)
            case .scrapeTime:
                // Seconds with nanosecond digits, as node exporter reports its clock.
                v = Double(timestampMs) / 1000 + Double(rng.next() % 1_000_000) / 1e9
            case .noisyDuration(let base):
                v = base * Self.uniform(&rng, 0.7, 1.6)
            }
            values.append(v)
        }
    }
}
