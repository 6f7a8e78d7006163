import StarlingCore

/// A positioned parse error. Its text is Prometheus's: `1:15: parse error: unexpected "=" in
/// label matching, expected string` — line and column (1-based, columns in bytes) of the start
/// of the offending range.
public struct ParseError: Error, Sendable, CustomStringConvertible {
    public var positionRange: PositionRange
    public var message: String
    public var query: String
    /// Added to the line number (the test-script runner reports lines of the script file).
    public var lineOffset: Int = 0

    public var description: String {
        let pos = positionRange.start
        let bytes = Array(query.utf8)
        let position: String
        if pos < 0 || pos > bytes.count {
            position = "invalid position:"
        } else {
            var line = lineOffset + 1
            var lastLineBreak = -1
            for i in 0..<pos where bytes[i] == 0x0A {
                lastLineBreak = i
                line += 1
            }
            position = "\(line):\(pos - lastLineBreak):"
        }
        return "\(position) parse error: \(message)"
    }
}

/// All errors found in one parse; the first is the one reported.
public struct ParseErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [ParseError]
    public var description: String { errors.first?.description ?? "error contains no error message" }
}

/// The PromQL parser entry points.
public enum PromQLParser {
    /// Parses and type-checks an expression.
    public static func parseExpr(_ input: String) throws(ParseErrors) -> Expr {
        let p = Parser(input)
        let expr = p.parseTopLevel()
        if p.errors.isEmpty, let e = expr {
            _ = p.check(e)
        }
        if !p.errors.isEmpty { throw ParseErrors(errors: p.errors) }
        return expr!
    }

    /// Parses a series selector such as `foo{job="a"}` (the `match[]` parameter of the API).
    /// Like Prometheus, no check for an empty selector: callers decide.
    public static func parseMetricSelector(_ input: String) throws(ParseErrors) -> [LabelMatcher] {
        let p = Parser(input)
        let vs = p.parseSelectorTopLevel()
        if !p.errors.isEmpty { throw ParseErrors(errors: p.errors) }
        return vs!.matchers
    }

    /// A value in a test-script series description: a number, or omitted (`_`).
    public enum SequenceValue: Sendable, Equatable {
        case value(Double)
        case omitted
    }

    /// Parses a series description of the test language: `name{l="v"} 1 2+3x4 _ stale`.
    public static func parseSeriesDescription(_ input: String) throws(ParseErrors) -> (Labels, [SequenceValue]) {
        let p = Parser(input, seriesDesc: true)
        let r = p.parseSeriesDescTopLevel()
        if !p.errors.isEmpty { throw ParseErrors(errors: p.errors) }
        return r!
    }
}

/// Thrown inside the parser after a syntax error has been recorded, to unwind.
private struct SyntaxAbort: Error {}

/// A recursive-descent parser for the grammar of Prometheus 2.x (`generated_parser.y`): the same
/// precedence (`^` right-associative and binding tighter than unary minus; `offset`, `@` and
/// `[...]` tightest), the same error messages, and errors collected in the same order — the
/// semantic ones that Prometheus raises while reducing, then the first syntax error.
final class Parser {
    private var lexer: Lexer
    let input: String
    private var lookahead: Token? = nil
    /// End of the last consumed token (Prometheus's `lastClosing` for the constructs that use it).
    private var lastEnd = 0
    private(set) var errors: [ParseError] = []
    /// Aggregations being parsed: a syntax error inside one is reported "in aggregation".
    private var openAggregations = 0
    /// Nesting of the expression being parsed (sub-expressions, chained operators, postfix
    /// modifiers), bounded so that no query can exhaust the stack of the code walking the tree.
    private var depth = 0

    /// Deepest expression tree accepted. Prometheus has no limit (Go stacks grow); 1,000 levels is
    /// far beyond hand-written and generated queries alike and keeps every recursive walk of the
    /// tree well inside a thread's stack.
    static let maxDepth = 1000

    init(_ input: String, seriesDesc: Bool = false) {
        self.input = input
        self.lexer = Lexer(input, seriesDesc: seriesDesc)
    }

    // MARK: Tokens

    private func peek() throws -> Token {
        if let t = lookahead { return t }
        var t = lexer.next()
        while t.type == .comment { t = lexer.next() }
        if t.type == .error {
            errors.append(ParseError(positionRange: PositionRange(start: t.pos, end: input.utf8.count), message: t.val, query: input))
            throw SyntaxAbort()
        }
        lookahead = t
        return t
    }

    @discardableResult
    private func consume() throws -> Token {
        let t = try peek()
        lookahead = nil
        lastEnd = t.pos + t.val.utf8.count
        return t
    }

    private func addError(_ range: PositionRange, _ message: String) {
        errors.append(ParseError(positionRange: range, message: message, query: input))
    }

    /// Records "unexpected <token> [in <context>][, expected <expected>]" for the lookahead and
    /// unwinds.
    private func unexpected(_ context: String = "", _ expected: String = "") throws -> Never {
        let t = try peek()
        var msg = "unexpected " + t.errorDescription
        var ctx = context
        if ctx.isEmpty && openAggregations > 0 { ctx = "aggregation" }
        if !ctx.isEmpty { msg += " in " + ctx }
        if !expected.isEmpty { msg += ", expected " + expected }
        addError(t.positionRange, msg)
        throw SyntaxAbort()
    }

    // MARK: Top level

    func parseTopLevel() -> Expr? {
        do {
            if try peek().type == .eof {
                addError(PositionRange(start: 0, end: 0), "no expression found in input")
                return nil
            }
            let e = try parseExpr()
            if try peek().type != .eof { try unexpected() }
            return e
        } catch {
            return nil
        }
    }

    func parseSelectorTopLevel() -> VectorSelector? {
        do {
            let t = try peek()
            let vs: VectorSelector
            if t.type == .leftBrace {
                vs = try parseLabelMatchers(name: nil)
            } else if Self.metricIdentifierTypes.contains(t.type) {
                try consume()
                if try peek().type == .leftBrace {
                    vs = try parseLabelMatchers(name: t)
                } else {
                    vs = VectorSelector(name: t.val, matchers: [LabelMatcher.eq(metricNameLabel, t.val)], posRange: t.positionRange)
                }
            } else {
                try unexpected()
            }
            if try peek().type != .eof { try unexpected() }
            return vs
        } catch {
            return nil
        }
    }

    // MARK: Expressions

    private static func precedence(_ t: TokenType) -> Int? {
        switch t {
        case .lor: return 1
        case .land, .lunless: return 2
        case .eqlc, .gte, .gtr, .lss, .lte, .neq: return 3
        case .add, .sub: return 4
        case .mul, .div, .mod, .atan2: return 5
        case .pow: return 6
        default: return nil
        }
    }

    private func parseExpr() throws -> Expr { try parseBinary(minPrecedence: 1) }

    private func checkDepth(_ extra: Int) throws {
        if depth + extra > Self.maxDepth {
            let t = try peek()
            addError(t.positionRange, "expression nested too deeply (more than \(Self.maxDepth) levels)")
            throw SyntaxAbort()
        }
    }

    private func parseBinary(minPrecedence: Int) throws -> Expr {
        depth += 1
        defer { depth -= 1 }
        try checkDepth(0)
        var lhs = try parseUnary()
        var chain = 0
        while true {
            let opTok = try peek()
            guard let prec = Self.precedence(opTok.type), prec >= minPrecedence else { return lhs }
            chain += 1
            try checkDepth(chain)
            try consume()
            var matching = VectorMatching(card: .oneToOne, matchingLabels: [], on: false, include: [])
            var returnBool = false
            if try peek().type == .bool {
                try consume()
                returnBool = true
            }
            let t = try peek().type
            if t == .on || t == .ignoring {
                try consume()
                matching.on = t == .on
                matching.matchingLabels = try parseGroupingLabels()
                let g = try peek().type
                if g == .groupLeft || g == .groupRight {
                    try consume()
                    matching.card = g == .groupLeft ? .manyToOne : .oneToMany
                    if try peek().type == .leftParen {
                        matching.include = try parseGroupingLabels()
                    }
                }
            }
            if opTok.type.isSetOperator && matching.card == .oneToOne { matching.card = .manyToMany }
            // `^` is right-associative; everything else left-associative.
            let rhs = try parseBinary(minPrecedence: opTok.type == .pow ? prec : prec + 1)
            lhs = .binary(BinaryExpr(op: opTok.type, lhs: lhs, rhs: rhs, matching: matching, returnBool: returnBool))
        }
    }

    /// Unary `+`/`-` binds like `*`: its operand extends over `^` and the postfix modifiers only.
    private func parseUnary() throws -> Expr {
        let t = try peek()
        guard t.type == .add || t.type == .sub else { return try parsePostfix(try parsePrimary()) }
        try consume()
        let operand = try parseBinary(minPrecedence: 6)
        if case .number(var n) = operand {
            if t.type == .sub { n.value *= -1 }
            n.posRange.start = t.pos
            return .number(n)
        }
        return .unary(UnaryExpr(op: t.type, expr: operand, startPos: t.pos))
    }

    static let metricIdentifierTypes: Set<TokenType> = [
        .avg, .bottomk, .by, .count, .countValues, .group, .identifier, .land, .lor, .lunless, .max,
        .metricIdentifier, .min, .offset, .quantile, .stddev, .stdvar, .sum, .topk, .without, .start, .end,
    ]

    private func parsePrimary() throws -> Expr {
        let t = try peek()
        switch t.type {
        case .number:
            try consume()
            return .number(NumberLiteral(value: number(t), posRange: t.positionRange))
        case .string:
            try consume()
            return .string(StringLiteral(value: unquote(t), posRange: t.positionRange))
        case .leftParen:
            try consume()
            let inner = try parseExpr()
            guard try peek().type == .rightParen else { try unexpected() }
            let close = try consume()
            return .paren(ParenExpr(expr: inner, posRange: PositionRange(start: t.pos, end: close.pos + 1)))
        case .leftBrace:
            return .vectorSelector(try parseLabelMatchers(name: nil))
        default:
            break
        }
        if t.type.isAggregator {
            try consume()
            let next = try peek().type
            if next == .leftParen || next == .by || next == .without {
                return try parseAggregation(op: t)
            }
            return try parseVectorSelector(name: t)
        }
        if t.type == .identifier {
            try consume()
            if try peek().type == .leftParen { return try parseCall(name: t) }
            return try parseVectorSelector(name: t)
        }
        if Self.metricIdentifierTypes.contains(t.type) {
            try consume()
            return try parseVectorSelector(name: t)
        }
        try unexpected()
    }

    /// After a metric name: optional braces.
    private func parseVectorSelector(name: Token) throws -> Expr {
        if try peek().type == .leftBrace {
            return .vectorSelector(try parseLabelMatchers(name: name))
        }
        return .vectorSelector(
            VectorSelector(name: name.val, matchers: [LabelMatcher.eq(metricNameLabel, name.val)], posRange: name.positionRange))
    }

    private func parseCall(name: Token) throws -> Expr {
        let args = try parseCallBody()
        let range = PositionRange(start: name.pos, end: lastEnd)
        guard let f = FunctionSignature.all[name.val] else {
            addError(name.positionRange, "unknown function with name \(goQuote(name.val))")
            return .call(Call(function: FunctionSignature(name.val, []), args: args, posRange: range))
        }
        return .call(Call(function: f, args: args, posRange: range))
    }

    /// `( [expr {, expr}] )`; a trailing comma is reported but tolerated.
    private func parseCallBody() throws -> [Expr] {
        guard try peek().type == .leftParen else { try unexpected() }
        try consume()
        var args: [Expr] = []
        if try peek().type == .rightParen {
            try consume()
            return args
        }
        while true {
            args.append(try parseExpr())
            let t = try peek()
            if t.type == .comma {
                try consume()
                if try peek().type == .rightParen {
                    addError(t.positionRange, "trailing commas not allowed in function call args")
                    try consume()
                    return args
                }
                continue
            }
            if t.type == .rightParen {
                try consume()
                return args
            }
            try unexpected()
        }
    }

    private func parseAggregation(op: Token) throws -> Expr {
        openAggregations += 1
        var grouping: [String] = []
        var without = false
        var hasModifier = false
        let first = try peek().type
        if first == .by || first == .without {
            try consume()
            without = first == .without
            grouping = try parseGroupingLabels()
            hasModifier = true
        }
        let args = try parseCallBody()
        if !hasModifier {
            let t = try peek().type
            if t == .by || t == .without {
                try consume()
                without = t == .without
                grouping = try parseGroupingLabels()
            }
        }
        openAggregations -= 1
        let range = PositionRange(start: op.pos, end: lastEnd)
        let placeholder = Expr.number(NumberLiteral(value: 0, posRange: range))
        var agg = AggregateExpr(op: op.type, expr: placeholder, param: nil, grouping: grouping, without: without, posRange: range)
        if args.isEmpty {
            addError(range, "no arguments for aggregate expression provided")
            return .aggregate(agg)
        }
        let desired = op.type.isAggregatorWithParam ? 2 : 1
        if op.type.isAggregatorWithParam { agg.param = args[0] }
        if args.count != desired {
            addError(range, "wrong number of arguments for aggregate expression provided, expected \(desired), got \(args.count)")
            return .aggregate(agg)
        }
        agg.expr = args[desired - 1]
        return .aggregate(agg)
    }

    static let labelLikeTypes: Set<TokenType> = [
        .avg, .bool, .bottomk, .by, .count, .countValues, .group, .groupLeft, .groupRight, .identifier,
        .ignoring, .land, .lor, .lunless, .max, .metricIdentifier, .min, .offset, .on, .quantile, .stddev,
        .stdvar, .sum, .topk, .start, .end, .atan2,
    ]

    /// `( label {, label} [,] )` after `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`.
    private func parseGroupingLabels() throws -> [String] {
        guard try peek().type == .leftParen else { try unexpected("grouping opts", "\"(\"") }
        try consume()
        var labels: [String] = []
        if try peek().type == .rightParen {
            try consume()
            return labels
        }
        while true {
            let t = try peek()
            guard Self.labelLikeTypes.contains(t.type) else { try unexpected("grouping opts", "label") }
            try consume()
            if !isLabelName(t.val) {
                addError(t.positionRange, "unexpected \(t.errorDescription) in grouping opts, expected label")
            }
            labels.append(t.val)
            let n = try peek()
            if n.type == .comma {
                try consume()
                if try peek().type == .rightParen {
                    try consume()
                    return labels
                }
                continue
            }
            if n.type == .rightParen {
                try consume()
                return labels
            }
            try unexpected("grouping opts", "\",\" or \")\"")
        }
    }

    /// `{ matcher {, matcher} [,] }`, with the metric name (if any) already consumed.
    private func parseLabelMatchers(name: Token?) throws -> VectorSelector {
        let open = try consume()
        var matchers: [LabelMatcher] = []
        var close: Token
        if try peek().type == .rightBrace {
            close = try consume()
        } else {
            while true {
                let id = try peek()
                guard id.type == .identifier else { try unexpected("label matching", "identifier or \"}\"") }
                try consume()
                let op = try peek()
                let kind: LabelMatcher.Kind
                switch op.type {
                case .eql: kind = .equal
                case .neq: kind = .notEqual
                case .eqlRegex: kind = .regexMatch
                case .neqRegex: kind = .regexNoMatch
                default: try unexpected("label matching", "label matching operator")
                }
                try consume()
                let value = try peek()
                guard value.type == .string else { try unexpected("label matching", "string") }
                try consume()
                let text = unquote(value)
                do {
                    matchers.append(try LabelMatcher(kind, id.val, text))
                } catch {
                    addError(PositionRange(start: id.pos, end: value.pos + value.val.utf8.count), error.description)
                }
                let n = try peek()
                if n.type == .comma {
                    try consume()
                    if try peek().type == .rightBrace {
                        close = try consume()
                        break
                    }
                    continue
                }
                if n.type == .rightBrace {
                    close = try consume()
                    break
                }
                try unexpected("label matching", "\",\" or \"}\"")
            }
        }
        let start = name?.pos ?? open.pos
        var vs = VectorSelector(name: name?.val ?? "", matchers: matchers, posRange: PositionRange(start: start, end: close.pos + 1))
        if let n = name { vs.matchers.append(LabelMatcher.eq(metricNameLabel, n.val)) }
        return vs
    }

    // MARK: Postfix modifiers: [range], [range:step], offset, @

    private func parsePostfix(_ base: Expr) throws -> Expr {
        var e = base
        var chain = 0
        while true {
            chain += 1
            try checkDepth(chain)
            switch try peek().type {
            case .leftBracket: e = try parseRangeOrSubquery(e)
            case .offset: e = try parseOffset(e)
            case .at: e = try parseAt(e)
            default: return e
            }
        }
    }

    private func parseRangeOrSubquery(_ e: Expr) throws -> Expr {
        let open = try consume()
        guard try peek().type == .duration else { try unexpected("subquery selector", "duration") }
        let rangeTok = try consume()
        let range = duration(rangeTok)
        let t = try peek()
        if t.type == .rightBracket {
            let close = try consume()
            var vs: VectorSelector
            if case .vectorSelector(let v) = e {
                vs = v
                if v.originalOffsetMs != 0 {
                    addError(PositionRange(start: open.pos, end: close.pos + 1), "no offset modifiers allowed before range")
                } else if v.timestampMs != nil {
                    addError(PositionRange(start: open.pos, end: close.pos + 1), "no @ modifiers allowed before range")
                }
            } else {
                addError(PositionRange(start: open.pos, end: close.pos + 1), "ranges only allowed for vector selectors")
                vs = VectorSelector(name: "", matchers: [], posRange: e.positionRange)
            }
            return .matrixSelector(MatrixSelector(vectorSelector: vs, rangeMs: range, endPos: lastEnd))
        }
        guard t.type == .colon else { try unexpected("subquery or range", "\":\" or \"]\"") }
        try consume()
        var step: Int64 = 0
        let s = try peek()
        if s.type == .duration {
            try consume()
            step = duration(s)
            guard try peek().type == .rightBracket else { try unexpected("subquery selector", "\"]\"") }
        } else if s.type != .rightBracket {
            try unexpected("subquery selector", "duration or \"]\"")
        }
        let close = try consume()
        return .subquery(SubqueryExpr(expr: e, rangeMs: range, stepMs: step, endPos: close.pos + 1))
    }

    private func parseOffset(_ e: Expr) throws -> Expr {
        try consume()
        var negative = false
        if try peek().type == .sub {
            try consume()
            negative = true
        }
        guard try peek().type == .duration else { try unexpected("offset", "duration") }
        var offset = duration(try consume())
        if negative { offset = -offset }
        let end = lastEnd
        switch e {
        case .vectorSelector(var v):
            if v.originalOffsetMs != 0 { addError(e.positionRange, "offset may not be set multiple times") } else { v.originalOffsetMs = offset }
            v.posRange.end = end
            return .vectorSelector(v)
        case .matrixSelector(var m):
            if m.vectorSelector.originalOffsetMs != 0 {
                addError(e.positionRange, "offset may not be set multiple times")
            } else {
                m.vectorSelector.originalOffsetMs = offset
            }
            m.endPos = end
            return .matrixSelector(m)
        case .subquery(var s):
            if s.originalOffsetMs != 0 { addError(e.positionRange, "offset may not be set multiple times") } else { s.originalOffsetMs = offset }
            s.endPos = end
            return .subquery(s)
        default:
            addError(e.positionRange, "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery")
            return e
        }
    }

    private func parseAt(_ e: Expr) throws -> Expr {
        try consume()
        let t = try peek()
        var timestamp: Double? = nil
        var preprocessor: AtPreprocessor? = nil
        switch t.type {
        case .number:
            timestamp = number(try consume())
        case .add, .sub:
            try consume()
            guard try peek().type == .number else { try unexpected("@", "timestamp") }
            let v = number(try consume())
            timestamp = t.type == .sub ? -v : v
        case .start, .end:
            try consume()
            guard try peek().type == .leftParen else { try unexpected("@", "timestamp") }
            try consume()
            guard try peek().type == .rightParen else { try unexpected("@", "timestamp") }
            try consume()
            preprocessor = t.type == .start ? .start : .end
        default:
            try unexpected("@", "timestamp")
        }
        if let ts = timestamp, ts.isInfinite || ts.isNaN || ts >= 9.223372036854775807e18 || ts <= -9.223372036854775808e18 {
            addError(e.positionRange, "timestamp out of bounds for @ modifier: \(goFormatFixed6(ts))")
        }
        let ms: Int64? = timestamp.map { ts in
            let r = (ts * 1000).rounded()
            return r.isFinite && r >= -9.223372036854775808e18 && r < 9.223372036854775807e18 ? Int64(r) : Int64.min
        }
        let end = lastEnd
        func alreadySet(_ ts: Int64?, _ p: AtPreprocessor?) -> Bool {
            if ts != nil || p != nil {
                addError(e.positionRange, "@ <timestamp> may not be set multiple times")
                return true
            }
            return false
        }
        switch e {
        case .vectorSelector(var v):
            if alreadySet(v.timestampMs, v.startOrEnd) { return e }
            v.timestampMs = ms
            v.startOrEnd = preprocessor
            v.posRange.end = end
            return .vectorSelector(v)
        case .matrixSelector(var m):
            if alreadySet(m.vectorSelector.timestampMs, m.vectorSelector.startOrEnd) { return e }
            m.vectorSelector.timestampMs = ms
            m.vectorSelector.startOrEnd = preprocessor
            m.endPos = end
            return .matrixSelector(m)
        case .subquery(var s):
            if alreadySet(s.timestampMs, s.startOrEnd) { return e }
            s.timestampMs = ms
            s.startOrEnd = preprocessor
            s.endPos = end
            return .subquery(s)
        default:
            addError(e.positionRange, "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery")
            return e
        }
    }

    // MARK: Literals

    private func number(_ t: Token) -> Double {
        switch parseGoNumber(t.val) {
        case .success(let v): return v
        case .failure(let err):
            addError(t.positionRange, "error parsing number: \(err.description)")
            return 0
        }
    }

    private func duration(_ t: Token) -> Int64 {
        switch parsePromDuration(t.val) {
        case .success(let ms):
            if ms == 0 {
                addError(t.positionRange, "duration must be greater than 0")
            }
            return ms
        case .failure(let err):
            addError(t.positionRange, err.description)
            return 0
        }
    }

    private func unquote(_ t: Token) -> String {
        if let s = unquoteString(t.val) { return s }
        addError(t.positionRange, "error unquoting string \(goQuote(t.val)): invalid syntax")
        return ""
    }

    // MARK: Series descriptions (test language)

    func parseSeriesDescTopLevel() -> (Labels, [PromQLParser.SequenceValue])? {
        do {
            var builder = LabelsBuilder()
            let t = try peek()
            if Self.metricIdentifierTypes.contains(t.type) {
                try consume()
                builder.set(metricNameLabel, t.val)
            }
            if try peek().type == .leftBrace {
                try consume()
                if try peek().type == .rightBrace {
                    try consume()
                } else {
                    while true {
                        let id = try peek()
                        guard id.type == .identifier else { try unexpected("label set", "identifier or \"}\"") }
                        try consume()
                        guard try peek().type == .eql else { try unexpected("label set", "\"=\"") }
                        try consume()
                        let v = try peek()
                        guard v.type == .string else { try unexpected("label set", "string") }
                        try consume()
                        builder.set(id.val, unquote(v))
                        let n = try peek().type
                        if n == .comma {
                            try consume()
                            if try peek().type == .rightBrace {
                                try consume()
                                break
                            }
                            continue
                        }
                        if n == .rightBrace {
                            try consume()
                            break
                        }
                        try unexpected("label set", "\",\" or \"}\"")
                    }
                }
            }
            var values: [PromQLParser.SequenceValue] = []
            while true {
                let t = try peek()
                if t.type == .eof { break }
                guard t.type == .space else { try unexpected("series values") }
                try consume()
                let n = try peek()
                if n.type == .space || n.type == .eof { continue }
                values.append(contentsOf: try parseSeriesItem())
            }
            return (builder.build(), values)
        } catch {
            return nil
        }
    }

    private func parseSeriesItem() throws -> [PromQLParser.SequenceValue] {
        if try peek().type == .blank {
            try consume()
            if try peek().type == .times {
                try consume()
                let n = try parseRepetition()
                return Array(repeating: .omitted, count: n)
            }
            return [.omitted]
        }
        var v = try parseSeriesValue()
        let t = try peek().type
        if t == .times {
            try consume()
            let n = try parseRepetition()
            return Array(repeating: .value(v), count: n + 1)
        }
        if t == .add || t == .sub {
            let delta = try parseSignedNumber()
            guard try peek().type == .times else { try unexpected("series values") }
            try consume()
            let n = try parseRepetition()
            var out: [PromQLParser.SequenceValue] = []
            out.reserveCapacity(n + 1)
            for _ in 0...n {
                out.append(.value(v))
                v += delta
            }
            return out
        }
        return [.value(v)]
    }

    private func parseSeriesValue() throws -> Double {
        let t = try peek()
        switch t.type {
        case .identifier:
            try consume()
            if t.val != "stale" {
                addError(t.positionRange, "unexpected \(t.errorDescription) in series values, expected number or \"stale\"")
            }
            return StaleMarker.value
        case .number:
            return number(try consume())
        case .add, .sub:
            return try parseSignedNumber()
        default:
            try unexpected("series values")
        }
    }

    private func parseSignedNumber() throws -> Double {
        let sign = try consume()
        guard try peek().type == .number else { try unexpected("series values") }
        let v = number(try consume())
        return sign.type == .sub ? -v : v
    }

    private func parseRepetition() throws -> Int {
        guard try peek().type == .number else { try unexpected("series values") }
        let t = try consume()
        guard let n = UInt64(t.val), n < 1 << 24 else {
            addError(t.positionRange, "invalid repetition in series values: \(t.val)")
            return 0
        }
        return Int(n)
    }

    // MARK: Type checking (Prometheus's checkAST)

    @discardableResult
    func check(_ e: Expr) -> ValueType {
        let type = e.type
        switch e {
        case .aggregate(let a):
            if !a.op.isAggregator {
                addError(a.posRange, "aggregation operator expected in aggregation expression but got \(goQuote(a.op.canonicalText ?? ""))")
            }
            expectType(a.expr, .vector, "aggregation expression")
            if a.op == .topk || a.op == .bottomk || a.op == .quantile, let p = a.param {
                expectType(p, .scalar, "aggregation parameter")
            }
            if a.op == .countValues, let p = a.param {
                expectType(p, .string, "aggregation parameter")
            }
        case .binary(let b):
            let lt = check(b.lhs)
            let rt = check(b.rhs)
            let opRange = { () -> PositionRange in
                let bytes = Array(self.input.utf8)
                var s = b.lhs.positionRange.end
                while s < bytes.count, isSpace(UInt32(bytes[s])) { s += 1 }
                var en = b.rhs.positionRange.start - 1
                while en >= 0, en < bytes.count, isSpace(UInt32(bytes[en])) { en -= 1 }
                return PositionRange(start: s, end: en)
            }
            if b.returnBool && !b.op.isComparisonOperator {
                addError(opRange(), "bool modifier can only be used on comparison operators")
            }
            if b.op.isComparisonOperator && !b.returnBool && b.rhs.type == .scalar && b.lhs.type == .scalar {
                addError(opRange(), "comparisons between scalars must use BOOL modifier")
            }
            if let m = b.matching, m.on {
                for l1 in m.matchingLabels where m.include.contains(l1) {
                    addError(opRange(), "label \(goQuote(l1)) must not occur in ON and GROUP clause at once")
                }
            }
            if lt != .scalar && lt != .vector {
                addError(b.lhs.positionRange, "binary expression must contain only scalar and instant vector types")
            }
            if rt != .scalar && rt != .vector {
                addError(b.rhs.positionRange, "binary expression must contain only scalar and instant vector types")
            }
            let range = e.positionRange
            if lt != .vector || rt != .vector {
                if let m = b.matching, !m.matchingLabels.isEmpty {
                    addError(range, "vector matching only allowed between instant vectors")
                }
            } else if b.op.isSetOperator, let m = b.matching {
                if m.card == .oneToMany || m.card == .manyToOne {
                    addError(range, "no grouping allowed for \(goQuote(b.op.canonicalText ?? "")) operation")
                }
                if m.card != .manyToMany {
                    addError(range, "set operations must always be many-to-many")
                }
            }
            if (lt == .scalar || rt == .scalar) && b.op.isSetOperator {
                addError(range, "set operator \(goQuote(b.op.canonicalText ?? "")) not allowed in binary scalar expression")
            }
        case .call(let c):
            let nargs = c.function.argTypes.count
            if c.function.variadic == 0 {
                if nargs != c.args.count {
                    addError(c.posRange, "expected \(nargs) argument(s) in call to \(goQuote(c.function.name)), got \(c.args.count)")
                }
            } else {
                let na = nargs - 1
                if na > c.args.count {
                    addError(c.posRange, "expected at least \(na) argument(s) in call to \(goQuote(c.function.name)), got \(c.args.count)")
                } else if c.function.variadic > 0, na + c.function.variadic < c.args.count {
                    addError(c.posRange, "expected at most \(na + c.function.variadic) argument(s) in call to \(goQuote(c.function.name)), got \(c.args.count)")
                }
            }
            for (i, arg) in c.args.enumerated() {
                var k = i
                if i >= nargs {
                    if c.function.variadic == 0 { break }
                    k = nargs - 1
                }
                expectType(arg, c.function.argTypes[k], "call to function \(goQuote(c.function.name))")
            }
        case .paren(let p):
            check(p.expr)
        case .unary(let u):
            if u.op != .add && u.op != .sub {
                addError(e.positionRange, "only + and - operators allowed for unary expressions")
            }
            let t = check(u.expr)
            if t != .scalar && t != .vector {
                addError(e.positionRange, "unary expression only allowed on expressions of type scalar or instant vector, got \(goQuote(t.documentedName))")
            }
        case .subquery(let s):
            let t = check(s.expr)
            if t != .vector {
                addError(e.positionRange, "subquery is only allowed on instant vector, got \(t.rawValue) instead")
            }
        case .matrixSelector(let m):
            check(.vectorSelector(m.vectorSelector))
        case .vectorSelector(let v):
            if !v.name.isEmpty {
                for m in v.matchers.dropLast() where m.name == metricNameLabel {
                    addError(v.posRange, "metric name must not be set twice: \(goQuote(v.name)) or \(goQuote(m.value))")
                }
            } else if !v.matchers.contains(where: { !$0.matches("") }) {
                addError(v.posRange, "vector selector must contain at least one non-empty matcher")
            }
        case .number, .string, .stepInvariant:
            break
        }
        return type
    }

    private func expectType(_ e: Expr, _ want: ValueType, _ context: String) {
        let t = check(e)
        if t != want {
            addError(e.positionRange, "expected type \(want.documentedName) in \(context), got \(t.documentedName)")
        }
    }
}

/// Unquotes a PromQL string literal (Prometheus's `strutil.Unquote`): `"…"` and `'…'` with Go
/// escapes, `` `…` `` raw. Nil on bad syntax.
func unquoteString(_ s: String) -> String? {
    let b = Array(s.utf8)
    guard b.count >= 2 else { return nil }
    let quote = b[0]
    guard quote == b[b.count - 1] else { return nil }
    let body = Array(b[1..<(b.count - 1)])
    if quote == UInt8(ascii: "`") {
        if body.contains(quote) { return nil }
        return String(decoding: body, as: UTF8.self)
    }
    guard quote == UInt8(ascii: "\"") || quote == UInt8(ascii: "'") else { return nil }
    if body.contains(0x0A) { return nil }
    if !body.contains(UInt8(ascii: "\\")) && !body.contains(quote) {
        return String(decoding: body, as: UTF8.self)
    }
    var out: [UInt8] = []
    out.reserveCapacity(body.count)
    var i = 0
    func appendScalar(_ v: UInt32) {
        guard let u = Unicode.Scalar(v) else { return }
        out.append(contentsOf: Array(String(Character(u)).utf8))
    }
    while i < body.count {
        let ch = body[i]
        if ch == quote { return nil }
        if ch != UInt8(ascii: "\\") {
            out.append(ch)
            i += 1
            continue
        }
        guard i + 1 < body.count else { return nil }
        let e = body[i + 1]
        i += 2
        switch e {
        case UInt8(ascii: "a"): out.append(0x07)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "v"): out.append(0x0B)
        case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
        case UInt8(ascii: "'"), UInt8(ascii: "\""):
            if e != quote { return nil }
            out.append(e)
        case UInt8(ascii: "x"), UInt8(ascii: "u"), UInt8(ascii: "U"):
            let n = e == UInt8(ascii: "x") ? 2 : (e == UInt8(ascii: "u") ? 4 : 8)
            guard i + n <= body.count else { return nil }
            var v: UInt32 = 0
            for j in 0..<n {
                let d = digitValue(UInt32(body[i + j]))
                if d >= 16 { return nil }
                v = v << 4 | d
            }
            i += n
            if e == UInt8(ascii: "x") {
                out.append(UInt8(v))  // a raw byte, as in Go
            } else {
                if v > 0x10FFFF { return nil }
                appendScalar(v)
            }
        case UInt8(ascii: "0")...UInt8(ascii: "7"):
            guard i + 2 <= body.count else { return nil }
            var v = UInt32(e - UInt8(ascii: "0"))
            for j in 0..<2 {
                let d = body[i + j]
                guard d >= UInt8(ascii: "0") && d <= UInt8(ascii: "7") else { return nil }
                v = v << 3 | UInt32(d - UInt8(ascii: "0"))
            }
            i += 2
            if v > 255 { return nil }
            out.append(UInt8(v))
        default:
            return nil
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// Go's `%f` (six decimals) for the values an out-of-range `@` timestamp can have.
func goFormatFixed6(_ v: Double) -> String {
    if v.isNaN { return "NaN" }
    if v.isInfinite { return v < 0 ? "-Inf" : "+Inf" }
    if v == v.rounded() {
        return exactIntegerDecimal(v) + ".000000"
    }
    // Not reachable for out-of-range timestamps (all integral); keep a sane fallback.
    let scaled = (v * 1_000_000).rounded()
    let neg = scaled < 0
    let digits = exactIntegerDecimal(Swift.abs(scaled))
    let padded = String(repeating: "0", count: Swift.max(0, 7 - digits.count)) + digits
    let cut = padded.index(padded.endIndex, offsetBy: -6)
    return (neg ? "-" : "") + padded[..<cut] + "." + padded[cut...]
}

/// The exact decimal digits of an integral double (any magnitude).
func exactIntegerDecimal(_ v: Double) -> String {
    if Swift.abs(v) < 9.0e15 { return String(Int64(v)) }
    let negative = v < 0
    let a = Swift.abs(v)
    // a = significand * 2^exponent with an integral significand.
    let exp = Int(a.exponent) - 52
    var limbs: [UInt32] = []  // base 1e9, little endian
    var sig = a.significandBitPattern | (1 << 52)
    while sig > 0 {
        limbs.append(UInt32(sig % 1_000_000_000))
        sig /= 1_000_000_000
    }
    if exp > 0 {
        for _ in 0..<exp {
            var carry: UInt64 = 0
            for k in 0..<limbs.count {
                let x = UInt64(limbs[k]) * 2 + carry
                limbs[k] = UInt32(x % 1_000_000_000)
                carry = x / 1_000_000_000
            }
            if carry > 0 { limbs.append(UInt32(carry)) }
        }
    } else if exp < 0 {
        // Integral with a negative binary exponent: shift right.
        var x = a.significandBitPattern | (1 << 52)
        x >>= UInt64(-exp)
        return (negative ? "-" : "") + String(x)
    }
    var s = String(limbs.last!)
    for k in stride(from: limbs.count - 2, through: 0, by: -1) {
        let part = String(limbs[k])
        s += String(repeating: "0", count: 9 - part.count) + part
    }
    return (negative ? "-" : "") + s
}
