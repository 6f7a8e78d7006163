import Foundation
import Logging
import StarlingCore
import StarlingHTTP
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A swift-log handler writing one structured record per line to stderr, as logfmt
/// (`ts=2025-01-01T00:00:00.000Z level=info logger=starling msg="…" key=value`) or JSON.
/// Each line is written with a single `write(2)`, so lines from concurrent tasks never interleave.
public struct StructuredLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let format: LogFormat
    let sink: LogSink

    public init(label: String, level: Logger.Level, format: LogFormat, sink: LogSink = .stderr) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let ts = Self.timestamp()
        var line: String
        switch format {
        case .logfmt:
            line = "ts=\(ts) level=\(event.level.rawValue) logger=\(Self.logfmtValue(label)) msg=\(Self.logfmtValue(event.message.description))"
            for (k, v) in merged.sorted(by: { $0.key < $1.key }) {
                line += " \(Self.logfmtKey(k))=\(Self.logfmtValue(Self.flatten(v)))"
            }
        case .json:
            var w = [String]()
            w.append("\"ts\":\(Self.jsonString(ts))")
            w.append("\"level\":\(Self.jsonString(event.level.rawValue))")
            w.append("\"logger\":\(Self.jsonString(label))")
            w.append("\"msg\":\(Self.jsonString(event.message.description))")
            for (k, v) in merged.sorted(by: { $0.key < $1.key }) where !["ts", "level", "logger", "msg"].contains(k) {
                w.append("\(Self.jsonString(k)):\(Self.jsonString(Self.flatten(v)))")
            }
            line = "{" + w.joined(separator: ",") + "}"
        }
        line += "\n"
        sink.write(line)
    }

    static func flatten(_ v: Logger.Metadata.Value) -> String {
        switch v {
        case .string(let s): return s
        case .stringConvertible(let c): return c.description
        case .array(let a): return "[" + a.map(flatten).joined(separator: ",") + "]"
        case .dictionary(let d): return "{" + d.sorted { $0.key < $1.key }.map { "\($0.key)=\(flatten($0.value))" }.joined(separator: ",") + "}"
        }
    }

    static func logfmtKey(_ k: String) -> String {
        String(k.unicodeScalars.map { $0 == " " || $0 == "=" || $0 == "\"" ? "_" : Character($0) })
    }

    /// Quoted (Go-style escapes, as label values are printed) when the value has spaces, `=`,
    /// quotes or control characters; bare otherwise.
    static func logfmtValue(_ s: String) -> String {
        let needsQuote = s.isEmpty || s.unicodeScalars.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0.value < 0x20 || $0 == "\\" }
        return needsQuote ? quoteLabelValue(s) : s
    }

    static func jsonString(_ s: String) -> String {
        var w = JSONWriter(reserving: s.utf8.count + 2)
        w.string(s)
        return String(decoding: w.bytes, as: UTF8.self)
    }

    /// RFC 3339 UTC with milliseconds.
    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = time_t(ts.tv_sec)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        let ms = Int(ts.tv_nsec / 1_000_000)
        func pad(_ v: Int32, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        return "\(pad(tmv.tm_year + 1900, 4))-\(pad(tmv.tm_mon + 1, 2))-\(pad(tmv.tm_mday, 2))T\(pad(tmv.tm_hour, 2)):\(pad(tmv.tm_min, 2)):\(pad(tmv.tm_sec, 2)).\(pad(Int32(ms), 3))Z"
    }
}

/// Where log lines go. `.stderr` in the node; tests may capture lines in memory.
public final class LogSink: Sendable {
    private let target: Target
    private let lock = Mutex<[String]>([])

    enum Target {
        case fd(Int32)
        case memory
    }

    public static let stderr = LogSink(target: .fd(2))
    public static func memory() -> LogSink { LogSink(target: .memory) }

    init(target: Target) {
        self.target = target
    }

    func write(_ line: String) {
        switch target {
        case .fd(let fd):
            let bytes = Array(line.utf8)
            lock.withLock { _ in
                var off = 0
                while off < bytes.count {
                    let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
                    if n <= 0 {
                        if n < 0 && errno == EINTR { continue }
                        break
                    }
                    off += n
                }
            }
        case .memory:
            lock.withLock { $0.append(line) }
        }
    }

    /// Lines captured by a `.memory()` sink.
    public var lines: [String] { lock.withLock { $0 } }
}

extension StructuredLogHandler {
    /// Bootstraps swift-log for the process. Call once, before any logger is created.
    public static func bootstrap(level: Logger.Level, format: LogFormat) {
        LoggingSystem.bootstrap { label in
            StructuredLogHandler(label: label, level: level, format: format)
        }
    }
}
