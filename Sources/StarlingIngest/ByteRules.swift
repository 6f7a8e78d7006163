/// Byte-level checks shared by every decoder: UTF-8 validity, NUL, name syntax. They work on raw
/// bytes because the decoders never build a `String` for a label on the hot path.

/// Length of the valid UTF-8 sequence starting at `i`, or 0 when the bytes there are not valid
/// UTF-8 (overlong forms, surrogates, code points above U+10FFFF and truncated sequences are
/// all invalid, as in Go's `utf8.Valid`).
@inline(__always)
func utf8SequenceLength(_ s: UnsafeRawBufferPointer, at i: Int) -> Int {
    let b0 = s[i]
    if b0 < 0x80 { return 1 }
    let n = s.count
    @inline(__always) func cont(_ k: Int) -> Bool { k < n && s[k] & 0xC0 == 0x80 }
    switch b0 {
    case 0xC2...0xDF:
        return cont(i + 1) ? 2 : 0
    case 0xE0:
        return i + 1 < n && (0xA0...0xBF).contains(s[i + 1]) && cont(i + 2) ? 3 : 0
    case 0xE1...0xEC, 0xEE...0xEF:
        return cont(i + 1) && cont(i + 2) ? 3 : 0
    case 0xED:
        return i + 1 < n && (0x80...0x9F).contains(s[i + 1]) && cont(i + 2) ? 3 : 0
    case 0xF0:
        return i + 1 < n && (0x90...0xBF).contains(s[i + 1]) && cont(i + 2) && cont(i + 3) ? 4 : 0
    case 0xF1...0xF3:
        return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0
    case 0xF4:
        return i + 1 < n && (0x80...0x8F).contains(s[i + 1]) && cont(i + 2) && cont(i + 3) ? 4 : 0
    default:
        return 0
    }
}

/// The result of checking a label name or value's bytes.
enum TextCheck: Equatable {
    case ok
    /// Byte offset (within the checked bytes) of a NUL.
    case nul(at: Int)
    /// Byte offset of the first byte that does not start a valid UTF-8 sequence.
    case invalidUTF8(at: Int)
}

/// Checks that `s` is valid UTF-8 without NUL bytes. ASCII runs are checked 8 bytes at a time.
@inline(__always)
func checkText(_ s: UnsafeRawBufferPointer) -> TextCheck {
    let n = s.count
    var i = 0
    while i < n {
        // Fast path: 8 ASCII bytes with no zero byte.
        if i + 8 <= n {
            let w = s.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            let hasHigh = w & 0x8080_8080_8080_8080 != 0
            let hasZero = (w &- 0x0101_0101_0101_0101) & ~w & 0x8080_8080_8080_8080 != 0
            if !hasHigh && !hasZero {
                i += 8
                continue
            }
        }
        let b = s[i]
        if b == 0 { return .nul(at: i) }
        if b < 0x80 {
            i += 1
            continue
        }
        let len = utf8SequenceLength(s, at: i)
        if len == 0 { return .invalidUTF8(at: i) }
        i += len
    }
    return .ok
}

@inline(__always) func isASCIILetterOrUnderscore(_ b: UInt8) -> Bool {
    (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || b == 0x5F
}

@inline(__always) func isASCIIDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

/// `[a-zA-Z_][a-zA-Z0-9_]*` on bytes (`isValidLabelName` in StarlingCore, without a String).
@inline(__always)
func isValidLabelNameBytes(_ s: UnsafeRawBufferPointer) -> Bool {
    guard let first = s.first, isASCIILetterOrUnderscore(first) else { return false }
    for b in s.dropFirst() where !(isASCIILetterOrUnderscore(b) || isASCIIDigit(b)) { return false }
    return true
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*` on bytes (`isValidMetricName` in StarlingCore, without a String).
@inline(__always)
func isValidMetricNameBytes(_ s: UnsafeRawBufferPointer) -> Bool {
    guard let first = s.first, isASCIILetterOrUnderscore(first) || first == 0x3A else { return false }
    for b in s.dropFirst() where !(isASCIILetterOrUnderscore(b) || isASCIIDigit(b) || b == 0x3A) { return false }
    return true
}

/// How a decoder treats metric and label names that break the classic Prometheus syntax.
public enum NamePolicy: String, Sendable, Equatable {
    /// Reject the series with `invalid_metric_name` / `invalid_label_name`. The default for
    /// Prometheus remote write and JSON import, whose clients speak Prometheus names already:
    /// renaming would make the stored series differ from what the client believes it wrote.
    case reject
    /// Rewrite the name to the classic syntax: every byte or UTF-8 character outside the allowed
    /// set becomes `_`, and a leading digit gets a `_` prefix (`cpu.load-1` → `cpu_load_1`,
    /// `1m` → `_1m`). The default for Influx line protocol (and OTLP), whose names
    /// conventionally contain `.`, `-` or `/`.
    case sanitize
}

/// Appends the sanitized form of `name` to `out`. `allowColon` is true for metric names.
/// Invalid UTF-8 bytes each become one `_`, like any other disallowed character.
func appendSanitizedName(_ name: UnsafeRawBufferPointer, allowColon: Bool, to out: inout [UInt8]) {
    if let f = name.first, isASCIIDigit(f) { out.append(0x5F) }
    var i = 0
    while i < name.count {
        let b = name[i]
        if isASCIILetterOrUnderscore(b) || isASCIIDigit(b) || (allowColon && b == 0x3A) {
            out.append(b)
            i += 1
        } else {
            out.append(0x5F)
            i += b < 0x80 ? 1 : Swift.max(1, utf8SequenceLength(name, at: i))
        }
    }
}

/// Bytewise three-way comparison of two names, 8 bytes per step (the names' lexicographic
/// byte order, as `compareBytes` in StarlingCore).
@inline(__always)
func compareNames(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
    let n = Swift.min(a.count, b.count)
    var i = 0
    while i + 8 <= n {
        let x = UInt64(bigEndian: a.loadUnaligned(fromByteOffset: i, as: UInt64.self))
        let y = UInt64(bigEndian: b.loadUnaligned(fromByteOffset: i, as: UInt64.self))
        if x != y { return x < y ? -1 : 1 }
        i += 8
    }
    while i < n {
        if a[i] != b[i] { return a[i] < b[i] ? -1 : 1 }
        i += 1
    }
    return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
}
