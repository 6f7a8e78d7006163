/// Number parsing straight from bytes, without building a `String` in the common case.
enum NumberParsing {
    @usableFromInline static let exactPowersOf10: [Double] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ]

    /// Parses a decimal floating-point number: `[+-]? (digits [. digits*] | . digits) ([eE] [+-]? digits)?`.
    /// With `allowSpecial`, also `NaN`, `Inf`, `Infinity` (any case, `Inf`/`Infinity` signed).
    /// Returns nil on any other text (hex floats, empty, trailing bytes).
    ///
    /// Correctly rounded: numbers with at most 19 significant digits whose mantissa fits 53 bits
    /// and whose decimal exponent is within ±22 are computed exactly with one multiplication or
    /// division (Clinger's fast path: both operands are exact doubles); everything else goes to
    /// the standard library's correctly rounded parser.
    static func parseDouble(_ s: UnsafeRawBufferPointer, allowSpecial: Bool) -> Double? {
        let n = s.count
        if n == 0 { return nil }
        var i = 0
        var negative = false
        if s[0] == 0x2D || s[0] == 0x2B {
            negative = s[0] == 0x2D
            i = 1
        }
        var mantissa: UInt64 = 0
        var digits = 0  // significant digits accumulated into mantissa
        var droppedDigits = false
        var exp10 = 0
        var sawDigit = false
        while i < n, isASCIIDigit(s[i]) {
            sawDigit = true
            let d = UInt64(s[i] &- 0x30)
            if digits < 19 {
                if mantissa != 0 || d != 0 { digits += 1 }
                mantissa = mantissa &* 10 &+ d
            } else {
                exp10 += 1
                if d != 0 { droppedDigits = true }
            }
            i += 1
        }
        if i < n, s[i] == 0x2E {
            i += 1
            while i < n, isASCIIDigit(s[i]) {
                sawDigit = true
                let d = UInt64(s[i] &- 0x30)
                if digits < 19 {
                    if mantissa != 0 || d != 0 { digits += 1 }
                    mantissa = mantissa &* 10 &+ d
                    exp10 -= 1
                } else if d != 0 {
                    droppedDigits = true
                }
                i += 1
            }
        }
        if !sawDigit {
            return allowSpecial ? parseSpecial(s) : nil
        }
        if i < n, s[i] | 0x20 == 0x65 {  // e or E
            i += 1
            var expNegative = false
            if i < n, s[i] == 0x2D || s[i] == 0x2B {
                expNegative = s[i] == 0x2D
                i += 1
            }
            var e = 0
            var sawExpDigit = false
            while i < n, isASCIIDigit(s[i]) {
                sawExpDigit = true
                if e < 100_000 { e = e * 10 + Int(s[i] &- 0x30) }
                i += 1
            }
            if !sawExpDigit { return nil }
            exp10 += expNegative ? -e : e
        }
        if i != n { return nil }
        if mantissa == 0 { return negative ? -0.0 : 0.0 }
        if !droppedDigits, mantissa <= 1 << 53, exp10 >= -22, exp10 <= 22 {
            var v = Double(mantissa)
            if exp10 >= 0 { v *= exactPowersOf10[exp10] } else { v /= exactPowersOf10[-exp10] }
            return negative ? -v : v
        }
        // Slow path: the syntax is already validated, so the standard parser sees only decimals.
        return Double(String(decoding: s, as: UTF8.self))
    }

    private static func parseSpecial(_ s: UnsafeRawBufferPointer) -> Double? {
        var i = 0
        var sign: Double = 1
        var signed = false
        if let f = s.first, f == 0x2D || f == 0x2B {
            sign = f == 0x2D ? -1 : 1
            signed = true
            i = 1
        }
        let rest = UnsafeRawBufferPointer(rebasing: s[i...])
        @inline(__always) func equalsFolded(_ word: StaticString) -> Bool {
            guard rest.count == word.utf8CodeUnitCount else { return false }
            let w = UnsafeRawBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
            for k in 0..<rest.count where rest[k] | 0x20 != w[k] { return false }
            return true
        }
        if equalsFolded("inf") || equalsFolded("infinity") { return sign * .infinity }
        if !signed && equalsFolded("nan") { return .nan }
        return nil
    }

    /// `[+-]? digits` into Int64; nil on overflow or bad syntax.
    static func parseInt64(_ s: UnsafeRawBufferPointer) -> Int64? {
        guard let f = s.first else { return nil }
        let negative = f == 0x2D
        guard let v = digits(s, from: f == 0x2D || f == 0x2B ? 1 : 0) else { return nil }
        if negative {
            if v > UInt64(Int64.max) + 1 { return nil }
            return v == UInt64(Int64.max) + 1 ? Int64.min : -Int64(v)
        }
        return v > UInt64(Int64.max) ? nil : Int64(v)
    }

    /// `digits` into UInt64 (a leading `+` is accepted); nil on overflow, sign or bad syntax.
    static func parseUInt64(_ s: UnsafeRawBufferPointer) -> UInt64? {
        digits(s, from: s.first == 0x2B ? 1 : 0)
    }

    /// One or more decimal digits from `from` to the end, into UInt64; nil on overflow or a non-digit.
    @inline(__always)
    private static func digits(_ s: UnsafeRawBufferPointer, from: Int) -> UInt64? {
        if from >= s.count { return nil }
        var v: UInt64 = 0
        for i in from..<s.count {
            let b = s[i]
            guard isASCIIDigit(b) else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(b &- 0x30))
            if o1 || o2 { return nil }
            v = a
        }
        return v
    }
}
