/// Parses a Prometheus duration (`model.Duration`): units `y w d h m s ms`, each at most once
/// and in that order (`1h30m`, `90s`, `1d`, `250ms`), or `0`. A year is 365 days. Returns
/// milliseconds, or nil when the text is not a duration or overflows.
public func parsePrometheusDurationMs(_ text: String) -> Int64? {
    if text == "0" { return 0 }
    let units: [(String, Int64)] = [
        ("y", 365 * 86_400_000), ("w", 7 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000),
        ("s", 1_000), ("ms", 1),
    ]
    let b = Array(text.utf8)
    if b.isEmpty { return nil }
    var i = 0
    var total: Int64 = 0
    var nextUnit = 0  // units must appear in order, each once
    while i < b.count {
        var n: Int64 = 0
        let start = i
        while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
            let (m, o1) = n.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int64(b[i] - 0x30))
            if o1 || o2 { return nil }
            n = a
            i += 1
        }
        if i == start { return nil }
        let uStart = i
        while i < b.count, b[i] >= 0x61, b[i] <= 0x7A { i += 1 }
        let unit = String(decoding: b[uStart..<i], as: UTF8.self)
        guard let k = units.firstIndex(where: { $0.0 == unit }), k >= nextUnit else { return nil }
        nextUnit = k + 1
        let (m, o1) = n.multipliedReportingOverflow(by: units[k].1)
        let (t, o2) = total.addingReportingOverflow(m)
        if o1 || o2 { return nil }
        total = t
    }
    return total
}

/// Formats milliseconds the way Prometheus prints a `model.Duration` (`1h30m`, `5m`, `0s`).
public func formatPrometheusDuration(_ ms: Int64) -> String {
    if ms == 0 { return "0s" }
    var r = ms
    var out = ""
    for (unit, size) in [("y", Int64(365 * 86_400_000)), ("w", 7 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if r >= size {
            out += "\(r / size)\(unit)"
            r %= size
        }
    }
    return out
}
