/// Shortest round-tripping decimal text of a Double without exponent notation, the format of Go's
/// `strconv.FormatFloat(v, 'f', -1, 64)` which the Prometheus API uses for sample values.
///
/// Query responses print one value per point (a 1 h range over 100 series is 24,000 of them), so
/// this works on bytes and appends to the caller's buffer: it takes Swift's shortest
/// round-tripping digits (`description`, possibly with an exponent such as `1e-07` or
/// `1.5e+20`) and re-spells them positionally without building intermediate strings.
public enum ShortestDecimal {
    public static func format(_ v: Double) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(24)
        append(v, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public static func append(_ v: Double, to out: inout [UInt8]) {
        if v.isNaN { return out.append(contentsOf: "NaN".utf8) }
        if v.isInfinite { return out.append(contentsOf: (v < 0 ? "-Inf" : "+Inf").utf8) }
        if v == 0 { return out.append(contentsOf: (v.sign == .minus ? "-0" : "0").utf8) }
        var text = v.description
        text.withUTF8 { b in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: b.count) { digits in
                respell(b, digits: digits, to: &out)
            }
        }
    }

    /// `b`: `-?[0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)?`, the shape of `Double.description` for finite,
    /// non-zero values.
    private static func respell(_ b: UnsafeBufferPointer<UInt8>, digits: UnsafeMutableBufferPointer<UInt8>, to out: inout [UInt8]) {
        let zero = UInt8(ascii: "0")
        var i = 0
        if b[0] == UInt8(ascii: "-") {
            out.append(UInt8(ascii: "-"))
            i = 1
        }
        var n = 0
        var point = -1  // digits before the decimal point in the mantissa as written
        var exponent = 0
        while i < b.count {
            let c = b[i]
            i += 1
            if c == UInt8(ascii: ".") {
                point = n
            } else if c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
                var negative = false
                if i < b.count, b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: "+") {
                    negative = b[i] == UInt8(ascii: "-")
                    i += 1
                }
                while i < b.count {
                    exponent = exponent * 10 + Int(b[i] &- zero)
                    i += 1
                }
                if negative { exponent = -exponent }
            } else {
                digits[n] = c
                n += 1
            }
        }
        // Position of the decimal point within digits[start..<end].
        var pointPos = (point < 0 ? n : point) + exponent
        var start = 0
        while n - start > 1, digits[start] == zero {
            start += 1
            pointPos -= 1
        }
        var end = n
        while end - start > 1, digits[end - 1] == zero { end -= 1 }
        let count = end - start
        if pointPos <= 0 {
            out.append(zero)
            out.append(UInt8(ascii: "."))
            for _ in 0 ..< -pointPos { out.append(zero) }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[start..<end]))
        } else if pointPos >= count {
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[start..<end]))
            for _ in 0..<(pointPos - count) { out.append(zero) }
        } else {
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[start..<(start + pointPos)]))
            out.append(UInt8(ascii: "."))
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[(start + pointPos)..<end]))
        }
    }
}

extension Array where Element == UInt8 {
    /// Appends the decimal digits of `v` (with a leading `-` when negative).
    @inlinable
    public mutating func appendDecimal(_ v: Int64) {
        var m = v.magnitude
        if v < 0 { append(UInt8(ascii: "-")) }
        if m < 10 { return append(UInt8(ascii: "0") &+ UInt8(m)) }
        // At most 20 digits; written backwards into a small stack buffer.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buf in
            var i = 20
            while m > 0 {
                i -= 1
                buf[i] = UInt8(ascii: "0") &+ UInt8(m % 10)
                m /= 10
            }
            append(contentsOf: UnsafeBufferPointer(rebasing: buf[i..<20]))
        }
    }
}
