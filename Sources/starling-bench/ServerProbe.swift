import AsyncHTTPClient
import Foundation
import NIOCore

/// Which server is measured: decides the flush call and nothing else (both receive the same
/// requests on the same paths).
enum ServerKind: String, CaseIterable, Codable, Sendable {
    case starling
    case victoriametrics

    var displayName: String { self == .starling ? "Starling" : "VictoriaMetrics" }
}

enum BenchError: Error, CustomStringConvertible {
    case failed(String)
    var description: String {
        switch self {
        case .failed(let m): return m
        }
    }
}

/// Figures read from outside the server: its memory and CPU from `/proc`, its data directory's
/// size, and the flush / export calls each server offers.
struct ServerProbe {
    let kind: ServerKind
    let baseURL: String
    let bearerToken: String?
    let client: HTTPClient

    // MARK: /proc

    /// Peak resident set size (`VmHWM`) of `pid`, bytes.
    static func peakRSSBytes(pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.dropFirst("VmHWM:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) }
            return kb.map { $0 * 1024 }
        }
        return nil
    }

    /// User + system CPU time of `pid` (all threads), seconds.
    static func cpuSeconds(pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")")
        else { return nil }
        // Fields after the command name: state is field 3; utime and stime are fields 14 and 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return nil }
        return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// CPU time of this process, seconds.
    static func selfCPUSeconds() -> Double {
        var ru = rusage()
        getrusage(Int32(RUSAGE_SELF.rawValue), &ru)
        return Double(ru.ru_utime.tv_sec) + Double(ru.ru_utime.tv_usec) / 1e6 + Double(ru.ru_stime.tv_sec) + Double(ru.ru_stime.tv_usec) / 1e6
    }

    /// Bytes of every regular file below `path` (apparent sizes; logs and metadata included).
    static func directoryBytes(_ path: String) -> Int {
        let fm = FileManager.default
        guard let e = fm.enumerator(atPath: path) else { return 0 }
        var total = 0
        while let rel = e.nextObject() as? String {
            let attrs = e.fileAttributes
            if attrs?[.type] as? FileAttributeType == .typeRegular, let n = attrs?[.size] as? NSNumber {
                total += n.intValue
            } else if attrs == nil, let a = try? fm.attributesOfItem(atPath: path + "/" + rel),
                      a[.type] as? FileAttributeType == .typeRegular, let n = a[.size] as? NSNumber {
                total += n.intValue
            }
        }
        return total
    }

    // MARK: HTTP

    func request(post: Bool, _ path: String, timeout: Duration = .seconds(600)) async throws -> (UInt, ByteBuffer) {
        var r = HTTPClientRequest(url: baseURL + path)
        r.method = post ? .POST : .GET
        if let t = bearerToken { r.headers.add(name: "Authorization", value: "Bearer \(t)") }
        let response = try await client.execute(r, timeout: .seconds(Int64(LoadRunner.seconds(timeout))))
        let body = try await response.body.collect(upTo: 4 << 30)
        return (response.status.code, body)
    }

    /// Makes everything the server holds in memory durable and compacted, so the data
    /// directory's size is the steady-state figure. Starling: `POST /api/v1/admin/flush?compact=true`.
    /// VictoriaMetrics: `/internal/force_flush`, then `/internal/force_merge` (asynchronous),
    /// then waits until `vm_active_force_merges` and every `vm_active_merges` read 0 twice.
    func flushAndCompact() async throws {
        switch kind {
        case .starling:
            let (status, body) = try await request(post: true, "/api/v1/admin/flush?compact=true")
            guard (200..<300).contains(status) else {
                throw BenchError.failed("POST /api/v1/admin/flush: HTTP \(status): \(String(buffer: body).prefix(300))")
            }
        case .victoriametrics:
            for path in ["/internal/force_flush", "/internal/force_merge"] {
                let (status, body) = try await request(post: false, path)
                guard (200..<300).contains(status) else {
                    throw BenchError.failed("\(path): HTTP \(status): \(String(buffer: body).prefix(300))")
                }
            }
            var quiet = 0
            let deadline = ContinuousClock.now + .seconds(600)
            while quiet < 2 {
                guard ContinuousClock.now < deadline else { throw BenchError.failed("VictoriaMetrics merges still running after 600 s") }
                try await Task.sleep(for: .milliseconds(500))
                let (_, body) = try await request(post: false, "/metrics")
                quiet = Self.mergesActive(String(buffer: body)) ? 0 : quiet + 1
            }
        }
    }

    static func mergesActive(_ metrics: String) -> Bool {
        for line in metrics.split(separator: "\n") where line.hasPrefix("vm_active_force_merges") || line.hasPrefix("vm_active_merges") {
            if let v = line.split(separator: " ").last.flatMap({ Double($0) }), v > 0 { return true }
        }
        return false
    }

    /// Reads back every series of the workload with `/api/v1/export` (both servers speak the
    /// VictoriaMetrics JSON-lines export) and counts series and samples.
    func exportCounts(match: String, startMs: Int64, endMs: Int64) async throws -> (series: Int, samples: Int) {
        let q = "match[]=" + match
            + "&start=\(Double(startMs) / 1000)&end=\(Double(endMs) / 1000)"
        let (status, body) = try await request(post: false, "/api/v1/export?" + q)
        guard status == 200 else { throw BenchError.failed("/api/v1/export: HTTP \(status): \(String(buffer: body).prefix(300))") }
        return body.withUnsafeReadableBytes { Self.countExport($0) }
    }

    /// Counts lines and the elements of each line's `"timestamps":[…]` array.
    static func countExport(_ p: UnsafeRawBufferPointer) -> (series: Int, samples: Int) {
        let key = Array("\"timestamps\":[".utf8)
        var series = 0, samples = 0
        var i = 0
        let n = p.count
        while i < n {
            // One line.
            var end = i
            while end < n && p[end] != UInt8(ascii: "\n") { end += 1 }
            if end > i { series += 1 }
            var j = i
            search: while j + key.count <= end {
                var k = 0
                while k < key.count && p[j + k] == key[k] { k += 1 }
                if k == key.count {
                    var m = j + key.count
                    if m < end && p[m] != UInt8(ascii: "]") { samples += 1 }
                    while m < end && p[m] != UInt8(ascii: "]") {
                        if p[m] == UInt8(ascii: ",") { samples += 1 }
                        m += 1
                    }
                    break search
                }
                j += 1
            }
            i = end + 1
        }
        return (series, samples)
    }
}
