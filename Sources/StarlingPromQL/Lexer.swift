/// PromQL tokens and the lexer.
///
/// The lexer reproduces the token boundaries of Prometheus 2.x exactly, because error messages
/// that clients show ("unexpected identifier \"foo\"", "bad duration syntax: \"5mm\"") and the
/// positions in them come from here. It is a small state machine over the UTF-8 bytes of the
/// query; positions are byte offsets, as in Prometheus.

public enum TokenType: Sendable, Hashable {
    case eql, blank, colon, comma, comment, duration, eof, error, identifier
    case leftBrace, leftBracket, leftParen, metricIdentifier, number
    case rightBrace, rightBracket, rightParen, semicolon, space, string, times
    // Operators.
    case add, div, eqlc, eqlRegex, gte, gtr, land, lor, lss, lte, lunless, mod, mul, neq, neqRegex, pow, sub, at, atan2
    // Aggregators.
    case avg, bottomk, count, countValues, group, max, min, quantile, stddev, stdvar, sum, topk
    // Keywords.
    case bool, by, groupLeft, groupRight, ignoring, offset, on, without
    // Preprocessors.
    case start, end

    public var isOperator: Bool {
        switch self {
        case .add, .div, .eqlc, .eqlRegex, .gte, .gtr, .land, .lor, .lss, .lte, .lunless, .mod, .mul, .neq,
            .neqRegex, .pow, .sub, .at, .atan2:
            return true
        default: return false
        }
    }

    public var isAggregator: Bool {
        switch self {
        case .avg, .bottomk, .count, .countValues, .group, .max, .min, .quantile, .stddev, .stdvar, .sum, .topk:
            return true
        default: return false
        }
    }

    /// Aggregators taking a parameter before the vector argument.
    public var isAggregatorWithParam: Bool {
        self == .topk || self == .bottomk || self == .countValues || self == .quantile
    }

    public var isKeyword: Bool {
        switch self {
        case .bool, .by, .groupLeft, .groupRight, .ignoring, .offset, .on, .without: return true
        default: return false
        }
    }

    public var isComparisonOperator: Bool {
        switch self {
        case .eqlc, .neq, .lte, .lss, .gte, .gtr: return true
        default: return false
        }
    }

    public var isSetOperator: Bool { self == .land || self == .lor || self == .lunless }

    /// The canonical spelling, for the token types that have one (Prometheus's `ItemTypeStr`).
    public var canonicalText: String? {
        switch self {
        case .leftParen: return "("
        case .rightParen: return ")"
        case .leftBrace: return "{"
        case .rightBrace: return "}"
        case .leftBracket: return "["
        case .rightBracket: return "]"
        case .comma: return ","
        case .eql: return "="
        case .colon: return ":"
        case .semicolon: return ";"
        case .blank: return "_"
        case .times: return "x"
        case .space: return "<space>"
        case .sub: return "-"
        case .add: return "+"
        case .mul: return "*"
        case .mod: return "%"
        case .div: return "/"
        case .eqlc: return "=="
        case .neq: return "!="
        case .lte: return "<="
        case .lss: return "<"
        case .gte: return ">="
        case .gtr: return ">"
        case .eqlRegex: return "=~"
        case .neqRegex: return "!~"
        case .pow: return "^"
        case .land: return "and"
        case .lor: return "or"
        case .lunless: return "unless"
        case .atan2: return "atan2"
        case .sum: return "sum"
        case .avg: return "avg"
        case .count: return "count"
        case .min: return "min"
        case .max: return "max"
        case .group: return "group"
        case .stddev: return "stddev"
        case .stdvar: return "stdvar"
        case .topk: return "topk"
        case .bottomk: return "bottomk"
        case .countValues: return "count_values"
        case .quantile: return "quantile"
        case .offset: return "offset"
        case .by: return "by"
        case .without: return "without"
        case .on: return "on"
        case .ignoring: return "ignoring"
        case .groupLeft: return "group_left"
        case .groupRight: return "group_right"
        case .bool: return "bool"
        case .start: return "start"
        case .end: return "end"
        default: return nil
        }
    }

    /// How error messages name a token type without a canonical spelling.
    var typeDescription: String {
        switch self {
        case .error: return "error"
        case .eof: return "end of input"
        case .comment: return "comment"
        case .identifier: return "identifier"
        case .metricIdentifier: return "metric identifier"
        case .string: return "string"
        case .number: return "number"
        case .duration: return "duration"
        default: return goQuote(canonicalText ?? "\(self)")
        }
    }

    /// Keywords, looked up case-insensitively; `inf` and `nan` lex as numbers.
    static let keywords: [String: TokenType] = [
        "and": .land, "or": .lor, "unless": .lunless, "atan2": .atan2,
        "sum": .sum, "avg": .avg, "count": .count, "min": .min, "max": .max, "group": .group,
        "stddev": .stddev, "stdvar": .stdvar, "topk": .topk, "bottomk": .bottomk,
        "count_values": .countValues, "quantile": .quantile,
        "offset": .offset, "by": .by, "without": .without, "on": .on, "ignoring": .ignoring,
        "group_left": .groupLeft, "group_right": .groupRight, "bool": .bool,
        "start": .start, "end": .end,
        "inf": .number, "nan": .number,
    ]
}

/// A byte range in the query text: `start` inclusive, `end` exclusive.
public struct PositionRange: Sendable, Hashable {
    public var start: Int
    public var end: Int
    public init(start: Int, end: Int) {
        self.start = start
        self.end = end
    }
}

public struct Token: Sendable {
    public var type: TokenType
    /// Byte offset of the token in the input.
    public var pos: Int
    /// The token's text (for `.error`, the error message).
    public var val: String

    public var positionRange: PositionRange { PositionRange(start: pos, end: pos + val.utf8.count) }

    /// The token as error messages show it (Prometheus's `Item.String`).
    var display: String {
        switch type {
        case .eof: return "EOF"
        case .error: return val
        case .identifier, .metricIdentifier: return goQuote(val)
        default: break
        }
        if type.isKeyword { return "<\(val)>" }
        if type.isOperator { return "<op:\(val)>" }
        if type.isAggregator { return "<aggr:\(val)>" }
        if val.unicodeScalars.count > 10 {
            return goQuote(String(String.UnicodeScalarView(val.unicodeScalars.prefix(10)))) + "..."
        }
        return goQuote(val)
    }

    /// The token as "unexpected …" messages describe it (Prometheus's `Item.desc`).
    var errorDescription: String {
        if type.canonicalText != nil { return display }
        if type == .eof { return type.typeDescription }
        return "\(type.typeDescription) \(display)"
    }
}

/// The PromQL lexer. Produces one token per call to `next()`; after an `.error` token or the
/// end of input it keeps returning `.eof`.
struct Lexer {
    private enum State {
        case statements, insideBraces, valueSequence, string, rawString, escape
        case duration, numberOrDuration, keywordOrIdentifier, identifier, lineComment, done
    }

    let input: [UInt8]
    private var state: State = .statements
    private(set) var pos = 0
    /// Start of the token being scanned.
    private(set) var start = 0
    private var width = 0
    private var result: Token? = nil

    private var parenDepth = 0
    private var braceOpen = false
    private var bracketOpen = false
    private var gotColon = false
    private var stringOpen: UInt32 = 0
    /// Series descriptions of the test language (`metric{…} 1+2x3 _ stale`).
    let seriesDesc: Bool

    static let eofRune: UInt32 = 0xFFFF_FFFF
    static let runeError: UInt32 = 0xFFFD

    init(_ text: String, seriesDesc: Bool = false) {
        input = Array(text.utf8)
        self.seriesDesc = seriesDesc
    }

    mutating func next() -> Token {
        result = nil
        while result == nil {
            switch state {
            case .done: emit(.eof)
            case .statements: lexStatements()
            case .insideBraces: lexInsideBraces()
            case .valueSequence: lexValueSequence()
            case .string: lexString()
            case .rawString: lexRawString()
            case .escape: lexEscape()
            case .duration: lexDuration()
            case .numberOrDuration: lexNumberOrDuration()
            case .keywordOrIdentifier: lexKeywordOrIdentifier()
            case .identifier: lexIdentifier()
            case .lineComment: lexLineComment()
            }
        }
        return result!
    }

    // MARK: Primitives

    private mutating func nextRune() -> UInt32 {
        if pos >= input.count {
            width = 0
            return Self.eofRune
        }
        let (r, w) = decodeRune(input, pos)
        width = w
        pos += w
        return r
    }

    private mutating func peek() -> UInt32 {
        let r = nextRune()
        backup()
        return r
    }

    private mutating func backup() { pos -= width }

    private func text(_ from: Int, _ to: Int) -> String {
        String(decoding: input[from..<to], as: UTF8.self)
    }

    private mutating func emit(_ t: TokenType) {
        result = Token(type: t, pos: start, val: text(start, pos))
        start = pos
    }

    private mutating func ignore() { start = pos }

    private mutating func accept(_ valid: String) -> Bool {
        let r = nextRune()
        if r != Self.eofRune, valid.unicodeScalars.contains(where: { $0.value == r }) { return true }
        backup()
        return false
    }

    private mutating func acceptRun(_ valid: String) {
        while true {
            let r = nextRune()
            if r == Self.eofRune || !valid.unicodeScalars.contains(where: { $0.value == r }) { break }
        }
        backup()
    }

    /// Ends scanning with an error token positioned at the start of the current token.
    private mutating func errorf(_ message: String) {
        result = Token(type: .error, pos: start, val: message)
        state = .done
    }

    private func hasPrefix(_ s: String) -> Bool {
        let b = Array(s.utf8)
        return input.count - pos >= b.count && input[pos..<pos + b.count].elementsEqual(b)
    }

    // MARK: States

    private mutating func lexStatements() {
        if braceOpen {
            state = .insideBraces
            return
        }
        if hasPrefix("#") {
            state = .lineComment
            return
        }
        let r = nextRune()
        switch r {
        case Self.eofRune:
            if parenDepth != 0 {
                errorf("unclosed left parenthesis")
            } else if bracketOpen {
                errorf("unclosed left bracket")
            } else {
                emit(.eof)
                state = .done
            }
            return
        case c(","): emit(.comma)
        case _ where isSpace(r):
            skipSpaceRun()
        case c("*"): emit(.mul)
        case c("/"): emit(.div)
        case c("%"): emit(.mod)
        case c("+"): emit(.add)
        case c("-"): emit(.sub)
        case c("^"): emit(.pow)
        case c("="):
            let t = peek()
            if t == c("=") {
                _ = nextRune()
                emit(.eqlc)
            } else if t == c("~") {
                errorf("unexpected character after '=': \(goQuoteRune(t))")
            } else {
                emit(.eql)
            }
        case c("!"):
            let t = nextRune()
            if t == c("=") {
                emit(.neq)
            } else {
                errorf("unexpected character after '!': \(goQuoteRune(t))")
            }
        case c("<"):
            if peek() == c("=") {
                _ = nextRune()
                emit(.lte)
            } else {
                emit(.lss)
            }
        case c(">"):
            if peek() == c("=") {
                _ = nextRune()
                emit(.gte)
            } else {
                emit(.gtr)
            }
        case _ where isDigit(r) || (r == c(".") && isDigit(peek())):
            backup()
            state = .numberOrDuration
        case c("\""), c("'"):
            stringOpen = r
            state = .string
        case c("`"):
            stringOpen = r
            state = .rawString
        case _ where isAlpha(r) || r == c(":"):
            if !bracketOpen {
                backup()
                state = .keywordOrIdentifier
                return
            }
            if gotColon {
                errorf("unexpected colon \(goQuoteRune(r))")
                return
            }
            emit(.colon)
            gotColon = true
        case c("("):
            emit(.leftParen)
            parenDepth += 1
        case c(")"):
            emit(.rightParen)
            parenDepth -= 1
            if parenDepth < 0 { errorf("unexpected right parenthesis \(goQuoteRune(r))") }
        case c("{"):
            emit(.leftBrace)
            braceOpen = true
            state = .insideBraces
        case c("["):
            if bracketOpen {
                errorf("unexpected left bracket \(goQuoteRune(r))")
                return
            }
            gotColon = false
            emit(.leftBracket)
            if isSpace(peek()) {
                while isSpace(peek()) { _ = nextRune() }
                ignore()
            }
            bracketOpen = true
            state = .duration
        case c("]"):
            if !bracketOpen {
                errorf("unexpected right bracket \(goQuoteRune(r))")
                return
            }
            emit(.rightBracket)
            bracketOpen = false
        case c("@"): emit(.at)
        default:
            errorf("unexpected character: \(goQuoteRune(r))")
        }
    }

    private mutating func skipSpaceRun() {
        while isSpace(peek()) { _ = nextRune() }
        ignore()
    }

    private mutating func lexInsideBraces() {
        if hasPrefix("#") {
            state = .lineComment
            return
        }
        let r = nextRune()
        switch r {
        case Self.eofRune:
            errorf("unexpected end of input inside braces")
        case _ where isSpace(r):
            skipSpaceRun()
        case _ where isAlpha(r):
            backup()
            state = .identifier
        case c(","): emit(.comma)
        case c("\""), c("'"):
            stringOpen = r
            state = .string
        case c("`"):
            stringOpen = r
            state = .rawString
        case c("="):
            if nextRune() == c("~") {
                emit(.eqlRegex)
            } else {
                backup()
                emit(.eql)
            }
        case c("!"):
            let nr = nextRune()
            if nr == c("~") {
                emit(.neqRegex)
            } else if nr == c("=") {
                emit(.neq)
            } else {
                errorf("unexpected character after '!' inside braces: \(goQuoteRune(nr))")
            }
        case c("{"):
            errorf("unexpected left brace \(goQuoteRune(r))")
        case c("}"):
            emit(.rightBrace)
            braceOpen = false
            state = seriesDesc ? .valueSequence : .statements
        default:
            errorf("unexpected character inside braces: \(goQuoteRune(r))")
        }
    }

    private mutating func lexValueSequence() {
        let r = nextRune()
        switch r {
        case Self.eofRune:
            state = .statements
        case _ where isSpace(r):
            emit(.space)
            skipSpaceRun()
        case c("+"): emit(.add)
        case c("-"): emit(.sub)
        case c("x"): emit(.times)
        case c("_"): emit(.blank)
        case _ where isDigit(r) || (r == c(".") && isDigit(peek())):
            backup()
            if scanNumber() {
                emit(.number)
            } else {
                errorf("bad number syntax: \(goQuote(text(start, pos)))")
            }
        case _ where isAlpha(r):
            backup()
            state = .keywordOrIdentifier
        default:
            errorf("unexpected character in series sequence: \(goQuoteRune(r))")
        }
    }

    private mutating func lexEscape() {
        var n = 0
        var base: UInt32 = 0
        var maxValue: UInt32 = 0
        var ch = nextRune()
        switch ch {
        case c("a"), c("b"), c("f"), c("n"), c("r"), c("t"), c("v"), c("\\"), stringOpen:
            state = .string
            return
        case c("0")...c("7"):
            (n, base, maxValue) = (3, 8, 255)
        case c("x"):
            ch = nextRune()
            (n, base, maxValue) = (2, 16, 255)
        case c("u"):
            ch = nextRune()
            (n, base, maxValue) = (4, 16, 0x10FFFF)
        case c("U"):
            ch = nextRune()
            (n, base, maxValue) = (8, 16, 0x10FFFF)
        case Self.eofRune:
            errorf("escape sequence not terminated")
            return
        default:
            errorf("unknown escape sequence \(goRuneU(ch))")
            return
        }
        var x: UInt32 = 0
        while n > 0 {
            let d = digitValue(ch)
            if d >= base {
                if ch == Self.eofRune {
                    errorf("escape sequence not terminated")
                } else {
                    errorf("illegal character \(goRuneU(ch)) in escape sequence")
                }
                return
            }
            x = x &* base &+ d
            n -= 1
            if n > 0 { ch = nextRune() }
        }
        if x > maxValue || (0xD800 <= x && x < 0xE000) {
            errorf("escape sequence is an invalid Unicode code point")
            return
        }
        state = .string
    }

    private mutating func lexString() {
        while true {
            let r = nextRune()
            switch r {
            case c("\\"):
                state = .escape
                return
            case Self.runeError:
                errorf("invalid UTF-8 rune")
                return
            case Self.eofRune, c("\n"):
                errorf("unterminated quoted string")
                return
            case stringOpen:
                emit(.string)
                state = .statements
                return
            default: continue
            }
        }
    }

    private mutating func lexRawString() {
        while true {
            let r = nextRune()
            switch r {
            case Self.runeError:
                errorf("invalid UTF-8 rune")
                return
            case Self.eofRune:
                errorf("unterminated raw string")
                return
            case stringOpen:
                emit(.string)
                state = .statements
                return
            default: continue
            }
        }
    }

    private mutating func lexLineComment() {
        pos += 1
        var r = nextRune()
        while !isEndOfLine(r) && r != Self.eofRune { r = nextRune() }
        backup()
        emit(.comment)
        state = .statements
    }

    private mutating func lexDuration() {
        if scanNumber() {
            errorf("missing unit character in duration")
            return
        }
        if !acceptRemainingDuration() {
            errorf("bad duration syntax: \(goQuote(text(start, pos)))")
            return
        }
        backup()
        emit(.duration)
        state = .statements
    }

    private mutating func lexNumberOrDuration() {
        if scanNumber() {
            emit(.number)
            state = .statements
            return
        }
        if acceptRemainingDuration() {
            backup()
            emit(.duration)
            state = .statements
            return
        }
        errorf("bad number or duration syntax: \(goQuote(text(start, pos)))")
    }

    private mutating func acceptRemainingDuration() -> Bool {
        if !accept("smhdwy") { return false }
        _ = accept("s")  // "ms"; bad pairs like "hs" are rejected when the duration is parsed
        while accept("0123456789") {
            while accept("0123456789") {}
            if !accept("smhdw") { return false }
            _ = accept("s")
        }
        return !isAlphaNumeric(nextRune())
    }

    /// Scans a number-like run. The text is not necessarily a valid number; the parser checks.
    /// Returns whether the run ends where a number may end.
    private mutating func scanNumber() -> Bool {
        var digits = "0123456789"
        if !seriesDesc && accept("0") && accept("xX") {
            digits = "0123456789abcdefABCDEF"
        }
        acceptRun(digits)
        if accept(".") { acceptRun(digits) }
        if accept("eE") {
            _ = accept("+-")
            acceptRun("0123456789")
        }
        let r = peek()
        return (seriesDesc && r == c("x")) || !isAlphaNumeric(r)
    }

    private mutating func lexIdentifier() {
        while isAlphaNumeric(nextRune()) {}
        backup()
        emit(.identifier)
        state = .statements
    }

    private mutating func lexKeywordOrIdentifier() {
        while true {
            let r = nextRune()
            if isAlphaNumeric(r) || r == c(":") { continue }
            backup()
            let word = text(start, pos)
            if let kw = TokenType.keywords[word.lowercased()] {
                emit(kw)
            } else if !word.contains(":") {
                emit(.identifier)
            } else {
                emit(.metricIdentifier)
            }
            break
        }
        state = (seriesDesc && peek() != c("{")) ? .valueSequence : .statements
    }
}

// MARK: Character classes

@inline(__always) func c(_ s: Unicode.Scalar) -> UInt32 { s.value }

@inline(__always) func isSpace(_ r: UInt32) -> Bool { r == 0x20 || r == 0x09 || r == 0x0A || r == 0x0D }
@inline(__always) func isEndOfLine(_ r: UInt32) -> Bool { r == 0x0D || r == 0x0A }
@inline(__always) func isDigit(_ r: UInt32) -> Bool { r >= 0x30 && r <= 0x39 }
@inline(__always) func isAlpha(_ r: UInt32) -> Bool {
    r == 0x5F || (r >= 0x61 && r <= 0x7A) || (r >= 0x41 && r <= 0x5A)
}
@inline(__always) func isAlphaNumeric(_ r: UInt32) -> Bool { isAlpha(r) || isDigit(r) }

func digitValue(_ r: UInt32) -> UInt32 {
    switch r {
    case 0x30...0x39: return r - 0x30
    case 0x61...0x66: return r - 0x61 + 10
    case 0x41...0x46: return r - 0x41 + 10
    default: return 16
    }
}

/// Whether `s` is a label name as grouping clauses accept it (`[a-zA-Z_][a-zA-Z0-9_]*`).
func isLabelName(_ s: String) -> Bool {
    var first = true
    for b in s.utf8 {
        let r = UInt32(b)
        if first ? !isAlpha(r) : !isAlphaNumeric(r) { return false }
        first = false
    }
    return !first
}

/// Decodes one UTF-8 sequence like Go's `utf8.DecodeRune`: invalid input yields U+FFFD with
/// width 1.
func decodeRune(_ b: [UInt8], _ i: Int) -> (UInt32, Int) {
    let b0 = b[i]
    if b0 < 0x80 { return (UInt32(b0), 1) }
    let n = b.count - i
    func cont(_ k: Int) -> UInt32? {
        guard k < n else { return nil }
        let x = b[i + k]
        return x & 0xC0 == 0x80 ? UInt32(x & 0x3F) : nil
    }
    if b0 >= 0xC2 && b0 <= 0xDF, let c1 = cont(1) {
        return ((UInt32(b0 & 0x1F) << 6) | c1, 2)
    }
    if b0 >= 0xE0 && b0 <= 0xEF, let c1 = cont(1), let c2 = cont(2) {
        let r = (UInt32(b0 & 0x0F) << 12) | (c1 << 6) | c2
        if r >= 0x800 && !(0xD800...0xDFFF).contains(r) { return (r, 3) }
    }
    if b0 >= 0xF0 && b0 <= 0xF4, let c1 = cont(1), let c2 = cont(2), let c3 = cont(3) {
        let r = (UInt32(b0 & 0x07) << 18) | (c1 << 12) | (c2 << 6) | c3
        if r >= 0x10000 && r <= 0x10FFFF { return (r, 4) }
    }
    return (0xFFFD, 1)
}
