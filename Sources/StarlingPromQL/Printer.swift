import StarlingCore

/// Text forms of expressions, identical to Prometheus 2.42: `description` is `String()` (used in
/// messages and by the test runner to re-parse), `pretty()` is what `/api/v1/format_query` returns.
extension Expr: CustomStringConvertible {
    public var description: String {
        switch self {
        case .aggregate(let a):
            var s = a.opPrefix + "("
            if a.op.isAggregatorWithParam, let p = a.param { s += p.description + ", " }
            return s + a.expr.description + ")"
        case .binary(let b):
            return "\(b.lhs) \(b.op.canonicalText ?? "")\(b.returnBool ? " bool" : "")\(b.matchingText) \(b.rhs)"
        case .call(let c):
            return c.function.name + "(" + c.args.map(\.description).joined(separator: ", ") + ")"
        case .matrixSelector(let m):
            var vs = m.vectorSelector
            let suffix = atAndOffsetText(timestampMs: vs.timestampMs, startOrEnd: vs.startOrEnd, offsetMs: vs.originalOffsetMs)
            vs.originalOffsetMs = 0
            vs.timestampMs = nil
            vs.startOrEnd = nil
            return Expr.vectorSelector(vs).description + "[" + formatPromDuration(m.rangeMs) + "]" + suffix
        case .subquery(let s):
            return s.expr.description + s.suffixText
        case .number(let n):
            return goFormatFloat(n.value)
        case .paren(let p):
            return "(" + p.expr.description + ")"
        case .string(let s):
            return goQuote(s.value)
        case .unary(let u):
            return (u.op.canonicalText ?? "") + u.expr.description
        case .vectorSelector(let v):
            var parts: [String] = []
            for m in v.matchers {
                if m.name == metricNameLabel && m.kind == .equal && m.value == v.name { continue }
                parts.append(m.name + m.kind.rawValue + goQuote(m.value))
            }
            let suffix = atAndOffsetText(timestampMs: v.timestampMs, startOrEnd: v.startOrEnd, offsetMs: v.originalOffsetMs)
            if parts.isEmpty { return v.name + suffix }
            parts.sort(by: utf8Less)
            return v.name + "{" + parts.joined(separator: ",") + "}" + suffix
        case .stepInvariant(let s):
            return s.expr.description
        }
    }

    /// Prometheus's prettifier: nodes longer than 100 bytes are split over lines, indented two
    /// spaces per level.
    public func pretty(level: Int = 0, maxLineLength: Int = 100) -> String {
        let indent = String(repeating: "  ", count: level)
        let needsSplit = description.utf8.count > maxLineLength
        switch self {
        case .aggregate(let a):
            if !needsSplit { return indent + description }
            var s = indent + a.opPrefix + "(\n"
            if a.op.isAggregatorWithParam, let p = a.param { s += p.pretty(level: level + 1, maxLineLength: maxLineLength) + ",\n" }
            return s + a.expr.pretty(level: level + 1, maxLineLength: maxLineLength) + "\n" + indent + ")"
        case .binary(let b):
            if !needsSplit { return indent + description }
            return b.lhs.pretty(level: level + 1, maxLineLength: maxLineLength) + "\n" + indent + (b.op.canonicalText ?? "")
                + (b.returnBool ? " bool" : "") + b.matchingText + "\n" + b.rhs.pretty(level: level + 1, maxLineLength: maxLineLength)
        case .call(let c):
            if !needsSplit { return indent + description }
            let args = c.args.map { $0.pretty(level: level + 1, maxLineLength: maxLineLength) }.joined(separator: ",\n")
            return indent + c.function.name + "(\n" + args + "\n" + indent + ")"
        case .paren(let p):
            if !needsSplit { return indent + description }
            return indent + "(\n" + p.expr.pretty(level: level + 1, maxLineLength: maxLineLength) + "\n" + indent + ")"
        case .stepInvariant(let s):
            return s.expr.pretty(level: level, maxLineLength: maxLineLength)
        case .subquery(let s):
            if !needsSplit { return description }
            return s.expr.pretty(level: level, maxLineLength: maxLineLength) + s.suffixText
        case .unary(let u):
            let child = u.expr.pretty(level: level, maxLineLength: maxLineLength).trimmingWhitespace()
            return indent + (u.op.canonicalText ?? "") + child
        case .matrixSelector, .vectorSelector, .number, .string:
            return indent + description
        }
    }
}

extension AggregateExpr {
    /// `sum`, `sum by (a, b) `, `sum without (a) ` — with the trailing space Prometheus prints.
    var opPrefix: String {
        var s = op.canonicalText ?? ""
        if without {
            s += " without (" + grouping.joined(separator: ", ") + ") "
        } else if !grouping.isEmpty {
            s += " by (" + grouping.joined(separator: ", ") + ") "
        }
        return s
    }
}

extension BinaryExpr {
    var matchingText: String {
        guard let vm = matching, !vm.matchingLabels.isEmpty || vm.on else { return "" }
        var s = " \(vm.on ? "on" : "ignoring") (" + vm.matchingLabels.joined(separator: ", ") + ")"
        if vm.card == .manyToOne || vm.card == .oneToMany {
            s += " group_\(vm.card == .manyToOne ? "left" : "right") (" + vm.include.joined(separator: ", ") + ")"
        }
        return s
    }
}

extension SubqueryExpr {
    var suffixText: String {
        let step = stepMs != 0 ? formatPromDuration(stepMs) : ""
        return "[" + formatPromDuration(rangeMs) + ":" + step + "]"
            + atAndOffsetText(timestampMs: timestampMs, startOrEnd: startOrEnd, offsetMs: originalOffsetMs)
    }
}

private func atAndOffsetText(timestampMs: Int64?, startOrEnd: AtPreprocessor?, offsetMs: Int64) -> String {
    var s = ""
    if let ts = timestampMs {
        s += " @ " + formatSecondsMillis(ts)
    } else if let p = startOrEnd {
        s += p == .start ? " @ start()" : " @ end()"
    }
    if offsetMs > 0 {
        s += " offset " + formatPromDuration(offsetMs)
    } else if offsetMs < 0 {
        s += " offset -" + formatPromDuration(-offsetMs)
    }
    return s
}

extension String {
    /// Go's `strings.TrimSpace` for the ASCII whitespace the prettifier produces.
    func trimmingWhitespace() -> String {
        let b = Array(utf8)
        var s = 0
        var e = b.count
        func ws(_ x: UInt8) -> Bool { x == 0x20 || x == 0x09 || x == 0x0A || x == 0x0D || x == 0x0B || x == 0x0C }
        while s < e, ws(b[s]) { s += 1 }
        while e > s, ws(b[e - 1]) { e -= 1 }
        return String(decoding: b[s..<e], as: UTF8.self)
    }
}
