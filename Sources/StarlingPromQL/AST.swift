import StarlingCore

/// The type of a PromQL expression's value.
public enum ValueType: String, Sendable {
    case none, scalar, vector, matrix, string

    /// The name used in user-facing messages ("instant vector", "range vector").
    public var documentedName: String {
        switch self {
        case .vector: return "instant vector"
        case .matrix: return "range vector"
        default: return rawValue
        }
    }
}

/// A parsed PromQL expression. Value types throughout: the engine never mutates a parsed tree,
/// so one parse can be evaluated many times and concurrently.
public indirect enum Expr: Sendable {
    case aggregate(AggregateExpr)
    case binary(BinaryExpr)
    case call(Call)
    case matrixSelector(MatrixSelector)
    case subquery(SubqueryExpr)
    case number(NumberLiteral)
    case paren(ParenExpr)
    case string(StringLiteral)
    case unary(UnaryExpr)
    case vectorSelector(VectorSelector)
    /// Wraps a part of the tree whose value is the same at every step (set by the engine's
    /// preprocessing, never by the parser): it is evaluated once and repeated.
    case stepInvariant(StepInvariantExpr)

    public var type: ValueType {
        switch self {
        case .aggregate: return .vector
        case .binary(let b):
            return b.lhs.type == .scalar && b.rhs.type == .scalar ? .scalar : .vector
        case .call(let c): return c.function.returnType
        case .matrixSelector, .subquery: return .matrix
        case .number: return .scalar
        case .paren(let p): return p.expr.type
        case .string: return .string
        case .unary(let u): return u.expr.type
        case .vectorSelector: return .vector
        case .stepInvariant(let s): return s.expr.type
        }
    }

    public var positionRange: PositionRange {
        switch self {
        case .aggregate(let a): return a.posRange
        case .binary(let b): return PositionRange(start: b.lhs.positionRange.start, end: b.rhs.positionRange.end)
        case .call(let c): return c.posRange
        case .matrixSelector(let m): return PositionRange(start: m.vectorSelector.posRange.start, end: m.endPos)
        case .subquery(let s): return PositionRange(start: s.expr.positionRange.start, end: s.endPos)
        case .number(let n): return n.posRange
        case .paren(let p): return p.posRange
        case .string(let s): return s.posRange
        case .unary(let u): return PositionRange(start: u.startPos, end: u.expr.positionRange.end)
        case .vectorSelector(let v): return v.posRange
        case .stepInvariant(let s): return s.expr.positionRange
        }
    }

    /// The expression with any enclosing parentheses and step-invariant wrappers removed.
    public var unwrapped: Expr {
        var e = self
        while true {
            switch e {
            case .paren(let p): e = p.expr
            case .stepInvariant(let s): e = s.expr
            default: return e
            }
        }
    }

    /// Direct children, in evaluation order.
    public var children: [Expr] {
        switch self {
        case .aggregate(let a):
            if let p = a.param { return [a.expr, p] }
            return [a.expr]
        case .binary(let b): return [b.lhs, b.rhs]
        case .call(let c): return c.args
        case .matrixSelector(let m): return [.vectorSelector(m.vectorSelector)]
        case .subquery(let s): return [s.expr]
        case .paren(let p): return [p.expr]
        case .unary(let u): return [u.expr]
        case .stepInvariant(let s): return [s.expr]
        case .number, .string, .vectorSelector: return []
        }
    }

    /// Every vector selector's matchers, in tree order (what `/api/v1/query` needs to know which
    /// series a query touches).
    public var selectors: [[LabelMatcher]] {
        if case .vectorSelector(let v) = self { return [v.matchers] }
        return children.flatMap(\.selectors)
    }
}

/// `@ start()` / `@ end()`.
public enum AtPreprocessor: Sendable, Hashable {
    case start, end
}

public struct VectorSelector: Sendable {
    /// The metric name written before the braces, or empty.
    public var name: String
    /// All matchers, including `__name__="<name>"` (last) when a name was written.
    public var matchers: [LabelMatcher]
    /// The `offset` as written, ms (negative for `offset -5m`).
    public var originalOffsetMs: Int64 = 0
    /// The `@` time, ms since epoch.
    public var timestampMs: Int64? = nil
    public var startOrEnd: AtPreprocessor? = nil
    public var posRange: PositionRange
    /// The offset the engine applies, ms: `originalOffsetMs` adjusted for `@` relative to the
    /// evaluation start (set by the engine's preprocessing, as Prometheus does).
    var offsetMs: Int64 = 0

    public init(name: String, matchers: [LabelMatcher], posRange: PositionRange) {
        self.name = name
        self.matchers = matchers
        self.posRange = posRange
    }
}

public struct MatrixSelector: Sendable {
    public var vectorSelector: VectorSelector
    public var rangeMs: Int64
    public var endPos: Int
}

public struct SubqueryExpr: Sendable {
    public var expr: Expr
    public var rangeMs: Int64
    /// 0 when omitted (`[1h:]`): the engine's default subquery step applies.
    public var stepMs: Int64
    public var originalOffsetMs: Int64 = 0
    public var timestampMs: Int64? = nil
    public var startOrEnd: AtPreprocessor? = nil
    public var endPos: Int
    /// The offset the engine applies (see `VectorSelector.offsetMs`).
    var offsetMs: Int64 = 0
}

public struct AggregateExpr: Sendable {
    public var op: TokenType
    public var expr: Expr
    public var param: Expr?
    public var grouping: [String]
    public var without: Bool
    public var posRange: PositionRange
}

public enum VectorMatchCardinality: String, Sendable {
    case oneToOne = "one-to-one"
    case manyToOne = "many-to-one"
    case oneToMany = "one-to-many"
    case manyToMany = "many-to-many"
}

public struct VectorMatching: Sendable {
    public var card: VectorMatchCardinality
    /// The `on`/`ignoring` labels.
    public var matchingLabels: [String]
    /// `on` (true) or `ignoring` (false).
    public var on: Bool
    /// Extra labels taken from the "one" side by `group_left`/`group_right`.
    public var include: [String]
}

public struct BinaryExpr: Sendable {
    public var op: TokenType
    public var lhs: Expr
    public var rhs: Expr
    /// Nil unless both sides are instant vectors.
    public var matching: VectorMatching?
    public var returnBool: Bool
}

public struct Call: Sendable {
    public var function: FunctionSignature
    public var args: [Expr]
    public var posRange: PositionRange
}

public struct NumberLiteral: Sendable {
    public var value: Double
    public var posRange: PositionRange
}

public struct StringLiteral: Sendable {
    public var value: String
    public var posRange: PositionRange
}

public struct ParenExpr: Sendable {
    public var expr: Expr
    public var posRange: PositionRange
}

public struct UnaryExpr: Sendable {
    public var op: TokenType
    public var expr: Expr
    public var startPos: Int
}

public struct StepInvariantExpr: Sendable {
    public var expr: Expr
}

/// A function's signature: argument types, how many trailing arguments are optional
/// (`variadic` > 0) or unbounded (`variadic` < 0), and the return type.
public struct FunctionSignature: Sendable {
    public let name: String
    public let argTypes: [ValueType]
    public let variadic: Int
    public let returnType: ValueType

    init(_ name: String, _ argTypes: [ValueType], variadic: Int = 0, returns: ValueType = .vector) {
        self.name = name
        self.argTypes = argTypes
        self.variadic = variadic
        self.returnType = returns
    }

    /// Every function of Prometheus 2.42 (native-histogram functions excluded: Starling stores
    /// float samples only).
    public static let all: [String: FunctionSignature] = {
        let v = ValueType.vector, m = ValueType.matrix, s = ValueType.scalar, str = ValueType.string
        var fs: [FunctionSignature] = [
            .init("abs", [v]), .init("absent", [v]), .init("absent_over_time", [m]),
            .init("acos", [v]), .init("acosh", [v]), .init("asin", [v]), .init("asinh", [v]),
            .init("atan", [v]), .init("atanh", [v]), .init("avg_over_time", [m]), .init("ceil", [v]),
            .init("changes", [m]), .init("clamp", [v, s, s]), .init("clamp_max", [v, s]),
            .init("clamp_min", [v, s]), .init("cos", [v]), .init("cosh", [v]),
            .init("count_over_time", [m]), .init("days_in_month", [v], variadic: 1),
            .init("day_of_month", [v], variadic: 1), .init("day_of_week", [v], variadic: 1),
            .init("day_of_year", [v], variadic: 1), .init("deg", [v]), .init("delta", [m]),
            .init("deriv", [m]), .init("exp", [v]), .init("floor", [v]),
            .init("histogram_quantile", [s, v]), .init("holt_winters", [m, s, s]),
            .init("hour", [v], variadic: 1), .init("idelta", [m]), .init("increase", [m]),
            .init("irate", [m]), .init("label_replace", [v, str, str, str, str]),
            .init("label_join", [v, str, str, str], variadic: -1), .init("last_over_time", [m]),
            .init("ln", [v]), .init("log10", [v]), .init("log2", [v]), .init("max_over_time", [m]),
            .init("min_over_time", [m]), .init("minute", [v], variadic: 1),
            .init("month", [v], variadic: 1), .init("pi", [], returns: s),
            .init("predict_linear", [m, s]), .init("present_over_time", [m]),
            .init("quantile_over_time", [s, m]), .init("rad", [v]), .init("rate", [m]),
            .init("resets", [m]), .init("round", [v, s], variadic: 1), .init("scalar", [v], returns: s),
            .init("sgn", [v]), .init("sin", [v]), .init("sinh", [v]), .init("sort", [v]),
            .init("sort_desc", [v]), .init("sqrt", [v]), .init("stddev_over_time", [m]),
            .init("stdvar_over_time", [m]), .init("sum_over_time", [m]), .init("tan", [v]),
            .init("tanh", [v]), .init("time", [], returns: s), .init("timestamp", [v]),
            .init("vector", [s]), .init("year", [v], variadic: 1),
        ]
        fs.sort { $0.name < $1.name }
        return Dictionary(uniqueKeysWithValues: fs.map { ($0.name, $0) })
    }()

    /// Functions whose result depends on the evaluation time even when every argument is
    /// fixed by `@`, so they are never treated as step-invariant.
    static let atModifierUnsafe: Set<String> = [
        "days_in_month", "day_of_month", "day_of_week", "day_of_year", "hour", "minute", "month",
        "year", "predict_linear", "time", "timestamp",
    ]
}
