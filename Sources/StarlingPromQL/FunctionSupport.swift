#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import StarlingCore

// MARK: Math with Go's semantics

/// Go's `math.Max`: +Inf wins over NaN, NaN otherwise propagates, +0 beats -0.
@inline(__always) func goMax(_ x: Double, _ y: Double) -> Double {
    if x == .infinity || y == .infinity { return .infinity }
    if x.isNaN || y.isNaN { return .nan }
    if x == 0 && x == y { return x.sign == .minus ? y : x }
    return x > y ? x : y
}

/// Go's `math.Min`: -Inf wins over NaN, NaN otherwise propagates, -0 beats +0.
@inline(__always) func goMin(_ x: Double, _ y: Double) -> Double {
    if x == -.infinity || y == -.infinity { return -.infinity }
    if x.isNaN || y.isNaN { return .nan }
    if x == 0 && x == y { return x.sign == .minus ? x : y }
    return x < y ? x : y
}

/// The element-wise functions of one instant vector.
func simpleFunction(_ name: String) -> ((Double) -> Double)? {
    switch name {
    case "abs": return { Swift.abs($0) }
    case "ceil": return { $0.rounded(.up) }
    case "floor": return { $0.rounded(.down) }
    case "exp": return { exp($0) }
    case "sqrt": return { $0.squareRoot() }
    case "ln": return { log($0) }
    case "log2": return { goLog2($0) }
    case "log10": return { log10($0) }
    case "sin": return { sin($0) }
    case "cos": return { cos($0) }
    case "tan": return { tan($0) }
    case "asin": return { asin($0) }
    case "acos": return { acos($0) }
    case "atan": return { atan($0) }
    case "sinh": return { sinh($0) }
    case "cosh": return { cosh($0) }
    case "tanh": return { tanh($0) }
    case "asinh": return { asinh($0) }
    case "acosh": return { acosh($0) }
    case "atanh": return { atanh($0) }
    case "rad": return { $0 * Double.pi / 180 }
    case "deg": return { $0 * 180 / Double.pi }
    case "sgn": return { $0 < 0 ? -1 : ($0 > 0 ? 1 : $0) }
    default: return nil
    }
}

/// Go's `math.Log2`: exact for powers of two.
func goLog2(_ x: Double) -> Double {
    if x.isNaN || x <= 0 || x.isInfinite { return log2(x) }
    let e = x.exponent
    let frac = x.significand / 2  // in [0.5, 1)
    if frac == 0.5 { return Double(e) }
    return log(frac) * (1 / M_LN2) + Double(e + 1)
}

@inline(__always) func goPow(_ x: Double, _ y: Double) -> Double { pow(x, y) }
@inline(__always) func goMod(_ x: Double, _ y: Double) -> Double { fmod(x, y) }
@inline(__always) func goAtan2(_ y: Double, _ x: Double) -> Double { atan2(y, x) }

// MARK: Dates (Go's time package, so out-of-range inputs give the same answers)

/// Go's `int64(f)` on amd64: truncation, and the "integer indefinite" value for NaN, ±Inf and
/// out-of-range inputs.
@inline(__always) func goFloatToInt64(_ v: Double) -> Int64 {
    if v.isNaN || v >= 9.223372036854775807e18 || v < -9.223372036854775808e18 { return Int64.min }
    return Int64(v)
}

/// Go's absolute time (seconds since year -292277022399) of `time.Unix(seconds, 0)`.
@inline(__always) func goUnixAbs(seconds: Int64) -> UInt64 {
    UInt64(bitPattern: seconds &+ 62_135_596_800 &+ 9_223_371_966_579_724_800)
}

private let absoluteZeroYear: Int64 = -292_277_022_399
private let daysPer400Years: UInt64 = 365 * 400 + 97
private let daysPer100Years: UInt64 = 365 * 100 + 24
private let daysPer4Years: UInt64 = 365 * 4 + 1
private let daysBefore: [Int] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365]

private func isLeap(_ year: Int64) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

/// Year, month (1-12), day (1-31) and day of year (0-based) of an absolute time, as Go's `absDate`.
private func absDate(_ abs: UInt64) -> (year: Int64, month: Int, day: Int, yday: Int) {
    var d = abs / 86_400
    var n = d / daysPer400Years
    var y = 400 * n
    d -= daysPer400Years * n
    n = d / daysPer100Years
    n -= n >> 2
    y += 100 * n
    d -= daysPer100Years * n
    n = d / daysPer4Years
    y += 4 * n
    d -= daysPer4Years * n
    n = d / 365
    n -= n >> 2
    y += n
    d -= 365 * n
    let year = Int64(bitPattern: y) &+ absoluteZeroYear
    let yday = Int(d)
    var day = yday
    if isLeap(year) {
        if day > 31 + 29 - 1 {
            day -= 1
        } else if day == 31 + 29 - 1 {
            return (year, 2, 29, yday)
        }
    }
    var month = day / 31
    let end = daysBefore[month + 1]
    var begin: Int
    if day >= end {
        month += 1
        begin = end
    } else {
        begin = daysBefore[month]
    }
    month += 1
    day = day - begin + 1
    return (year, month, day, yday)
}

/// The date functions, on Go absolute times.
func dateFunction(_ name: String) -> ((UInt64) -> Double)? {
    switch name {
    case "year": return { Double(absDate($0).year) }
    case "month": return { Double(absDate($0).month) }
    case "day_of_month": return { Double(absDate($0).day) }
    case "day_of_year": return { Double(absDate($0).yday + 1) }
    case "day_of_week": return { Double(($0 &+ 86_400) % 604_800 / 86_400) }
    case "hour": return { Double($0 % 86_400 / 3_600) }
    case "minute": return { Double($0 % 3_600 / 60) }
    case "days_in_month":
        return { abs in
            let d = absDate(abs)
            if d.month == 2 { return isLeap(d.year) ? 29 : 28 }
            return Double(daysBefore[d.month] - daysBefore[d.month - 1])
        }
    default: return nil
    }
}

// MARK: absent()

/// Labels of `absent(selector)`'s result: the selector's equality matchers (not the metric name);
/// a label matched more than once, or by another kind of matcher, is left out.
func labelsForAbsent(_ matchers: [LabelMatcher]) -> Labels {
    var b = LabelsBuilder()
    var has = Set<String>()
    for m in matchers where m.name != metricNameLabel {
        if m.kind == .equal && !has.contains(m.name) {
            b.set(m.name, m.value)
            has.insert(m.name)
        } else {
            b.remove(m.name)
        }
    }
    return b.build()
}

extension Expr {
    /// The expression without enclosing parentheses (step-invariant wrappers kept).
    var unwrappingParens: Expr {
        var e = self
        while case .paren(let p) = e { e = p.expr }
        return e
    }
}

// MARK: Classic histogram quantiles

struct Bucket {
    var upperBound: Double
    var count: Double
}

/// Prometheus's `bucketQuantile`: sorts and merges the buckets, forces cumulative counts to be
/// monotonic, and interpolates linearly inside the bucket holding the rank.
func bucketQuantile(_ q: Double, _ buckets: inout [Bucket]) -> Double {
    if q.isNaN { return .nan }
    if q < 0 { return -.infinity }
    if q > 1 { return .infinity }
    buckets.sort { $0.upperBound < $1.upperBound }
    guard let last = buckets.last, last.upperBound == .infinity else { return .nan }
    // Merge buckets with the same upper bound.
    var merged: [Bucket] = []
    merged.reserveCapacity(buckets.count)
    var cur = buckets[0]
    for b in buckets.dropFirst() {
        if b.upperBound == cur.upperBound {
            cur.count += b.count
        } else {
            merged.append(cur)
            cur = b
        }
    }
    merged.append(cur)
    // Monotonic counts.
    var maxCount = merged[0].count
    for i in 1..<merged.count {
        if merged[i].count > maxCount {
            maxCount = merged[i].count
        } else if merged[i].count < maxCount {
            merged[i].count = maxCount
        }
    }
    if merged.count < 2 { return .nan }
    let observations = merged[merged.count - 1].count
    if observations == 0 { return .nan }
    var rank = q * observations
    // First bucket (among all but the last) whose count reaches the rank.
    var b = merged.count - 1
    var lo = 0, hi = merged.count - 1
    while lo < hi {
        let mid = (lo + hi) / 2
        if merged[mid].count >= rank { hi = mid } else { lo = mid + 1 }
    }
    b = lo
    if b == merged.count - 1 { return merged[merged.count - 2].upperBound }
    if b == 0 && merged[0].upperBound <= 0 { return merged[0].upperBound }
    var bucketStart = 0.0
    let bucketEnd = merged[b].upperBound
    var count = merged[b].count
    if b > 0 {
        bucketStart = merged[b - 1].upperBound
        count -= merged[b - 1].count
        rank -= merged[b - 1].count
    }
    return bucketStart + (bucketEnd - bucketStart) * (rank / count)
}

// MARK: Regular expressions for label_replace (Go RE2 semantics where Swift differs)

/// A regular expression matched as Go's `regexp` does for `label_replace`: whole-string match,
/// code-point semantics, ASCII-only `\d \w \s \b`, `.` not matching newline.
struct GoRegex {
    private let regex: Regex<AnyRegexOutput>

    init(_ pattern: String) throws {
        // The caller passes `^(?:…)$`; a whole match is the same without anchors (and avoids
        // `$` matching before a final newline).
        var body = pattern
        if body.hasPrefix("^(?:") && body.hasSuffix(")$") {
            body = "(?:" + body.dropFirst(4).dropLast(2) + ")"
        }
        regex = try Regex(body).matchingSemantics(.unicodeScalar).asciiOnlyCharacterClasses()
    }

    /// The capture ranges of a whole-string match (index 0 is the whole match), or nil.
    func match(_ s: String) -> [(Range<String.Index>?, String?)]? {
        guard let m = try? regex.wholeMatch(in: s) else { return nil }
        var out: [(Range<String.Index>?, String?)] = []
        for i in 0..<m.output.count {
            out.append((m.output[i].range, m.output[i].name))
        }
        return out
    }
}

/// Go's `Regexp.ExpandString` template expansion: `$1`, `${1}`, `$name`, `${name}`, `$$`.
func expandTemplate(_ template: String, value: String, groups: [(Range<String.Index>?, String?)]) -> String {
    var out = ""
    var t = Substring(template)
    while let dollar = t.firstIndex(of: "$") {
        out += t[..<dollar]
        t = t[t.index(after: dollar)...]
        if t.first == "$" {
            out += "$"
            t = t.dropFirst()
            continue
        }
        guard let (name, num, rest) = extractTemplateName(t) else {
            out += "$"
            continue
        }
        t = rest
        if num >= 0 {
            if num < groups.count, let r = groups[num].0 { out += value[r] }
        } else {
            for (i, g) in groups.enumerated() where i > 0 && g.1 == name {
                if let r = g.0 {
                    out += value[r]
                    break
                }
            }
        }
    }
    out += t
    return out
}

/// Go's `regexp.extract`: a leading `name` or `{name}`; `num` is its value when numeric.
private func extractTemplateName(_ str: Substring) -> (String, Int, Substring)? {
    var s = str
    if s.isEmpty { return nil }
    var brace = false
    if s.first == "{" {
        brace = true
        s = s.dropFirst()
    }
    var end = s.startIndex
    for u in s.unicodeScalars {
        let p = u.properties
        let isLetter = p.generalCategory.isLetter
        let isDigitChar = p.generalCategory == .decimalNumber
        if !isLetter && !isDigitChar && u != "_" { break }
        end = s.unicodeScalars.index(after: end)
    }
    if end == s.startIndex { return nil }
    let name = String(s[..<end])
    var rest = s[end...]
    if brace {
        guard rest.first == "}" else { return nil }
        rest = rest.dropFirst()
    }
    var num = 0
    for b in name.utf8 {
        if b < UInt8(ascii: "0") || b > UInt8(ascii: "9") || num >= 100_000_000 {
            num = -1
            break
        }
        num = num * 10 + Int(b - UInt8(ascii: "0"))
    }
    if name.utf8.first == UInt8(ascii: "0") && name.utf8.count > 1 { num = -1 }
    return (name, num, rest)
}

extension Unicode.GeneralCategory {
    var isLetter: Bool {
        switch self {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }
}
