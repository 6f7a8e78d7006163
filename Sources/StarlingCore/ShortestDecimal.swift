/// Shortest round-tripping decimal text of a Double without exponent notation, the format of Go's
/// `strconv.FormatFloat(v, 'f', -1, 64)` which the Prometheus API uses for sample values.
public enum ShortestDecimal {
    public static func format(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v < 0 ? "-Inf" : "+Inf" }
        if v == 0 { return v.sign == .minus ? "-0" : "0" }
        // Swift's description is the shortest round-tripping representation, possibly with an
        // exponent ("1e-07", "1.5e+20"). Re-spell it positionally.
        var s = v.description
        var negative = false
        if s.hasPrefix("-") { negative = true; s.removeFirst() }
        var exponent = 0
        if let e = s.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(s[s.index(after: e)...]) ?? 0
            s = String(s[..<e])
        }
        var intPart = s
        var fracPart = ""
        if let dot = s.firstIndex(of: ".") {
            intPart = String(s[..<dot])
            fracPart = String(s[s.index(after: dot)...])
        }
        var digits = intPart + fracPart
        var pointPos = intPart.count + exponent  // position of the decimal point in `digits`
        // Trim leading zeros of digits while keeping the point position consistent.
        while digits.count > 1, digits.first == "0" {
            digits.removeFirst()
            pointPos -= 1
        }
        while digits.count > 1, digits.last == "0", digits.count > pointPos { digits.removeLast() }
        var out: String
        if pointPos <= 0 {
            out = "0." + String(repeating: "0", count: -pointPos) + digits
        } else if pointPos >= digits.count {
            out = digits + String(repeating: "0", count: pointPos - digits.count)
        } else {
            let i = digits.index(digits.startIndex, offsetBy: pointPos)
            out = String(digits[..<i]) + "." + String(digits[i...])
        }
        if out.contains(".") {
            while out.hasSuffix("0") { out.removeLast() }
            if out.hasSuffix(".") { out.removeLast() }
        }
        return negative ? "-" + out : out
    }
}
