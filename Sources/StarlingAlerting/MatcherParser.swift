import StarlingCore

/// A syntax error in an Alertmanager matcher string, with the byte offset where it was found
/// and the grammar rule it broke, so `amtool`/API users can see exactly what to fix.
public struct MatcherParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The rule that was broken; stable names, used by tests and by the API's error text.
    public enum Rule: String, Sendable, Equatable {
        case missingClosingBrace = "missing closing '}'"
        case unexpectedAfterClosingBrace = "unexpected input after closing '}'"
        case expectedLabelName = "expected a label name"
        case expectedOperator = "expected an operator (=, !=, =~, !~)"
        case expectedValue = "expected a value"
        case expectedCommaOrEnd = "expected ',' or the end of the matcher list"
        case unterminatedQuote = "unterminated quoted string"
        case invalidEscape = "invalid escape sequence"
        case invalidRegex = "invalid regular expression"
        case tooManyMatchers = "too many matchers"
        case inputTooLong = "input too long"
    }

    /// The whole input that was parsed.
    public let input: String
    /// 0-based UTF-8 byte offset of the offending token.
    public let offset: Int
    public let rule: Rule
    /// Extra detail: the token found, or the regex engine's message.
    public let detail: String

    public var description: String {
        "\(offset): \(rule.rawValue)" + (detail.isEmpty ? "" : ": \(detail)") + " in \(quoteLabelValue(input))"
    }
}

/// Parser for Alertmanager's matcher syntax, as accepted by its API, `amtool` and the
/// `matchers:` lists of its configuration:
///
///   - the list form `{a="b", c=~"d.*"}` and the unbraced form `a="b",c=~"d.*"` (what
///     `amtool silence add` and `amtool alert query` send);
///   - operators `=`, `!=`, `=~`, `!~`; regexes are fully anchored;
///   - values double-quoted with Go escapes (`\"`, `\\`, `\n`, `\t`, `\r`) or unquoted
///     (`a=b`), an unquoted value runs to the next `,`, `}` or whitespace;
///   - label names unquoted (any characters except `{}!=~,"'` and whitespace) or double-quoted
///     (UTF-8 names, as in Alertmanager 0.27+);
///   - whitespace around tokens ignored; one trailing comma allowed; `{}` and the empty
///     string are the empty list.
///
/// Differences from Alertmanager: `.` in a regex also matches a newline (Starling's regex
/// anchoring is Prometheus's `^(?s:…)$`; Alertmanager uses `^(?:…)$`).
public struct MatcherParser: Sendable {
    /// Longest input accepted, in bytes. Matchers come from API requests and config files;
    /// the bound keeps a hostile request from making the regex compiler do unbounded work.
    public var maxInputBytes: Int = 64 * 1024
    /// Most matchers in one list. Alertmanager has no limit; 256 is far beyond any real
    /// silence or route and bounds per-alert matching work.
    public var maxMatchers: Int = 256

    public init() {}

    /// Parses a list of matchers in either form.
    public func parseList(_ input: String) throws(MatcherParseError) -> [LabelMatcher] {
        var s = try scanner(input)
        var braced = false
        if s.peek == UInt8(ascii: "{") {
            braced = true
            s.pos += 1
        }
        var out: [LabelMatcher] = []
        while true {
            s.skipSpace()
            if s.atEnd {
                if braced { throw s.error(.missingClosingBrace, at: s.pos, "") }
                return out
            }
            if braced && s.peek == UInt8(ascii: "}") {
                s.pos += 1
                s.skipSpace()
                if !s.atEnd { throw s.error(.unexpectedAfterClosingBrace, at: s.pos, s.tokenPreview()) }
                return out
            }
            if out.count == maxMatchers {
                throw s.error(.tooManyMatchers, at: s.pos, "limit is \(maxMatchers)")
            }
            out.append(try s.matcher())
            s.skipSpace()
            if s.atEnd || s.peek == UInt8(ascii: "}") { continue }
            if s.peek == UInt8(ascii: ",") {
                s.pos += 1
                continue
            }
            throw s.error(.expectedCommaOrEnd, at: s.pos, s.tokenPreview())
        }
    }

    /// Parses exactly one matcher (`a="b"`, braces not allowed), as in a `matchers:` list entry.
    public func parseOne(_ input: String) throws(MatcherParseError) -> LabelMatcher {
        var s = try scanner(input)
        let m = try s.matcher()
        s.skipSpace()
        if !s.atEnd { throw s.error(.expectedCommaOrEnd, at: s.pos, s.tokenPreview()) }
        return m
    }

    /// A scanner at the first non-space byte, after the length check.
    private func scanner(_ input: String) throws(MatcherParseError) -> Scanner {
        let bytes = Array(input.utf8)
        if bytes.count > maxInputBytes {
            throw MatcherParseError(input: input, offset: maxInputBytes, rule: .inputTooLong, detail: "limit is \(maxInputBytes) bytes")
        }
        var s = Scanner(bytes: bytes, input: input)
        s.skipSpace()
        return s
    }

    /// Cursor over the UTF-8 bytes of the input.
    private struct Scanner {
        let bytes: [UInt8]
        let input: String
        var pos = 0

        var atEnd: Bool { pos >= bytes.count }
        var peek: UInt8? { pos < bytes.count ? bytes[pos] : nil }

        func error(_ rule: MatcherParseError.Rule, at: Int, _ detail: String) -> MatcherParseError {
            MatcherParseError(input: input, offset: at, rule: rule, detail: detail)
        }

        /// Up to 16 bytes of what follows, for error messages.
        func tokenPreview() -> String {
            if atEnd { return "end of input" }
            let end = min(bytes.count, pos + 16)
            return "found " + quoteLabelValue(String(decoding: bytes[pos..<end], as: UTF8.self))
        }

        mutating func skipSpace() {
            while let b = peek, b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D { pos += 1 }
        }

        static func isSpecial(_ b: UInt8) -> Bool {
            switch b {
            case UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "!"), UInt8(ascii: "="), UInt8(ascii: "~"),
                UInt8(ascii: ","), UInt8(ascii: "\""), UInt8(ascii: "'"), 0x20, 0x09, 0x0A, 0x0D:
                return true
            default: return false
            }
        }

        mutating func matcher() throws(MatcherParseError) -> LabelMatcher {
            let nameStart = pos
            let name: String
            if peek == UInt8(ascii: "\"") {
                name = try quoted()
            } else {
                name = bare(stopAtSpecials: true)
            }
            if name.isEmpty { throw error(.expectedLabelName, at: nameStart, tokenPreview()) }
            skipSpace()
            let opStart = pos
            let kind: LabelMatcher.Kind
            switch (peek, pos + 1 < bytes.count ? bytes[pos + 1] : nil) {
            case (UInt8(ascii: "="), UInt8(ascii: "~")): kind = .regexMatch; pos += 2
            case (UInt8(ascii: "!"), UInt8(ascii: "=")): kind = .notEqual; pos += 2
            case (UInt8(ascii: "!"), UInt8(ascii: "~")): kind = .regexNoMatch; pos += 2
            case (UInt8(ascii: "="), _): kind = .equal; pos += 1
            default: throw error(.expectedOperator, at: opStart, "after label name \(quoteLabelValue(name)), " + tokenPreview())
            }
            skipSpace()
            let valueStart = pos
            let value: String
            if peek == UInt8(ascii: "\"") {
                value = try quoted()
            } else {
                // An unquoted value may contain `=`, `~`, `!` (e.g. a regex `a=~b|c`), but stops
                // at separators; an empty unquoted value is allowed (`a=""` written as `a=`).
                value = bare(stopAtSpecials: false)
                if let b = peek, b == UInt8(ascii: "'") {
                    throw error(.expectedValue, at: pos, "single quotes are not allowed, use double quotes")
                }
            }
            do {
                return try LabelMatcher(kind, name, value)
            } catch {
                if case .invalidRegex(_, let reason) = error {
                    throw self.error(.invalidRegex, at: valueStart, "\(quoteLabelValue(value)): \(reason)")
                }
                throw self.error(.invalidRegex, at: valueStart, "\(error)")
            }
        }

        /// An unquoted token. Names stop at any special byte; values only at `,`, `}`, `"` and
        /// whitespace.
        mutating func bare(stopAtSpecials: Bool) -> String {
            let start = pos
            while let b = peek {
                if stopAtSpecials {
                    if Self.isSpecial(b) { break }
                } else if b == UInt8(ascii: ",") || b == UInt8(ascii: "}") || b == UInt8(ascii: "\"") || b == UInt8(ascii: "'")
                    || b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D
                {
                    break
                }
                pos += 1
            }
            return String(decoding: bytes[start..<pos], as: UTF8.self)
        }

        static func hex(_ b: UInt8) -> UInt8? {
            switch b {
            case 0x30...0x39: return b - 0x30
            case 0x61...0x66: return b - 0x61 + 10
            case 0x41...0x46: return b - 0x41 + 10
            default: return nil
            }
        }

        /// A double-quoted string with Go escapes; `pos` is at the opening quote.
        mutating func quoted() throws(MatcherParseError) -> String {
            let open = pos
            pos += 1
            var out: [UInt8] = []
            while let b = peek {
                pos += 1
                switch b {
                case UInt8(ascii: "\""):
                    return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard let e = peek else { throw error(.unterminatedQuote, at: open, "") }
                    pos += 1
                    switch e {
                    case UInt8(ascii: "\""): out.append(e)
                    case UInt8(ascii: "\\"): out.append(e)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "x"):
                        // `\xhh`, which `quoteLabelValue` writes for control bytes.
                        guard pos + 2 <= bytes.count, let h = Self.hex(bytes[pos]), let l = Self.hex(bytes[pos + 1]) else {
                            throw error(.invalidEscape, at: pos - 2, "\\x needs two hex digits")
                        }
                        out.append(h << 4 | l)
                        pos += 2
                    default:
                        throw error(.invalidEscape, at: pos - 2, "\\" + String(decoding: [e], as: UTF8.self))
                    }
                default:
                    out.append(b)
                }
            }
            throw error(.unterminatedQuote, at: open, "")
        }
    }
}

/// Prints matchers in the braced list form that `MatcherParser` reads back
/// (`{a="b", c=~"d.*"}`); names that are not classic label names are quoted.
public func formatMatchers(_ ms: [LabelMatcher]) -> String {
    "{" + ms.map(formatMatcher).joined(separator: ", ") + "}"
}

/// One matcher as `name<op>"value"`, quoting the name when it needs it.
public func formatMatcher(_ m: LabelMatcher) -> String {
    let name = isValidMetricName(m.name) ? m.name : quoteLabelValue(m.name)
    return name + m.kind.rawValue + quoteLabelValue(m.value)
}
