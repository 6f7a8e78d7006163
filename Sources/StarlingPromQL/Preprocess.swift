import StarlingCore

/// Prometheus's query preparation, reproduced because its quirks are observable:
///
/// - `@ start()` / `@ end()` become fixed timestamps;
/// - every maximal sub-tree whose value does not change from step to step (it has `@`, or is a
///   literal) is wrapped in `.stepInvariant` and evaluated once — except under functions that
///   read the evaluation time (`time`, `timestamp`, `hour`, `predict_linear`, …), whose own
///   result is never invariant (their arguments may be);
/// - the parameter of an aggregation (`topk(k, …)`) is left alone, as Prometheus does;
/// - `@` is turned into an offset relative to the evaluation start (`setOffsetsForAtModifier`).
func preprocessExpr(_ expr: Expr, startMs: Int64, endMs: Int64) -> Expr {
    let (e, invariant) = wrapStepInvariant(expr, startMs: startMs, endMs: endMs)
    let wrapped = invariant ? Expr.stepInvariant(StepInvariantExpr(expr: e)) : e
    return setOffsetsForAtModifier(evalTimeMs: startMs, wrapped)
}

private func resolve(_ p: AtPreprocessor?, _ ts: inout Int64?, startMs: Int64, endMs: Int64) {
    switch p {
    case .start: ts = startMs
    case .end: ts = endMs
    case nil: break
    }
}

private func wrapStepInvariant(_ expr: Expr, startMs: Int64, endMs: Int64) -> (Expr, Bool) {
    func wrap(_ e: Expr) -> Expr { .stepInvariant(StepInvariantExpr(expr: e)) }
    switch expr {
    case .vectorSelector(var v):
        resolve(v.startOrEnd, &v.timestampMs, startMs: startMs, endMs: endMs)
        return (.vectorSelector(v), v.timestampMs != nil)
    case .aggregate(var a):
        let (inner, inv) = wrapStepInvariant(a.expr, startMs: startMs, endMs: endMs)
        a.expr = inner
        return (.aggregate(a), inv)
    case .binary(var b):
        let (l, li) = wrapStepInvariant(b.lhs, startMs: startMs, endMs: endMs)
        let (r, ri) = wrapStepInvariant(b.rhs, startMs: startMs, endMs: endMs)
        b.lhs = l
        b.rhs = r
        if li && ri { return (.binary(b), true) }
        if li { b.lhs = wrap(l) }
        if ri { b.rhs = wrap(r) }
        return (.binary(b), false)
    case .call(var c):
        var invariant = !FunctionSignature.atModifierUnsafe.contains(c.function.name)
        var flags: [Bool] = []
        for i in c.args.indices {
            let (a, inv) = wrapStepInvariant(c.args[i], startMs: startMs, endMs: endMs)
            c.args[i] = a
            flags.append(inv)
            invariant = invariant && inv
        }
        if invariant { return (.call(c), true) }
        for i in c.args.indices where flags[i] { c.args[i] = wrap(c.args[i]) }
        return (.call(c), false)
    case .matrixSelector(var m):
        resolve(m.vectorSelector.startOrEnd, &m.vectorSelector.timestampMs, startMs: startMs, endMs: endMs)
        return (.matrixSelector(m), m.vectorSelector.timestampMs != nil)
    case .subquery(var s):
        let (inner, inv) = wrapStepInvariant(s.expr, startMs: startMs, endMs: endMs)
        s.expr = inv ? wrap(inner) : inner
        resolve(s.startOrEnd, &s.timestampMs, startMs: startMs, endMs: endMs)
        return (.subquery(s), s.timestampMs != nil)
    case .paren(var p):
        let (inner, inv) = wrapStepInvariant(p.expr, startMs: startMs, endMs: endMs)
        p.expr = inner
        return (.paren(p), inv)
    case .unary(var u):
        let (inner, inv) = wrapStepInvariant(u.expr, startMs: startMs, endMs: endMs)
        u.expr = inner
        return (.unary(u), inv)
    case .string, .number:
        return (expr, true)
    case .stepInvariant:
        return (expr, true)
    }
}

/// Prometheus's `setOffsetForAtModifier`: gives every selector and subquery with `@` the offset
/// that lands on its timestamp when evaluated at `evalTimeMs` (the start of the evaluation that
/// contains it), accounting for enclosing subqueries.
func setOffsetsForAtModifier(evalTimeMs: Int64, _ expr: Expr) -> Expr {
    func offset(_ ts: Int64?, _ original: Int64, _ path: [SubqueryExpr]) -> Int64 {
        guard let ts else { return original }
        var (subqOffset, _, subqTs) = subqueryTimes(path)
        if let st = subqTs { subqOffset += evalTimeMs - st }
        return original + (evalTimeMs - ts) - subqOffset
    }
    func walk(_ e: Expr, _ path: [SubqueryExpr]) -> Expr {
        switch e {
        case .vectorSelector(var v):
            v.offsetMs = offset(v.timestampMs, v.originalOffsetMs, path)
            return .vectorSelector(v)
        case .matrixSelector(var m):
            m.vectorSelector.offsetMs = offset(m.vectorSelector.timestampMs, m.vectorSelector.originalOffsetMs, path)
            return .matrixSelector(m)
        case .subquery(var s):
            s.offsetMs = offset(s.timestampMs, s.originalOffsetMs, path)
            s.expr = walk(s.expr, path + [s])
            return .subquery(s)
        case .aggregate(var a):
            a.expr = walk(a.expr, path)
            if let p = a.param { a.param = walk(p, path) }
            return .aggregate(a)
        case .binary(var b):
            b.lhs = walk(b.lhs, path)
            b.rhs = walk(b.rhs, path)
            return .binary(b)
        case .call(var c):
            c.args = c.args.map { walk($0, path) }
            return .call(c)
        case .paren(var p):
            p.expr = walk(p.expr, path)
            return .paren(p)
        case .unary(var u):
            u.expr = walk(u.expr, path)
            return .unary(u)
        case .stepInvariant(var s):
            s.expr = walk(s.expr, path)
            return .stepInvariant(s)
        case .number, .string:
            return e
        }
    }
    return walk(expr, [])
}

/// Sum of offsets and ranges of the enclosing subqueries, reset at the innermost one with `@`,
/// and that `@` time.
private func subqueryTimes(_ path: [SubqueryExpr]) -> (Int64, Int64, Int64?) {
    var offset: Int64 = 0
    var range: Int64 = 0
    var ts: Int64? = nil
    for s in path {
        offset += s.originalOffsetMs
        range += s.rangeMs
        if let t = s.timestampMs {
            offset = s.originalOffsetMs
            range = s.rangeMs
            ts = t
        }
    }
    return (offset, range, ts)
}
