#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A Unix time in ms as RFC 3339 in UTC, with fractional seconds as Go's `RFC3339Nano` prints
/// them (trailing zeros cut, none when whole): `2026-12-04T15:05:00.12Z`. What Prometheus and
/// Alertmanager put in their JSON (`activeAt`, `startsAt`, webhook payloads).
public func rfc3339(ms: Int64) -> String {
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
    if millis > 0 {
        var frac = pad(millis, 3)
        while frac.hasSuffix("0") { frac.removeLast() }
        out += "." + frac
    }
    return out + "Z"
}
