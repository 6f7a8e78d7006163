#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How `rfc3339(ms:fraction:)` writes the milliseconds.
public enum RFC3339Fraction: Sendable {
    /// As Go's `RFC3339Nano`: trailing zeros cut, none when whole (`…:00.12Z`, `…:00Z`). What
    /// Prometheus and Alertmanager put in their JSON.
    case trimmed
    /// Always three digits (`…:00.120Z`).
    case milliseconds
    /// Whole seconds, the milliseconds dropped (`…:00Z`).
    case none
}

/// A Unix time in ms as RFC 3339 in UTC (`2026-12-04T15:05:00.12Z`): `activeAt`, `startsAt`,
/// webhook payloads, token and cluster timestamps.
public func rfc3339(ms: Int64, fraction: RFC3339Fraction = .trimmed) -> String {
    var t = time_t(ms >= 0 ? ms / 1000 : (ms - 999) / 1000)
    var parts = tm()
    gmtime_r(&t, &parts)
    func pad(_ v: Int32, _ width: Int) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
    var out = "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
        + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))"
    let millis = Int32((ms % 1000 + 1000) % 1000)
    switch fraction {
    case .trimmed where millis > 0:
        var frac = pad(millis, 3)
        while frac.hasSuffix("0") { frac.removeLast() }
        out += "." + frac
    case .milliseconds:
        out += "." + pad(millis, 3)
    case .trimmed, .none:
        break
    }
    return out + "Z"
}
