import Foundation
import StarlingCore

/// `HOST:PORT` as written in flags and config: `0.0.0.0:9470`, `:9470` (all interfaces),
/// `localhost:9470`, `[::1]:9470`. Port 0 asks the OS for a free port (tests use it; the node
/// logs the port it got).
public struct HostPort: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init?(parsing s: String) {
        let s = s.trimmingCharacters(in: .whitespaces)
        var host: Substring
        var portText: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return nil }
            host = s[s.index(after: s.startIndex)..<close]
            let rest = s[s.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = s.lastIndex(of: ":") else { return nil }
            host = s[..<colon]
            portText = s[s.index(after: colon)...]
            if host.contains(":") { return nil }  // bare IPv6 must be bracketed
        }
        guard let port = Int(portText), (0...65_535).contains(port) else { return nil }
        if host.isEmpty { host = "0.0.0.0" }
        if host.contains(where: { $0 == " " || $0 == "/" }) { return nil }
        self.host = String(host)
        self.port = port
    }

    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// Log output format.
public enum LogFormat: String, Sendable, CaseIterable {
    /// `ts=… level=info msg="…" key=value`: easy to read and to grep.
    case logfmt
    /// One JSON object per line: for log shippers.
    case json
}

/// Parsers for the value syntaxes shared by YAML, environment variables and flags.
public enum ConfigSyntax {
    /// Prometheus duration syntax: one or more `<int><unit>` with units `ms s m h d w y`
    /// (`30d`, `1h30m`, `500ms`). Plain `0` is zero.
    public static func duration(_ text: String) -> Duration? {
        let s = text.trimmingCharacters(in: .whitespaces)
        if s == "0" { return .zero }
        var total: Int64 = 0
        var i = s.startIndex
        var sawAny = false
        while i < s.endIndex {
            let numStart = i
            while i < s.endIndex, s[i].isASCII, s[i].isNumber { i = s.index(after: i) }
            guard numStart < i, let n = Int64(s[numStart..<i]) else { return nil }
            let unitStart = i
            while i < s.endIndex, s[i].isLetter { i = s.index(after: i) }
            let unitMs: Int64
            switch s[unitStart..<i] {
            case "ms": unitMs = 1
            case "s": unitMs = Millis.second
            case "m": unitMs = Millis.minute
            case "h": unitMs = Millis.hour
            case "d": unitMs = Millis.day
            case "w": unitMs = 7 * Millis.day
            case "y": unitMs = 365 * Millis.day
            default: return nil
            }
            let (p, o1) = n.multipliedReportingOverflow(by: unitMs)
            let (t, o2) = total.addingReportingOverflow(p)
            if o1 || o2 { return nil }
            total = t
            sawAny = true
        }
        return sawAny ? .milliseconds(total) : nil
    }

    /// Formats a duration in the largest exact units (`30d`, `1h30m`, `500ms`).
    public static func format(_ d: Duration) -> String {
        var ms = d.milliseconds
        if ms == 0 { return "0s" }
        var out = ""
        for (unit, size) in [("d", Millis.day), ("h", Millis.hour), ("m", Millis.minute), ("s", Millis.second), ("ms", Int64(1))] {
            if ms >= size {
                out += "\(ms / size)\(unit)"
                ms %= size
            }
        }
        return out
    }

    /// Byte sizes: a plain integer, or with a unit `B`, `KB`/`MB`/`GB` (powers of 1000) or
    /// `KiB`/`MiB`/`GiB` (powers of 1024).
    public static func bytes(_ text: String) -> Int? {
        let s = text.trimmingCharacters(in: .whitespaces)
        let digits = s.prefix(while: { $0.isASCII && $0.isNumber })
        guard !digits.isEmpty, let n = Int(digits) else { return nil }
        let unit = s.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
        let mult: Int
        switch unit {
        case "", "B": mult = 1
        case "KB", "kB": mult = 1000
        case "MB": mult = 1000 * 1000
        case "GB": mult = 1000 * 1000 * 1000
        case "KiB": mult = 1 << 10
        case "MiB": mult = 1 << 20
        case "GiB": mult = 1 << 30
        default: return nil
        }
        let (r, o) = n.multipliedReportingOverflow(by: mult)
        return o ? nil : r
    }

    public static func formatBytes(_ n: Int) -> String {
        for (unit, size) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] where n >= size && n % size == 0 {
            return "\(n / size)\(unit)"
        }
        return String(n)
    }

    public static func bool(_ text: String) -> Bool? {
        switch text.trimmingCharacters(in: .whitespaces).lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: return nil
        }
    }

    /// `a=b,c=d` (flags and environment variables) into pairs, in order.
    public static func pairs(_ text: String) -> [(String, String)]? {
        var out: [(String, String)] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: true) {
            guard let eq = item.firstIndex(of: "=") else { return nil }
            let k = item[..<eq].trimmingCharacters(in: .whitespaces)
            let v = item[item.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if k.isEmpty { return nil }
            out.append((k, v))
        }
        return out
    }
}
