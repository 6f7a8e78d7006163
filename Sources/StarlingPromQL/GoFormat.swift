import StarlingCore

/// Text conversions that must match Prometheus byte for byte because clients see them: Go's
/// `strconv.Quote`, `%v` float formatting, `strconv.ParseInt(s, 0, 64)`/`ParseFloat`, and
/// Prometheus's duration syntax (`model.ParseDuration`, `model.Duration.String`).

/// Go's `strconv.Quote`: double-quoted, with Go escapes for non-printable characters.
public func goQuote(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars { appendQuoted(u, quote: "\"", into: &out) }
    out += "\""
    return out
}

/// Go's `strconv.QuoteRune` (`%q` on a rune); an invalid rune quotes as U+FFFD.
func goQuoteRune(_ r: UInt32) -> String {
    let u = Unicode.Scalar(r) ?? "\u{FFFD}"
    var out = "'"
    appendQuoted(u, quote: "'", into: &out)
    return out + "'"
}

/// Go's `%#U`: `U+0063 'c'`, or just `U+000A` for a non-printable rune.
func goRuneU(_ r: UInt32) -> String {
    var hex = String(r, radix: 16, uppercase: true)
    while hex.count < 4 { hex = "0" + hex }
    if let u = Unicode.Scalar(r), isGoPrintable(u) {
        return "U+\(hex) '\(Character(u))'"
    }
    return "U+\(hex)"
}

private func appendQuoted(_ u: Unicode.Scalar, quote: Unicode.Scalar, into out: inout String) {
    if u == quote || u == "\\" {
        out += "\\"
        out.unicodeScalars.append(u)
        return
    }
    if isGoPrintable(u) {
        out.unicodeScalars.append(u)
        return
    }
    switch u.value {
    case 0x07: out += "\\a"
    case 0x08: out += "\\b"
    case 0x0C: out += "\\f"
    case 0x0A: out += "\\n"
    case 0x0D: out += "\\r"
    case 0x09: out += "\\t"
    case 0x0B: out += "\\v"
    case let v where v < 0x20 || v == 0x7F:
        out += "\\x" + hexPadded(v, 2)
    case let v where v < 0x10000:
        out += "\\u" + hexPadded(v, 4)
    case let v:
        out += "\\U" + hexPadded(v, 8)
    }
}

private func hexPadded(_ v: UInt32, _ width: Int) -> String {
    var s = String(v, radix: 16)
    while s.count < width { s = "0" + s }
    return s
}

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII space.
func isGoPrintable(_ u: Unicode.Scalar) -> Bool {
    if u.value < 0x80 { return u.value >= 0x20 && u.value < 0x7F }
    switch u.properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
        .nonspacingMark, .spacingMark, .enclosingMark,
        .decimalNumber, .letterNumber, .otherNumber,
        .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
        .initialPunctuation, .finalPunctuation, .otherPunctuation,
        .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol:
        return true
    default:
        return false
    }
}

/// The shortest decimal digits that round-trip `v` (finite, non-zero, positive): the value is
/// `0.d1d2d3… × 10^pointPosition`.
func shortestDigits(_ v: Double) -> (digits: [UInt8], pointPosition: Int) {
    // Swift's description is the shortest round-tripping representation (like Go's).
    let s = Array(v.description.utf8)
    var mantissa: [UInt8] = []
    var exponent = 0
    var pointAt: Int? = nil
    var i = 0
    while i < s.count {
        let ch = s[i]
        if ch == UInt8(ascii: "e") || ch == UInt8(ascii: "E") {
            exponent = Int(String(decoding: s[(i + 1)...], as: UTF8.self)) ?? 0
            break
        }
        if ch == UInt8(ascii: ".") {
            pointAt = mantissa.count
        } else if ch >= UInt8(ascii: "0") && ch <= UInt8(ascii: "9") {
            mantissa.append(ch - UInt8(ascii: "0"))
        }
        i += 1
    }
    var point = (pointAt ?? mantissa.count) + exponent
    while let f = mantissa.first, f == 0, mantissa.count > 1 {
        mantissa.removeFirst()
        point -= 1
    }
    while let l = mantissa.last, l == 0, mantissa.count > 1 { mantissa.removeLast() }
    return (mantissa, point)
}

/// Go's `%v` for a float64 (`strconv.FormatFloat(v, 'g', -1, 64)` with Go's shortest-`%g`
/// exponent threshold): `1e+06`, `123456`, `0.0001`, `1e-05`, `+Inf`, `NaN`.
public func goFormatFloat(_ v: Double) -> String {
    if v.isNaN { return "NaN" }
    if v.isInfinite { return v < 0 ? "-Inf" : "+Inf" }
    if v == 0 { return v.sign == .minus ? "-0" : "0" }
    let (digits, dp) = shortestDigits(Swift.abs(v))
    var out = v < 0 ? "-" : ""
    let exp = dp - 1
    if exp < -4 || exp >= 6 {
        // %e with the shortest digits.
        out += String(digits[0])
        if digits.count > 1 {
            out += "."
            for d in digits[1...] { out += String(d) }
        }
        out += exp < 0 ? "e-" : "e+"
        let a = Swift.abs(exp)
        out += a < 10 ? "0\(a)" : "\(a)"
        return out
    }
    // %f with exactly the needed fraction digits.
    if dp > 0 {
        for k in 0..<dp { out += k < digits.count ? String(digits[k]) : "0" }
    } else {
        out += "0"
    }
    let fraction = Swift.max(digits.count - dp, 0)
    if fraction > 0 {
        out += "."
        for k in 0..<fraction {
            let idx = dp + k
            out += idx >= 0 && idx < digits.count ? String(digits[idx]) : "0"
        }
    }
    return out
}

/// Parses a PromQL number literal the way Prometheus does: `strconv.ParseInt(s, 0, 64)` (so
/// `0x1f` is hex and `010` is octal), falling back to `strconv.ParseFloat(s, 64)`.
/// Returns the Go error text on failure.
func parseGoNumber(_ s: String) -> Result<Double, NumberSyntaxError> {
    if let i = parseGoInt(s) { return .success(Double(i)) }
    return parseGoFloat(s)
}

public struct NumberSyntaxError: Error, CustomStringConvertible {
    public var description: String
}

/// `strconv.ParseInt(s, 0, 64)` for unsigned input; nil on any error.
private func parseGoInt(_ s: String) -> Int64? {
    var b = Array(s.utf8)
    if b.first == UInt8(ascii: "+") || b.first == UInt8(ascii: "-") { return nil }
    var base: UInt64 = 10
    if b.count >= 2 && b[0] == UInt8(ascii: "0") {
        switch b[1] {
        case UInt8(ascii: "x"), UInt8(ascii: "X"): base = 16; b.removeFirst(2)
        case UInt8(ascii: "o"), UInt8(ascii: "O"): base = 8; b.removeFirst(2)
        case UInt8(ascii: "b"), UInt8(ascii: "B"): base = 2; b.removeFirst(2)
        default: base = 8; b.removeFirst(1)
        }
    }
    if b.isEmpty { return nil }
    var n: UInt64 = 0
    for ch in b {
        let d = UInt64(digitValue(UInt32(ch)))
        if d >= base { return nil }
        let (m, o1) = n.multipliedReportingOverflow(by: base)
        let (a, o2) = m.addingReportingOverflow(d)
        if o1 || o2 { return nil }
        n = a
    }
    if n > UInt64(Int64.max) { return nil }
    return Int64(n)
}

/// `strconv.ParseFloat(s, 64)` for the shapes the lexer produces: decimal floats and the
/// special words `inf`/`infinity`/`nan` (any case, optional sign).
func parseGoFloat(_ s: String) -> Result<Double, NumberSyntaxError> {
    let invalid = NumberSyntaxError(description: "strconv.ParseFloat: parsing \(goQuote(s)): invalid syntax")
    var body = Substring(s)
    var negative = false
    if body.first == "+" || body.first == "-" {
        negative = body.first == "-"
        body = body.dropFirst()
    }
    switch body.lowercased() {
    case "inf", "infinity": return .success(negative ? -.infinity : .infinity)
    case "nan": return .success(.nan)
    default: break
    }
    // Decimal syntax: digits [. digits] [e [+-] digits], at least one mantissa digit.
    let b = Array(body.utf8)
    var i = 0
    var mantissaDigits = 0
    while i < b.count, isDigit(UInt32(b[i])) { i += 1; mantissaDigits += 1 }
    if i < b.count, b[i] == UInt8(ascii: ".") {
        i += 1
        while i < b.count, isDigit(UInt32(b[i])) { i += 1; mantissaDigits += 1 }
    }
    if mantissaDigits == 0 { return .failure(invalid) }
    if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
        i += 1
        if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
        var expDigits = 0
        while i < b.count, isDigit(UInt32(b[i])) { i += 1; expDigits += 1 }
        if expDigits == 0 { return .failure(invalid) }
    }
    if i != b.count { return .failure(invalid) }
    guard let v = Double(String(body)) else { return .failure(invalid) }
    if v.isInfinite {
        return .failure(NumberSyntaxError(description: "strconv.ParseFloat: parsing \(goQuote(s)): value out of range"))
    }
    return .success(negative ? -v : v)
}

/// Prometheus durations: `1y2w3d4h5m6s7ms`, units in this order, each at most once; `0` alone.
/// Returns milliseconds.
public func parsePromDuration(_ s: String) -> Result<Int64, NumberSyntaxError> {
    if s == "0" { return .success(0) }
    if s.isEmpty { return .failure(NumberSyntaxError(description: "empty duration string")) }
    let units: [(String, Int64)] = [
        ("y", 365 * 24 * 3_600_000), ("w", 7 * 24 * 3_600_000), ("d", 24 * 3_600_000),
        ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1),
    ]
    let b = Array(s.utf8)
    var i = 0
    var unitIndex = 0
    var total: Int64 = 0
    var overflow = false
    let invalid = NumberSyntaxError(description: "not a valid duration string: \(goQuote(s))")
    while i < b.count {
        let digitsStart = i
        while i < b.count, isDigit(UInt32(b[i])) { i += 1 }
        if i == digitsStart { return .failure(invalid) }
        let numberText = String(decoding: b[digitsStart..<i], as: UTF8.self)
        // The unit: "ms" is two letters; everything else one.
        var unit = ""
        if i + 1 < b.count, b[i] == UInt8(ascii: "m"), b[i + 1] == UInt8(ascii: "s") {
            unit = "ms"
            i += 2
        } else if i < b.count {
            unit = String(UnicodeScalar(b[i]))
            i += 1
        } else {
            return .failure(invalid)
        }
        guard let k = units[unitIndex...].firstIndex(where: { $0.0 == unit }) else { return .failure(invalid) }
        unitIndex = k + 1
        let mult = units[k].1
        let n = Int64(numberText) ?? Int64.max
        if Int64(numberText) == nil || n > Int64.max / mult { overflow = true }
        let (sum, o) = total.addingReportingOverflow(n.multipliedReportingOverflow(by: mult).partialValue)
        if o || sum < 0 { overflow = true }
        total = sum
    }
    if overflow { return .failure(NumberSyntaxError(description: "duration out of range")) }
    return .success(total)
}

/// Prometheus's duration text (`model.Duration.String`): `90d` rather than `12w6d`, `1h30m`,
/// `0s` for zero. Input in milliseconds, non-negative.
public func formatPromDuration(_ ms: Int64) -> String {
    if ms == 0 { return "0s" }
    var rest = ms
    var out = ""
    func unit(_ name: String, _ mult: Int64, exact: Bool) {
        if exact && rest % mult != 0 { return }
        let v = rest / mult
        if v > 0 {
            out += "\(v)\(name)"
            rest -= v * mult
        }
    }
    unit("y", 365 * 24 * 3_600_000, exact: true)
    unit("w", 7 * 24 * 3_600_000, exact: true)
    unit("d", 24 * 3_600_000, exact: false)
    unit("h", 3_600_000, exact: false)
    unit("m", 60_000, exact: false)
    unit("s", 1000, exact: false)
    unit("ms", 1, exact: false)
    return out
}

/// `%.3f` of a millisecond timestamp in seconds, formatted exactly from the integer.
func formatSecondsMillis(_ ms: Int64) -> String {
    let negative = ms < 0
    let mag = ms.magnitude
    let frac = String(mag % 1000)
    return (negative ? "-" : "") + "\(mag / 1000)." + String(repeating: "0", count: 3 - frac.count) + frac
}
