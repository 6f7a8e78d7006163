import StarlingCore

/// Parses the series selectors of `match[]` parameters: `metric`, `metric{a="b"}`,
/// `{__name__=~"x.*", job!="y"}`, with Prometheus's string escapes and quote styles.
///
/// This is the selector subset of PromQL that the read and export APIs need; when the PromQL
/// parser lands, `match[]` parsing moves onto it and this type goes away.
public enum SeriesSelector {
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public var offset: Int
        public var description: String { "parse error at char \(offset + 1): \(message)" }
    }

    /// Parses a selector. It must contain at least one matcher that does not match the empty
    /// string, as in Prometheus, so that a selector cannot select every series by accident.
    public static func parse(_ text: String) throws(ParseError) -> [LabelMatcher] {
        var p = Parser(Array(text.unicodeScalars))
        let matchers = try p.selector()
        guard matchers.contains(where: { !$0.matchesEmpty }) else {
            throw ParseError(message: "vector selector must contain at least one non-empty matcher", offset: 0)
        }
        return matchers
    }

    struct Parser {
        let s: [Unicode.Scalar]
        var i = 0

        init(_ s: [Unicode.Scalar]) { self.s = s }

        mutating func skipSpace() {
            while i < s.count, s[i].properties.isWhitespace { i += 1 }
        }

        func fail(_ m: String) -> ParseError { ParseError(message: m, offset: i) }

        static func isNameStart(_ c: Unicode.Scalar, metric: Bool) -> Bool {
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c == "_" || (metric && c == ":")
        }

        static func isNameChar(_ c: Unicode.Scalar, metric: Bool) -> Bool {
            isNameStart(c, metric: metric) || (c >= "0" && c <= "9")
        }

        mutating func name(metric: Bool) -> String? {
            guard i < s.count, Self.isNameStart(s[i], metric: metric) else { return nil }
            var out = String.UnicodeScalarView()
            while i < s.count, Self.isNameChar(s[i], metric: metric) {
                out.append(s[i])
                i += 1
            }
            return String(out)
        }

        mutating func selector() throws(ParseError) -> [LabelMatcher] {
            skipSpace()
            var matchers: [LabelMatcher] = []
            if let metric = name(metric: true) {
                matchers.append(LabelMatcher.eq(metricNameLabel, metric))
                skipSpace()
            }
            if i < s.count, s[i] == "{" {
                i += 1
                while true {
                    skipSpace()
                    if i < s.count, s[i] == "}" {
                        i += 1
                        break
                    }
                    let at = i
                    let labelName: String
                    if i < s.count, s[i] == "\"" || s[i] == "'" || s[i] == "`" {
                        labelName = try string()  // quoted label names (Prometheus 3 UTF-8 names)
                    } else if let n = name(metric: false) {
                        labelName = n
                    } else {
                        throw fail("expected a label name")
                    }
                    skipSpace()
                    let kind: LabelMatcher.Kind
                    if match("!=") { kind = .notEqual } else if match("=~") { kind = .regexMatch } else if match("!~") { kind = .regexNoMatch } else if match("=") { kind = .equal } else {
                        throw fail("expected one of =, !=, =~, !~ after label \(labelName)")
                    }
                    skipSpace()
                    let value = try string()
                    do {
                        matchers.append(try LabelMatcher(kind, labelName, value))
                    } catch {
                        throw ParseError(message: "\(error)", offset: at)
                    }
                    skipSpace()
                    if i < s.count, s[i] == "," {
                        i += 1
                        continue
                    }
                    if i < s.count, s[i] == "}" {
                        i += 1
                        break
                    }
                    throw fail("expected , or } in label matchers")
                }
            }
            skipSpace()
            if i < s.count { throw fail("unexpected character \"\(s[i])\"") }
            if matchers.isEmpty { throw fail("empty selector") }
            return matchers
        }

        mutating func match(_ op: String) -> Bool {
            let u = Array(op.unicodeScalars)
            guard i + u.count <= s.count, Array(s[i..<i + u.count]) == u else { return false }
            i += u.count
            return true
        }

        /// A quoted string: "…" and '…' with Go escapes, `…` raw.
        mutating func string() throws(ParseError) -> String {
            guard i < s.count else { throw fail("expected a quoted string") }
            let q = s[i]
            guard q == "\"" || q == "'" || q == "`" else { throw fail("expected a quoted string") }
            i += 1
            var out = String.UnicodeScalarView()
            while i < s.count {
                let c = s[i]
                i += 1
                if c == q { return String(out) }
                if q == "`" || c != "\\" {
                    out.append(c)
                    continue
                }
                guard i < s.count else { break }
                let e = s[i]
                i += 1
                switch e {
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                case "a": out.append("\u{07}")
                case "b": out.append("\u{08}")
                case "f": out.append("\u{0C}")
                case "v": out.append("\u{0B}")
                case "\\", "\"", "'": out.append(e)
                case "x", "u", "U":
                    let n = e == "x" ? 2 : (e == "u" ? 4 : 8)
                    guard i + n <= s.count, let v = UInt32(String(String.UnicodeScalarView(s[i..<i + n])), radix: 16),
                        let scalar = Unicode.Scalar(v)
                    else { throw fail("invalid \\\(e) escape") }
                    out.append(scalar)
                    i += n
                default:
                    // Backslash sequences regexes need (\d, \.) pass through unchanged.
                    out.append("\\")
                    out.append(e)
                }
            }
            throw fail("unterminated string")
        }
    }
}
