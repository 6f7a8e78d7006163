import StarlingCore

/// Evaluates an expression at the steps `startMs, startMs + intervalMs, …, endMs` (one step for
/// an instant query) with Prometheus 2.42's semantics. Every node yields its value at all steps
/// at once; per-step operators (aggregations, binary operators, functions) see the samples
/// present at a step in input-series order, exactly the order Prometheus processes them, so
/// floating-point results match bit for bit.
///
/// Selectors stream: series come from the querier one at a time and are decoded, evaluated
/// over all steps and released before the next one is read.
final class Evaluator {
    let startMs: Int64
    let endMs: Int64
    let intervalMs: Int64
    let numSteps: Int
    let lookbackMs: Int64
    let state: QueryState
    let source: SeriesSource
    /// Reused decode buffer.
    var sampleBuffer: [Sample] = []

    init(startMs: Int64, endMs: Int64, intervalMs: Int64, lookbackMs: Int64, state: QueryState, source: SeriesSource) {
        precondition(intervalMs > 0 && endMs >= startMs, "bad evaluation range \(startMs)...\(endMs) step \(intervalMs)")
        self.startMs = startMs
        self.endMs = endMs
        self.intervalMs = intervalMs
        self.numSteps = Int((endMs - startMs) / intervalMs) + 1
        self.lookbackMs = lookbackMs
        self.state = state
        self.source = source
    }

    @inline(__always) func time(ofStep s: Int) -> Int64 { startMs + Int64(s) * intervalMs }

    func child(startMs: Int64, endMs: Int64, intervalMs: Int64) -> Evaluator {
        Evaluator(startMs: startMs, endMs: endMs, intervalMs: intervalMs, lookbackMs: lookbackMs, state: state, source: source)
    }

    // MARK: Dispatch

    /// Evaluates `expr`. Afterwards the query holds what it held before plus the result: the
    /// children's values are released (Prometheus's accounting for `maxSamples`).
    func eval(_ expr: Expr) async throws(PromQLError) -> EvalValue {
        try state.checkCanceledNow()
        let before = state.currentSamples
        let v = try await evalNode(expr)
        let size: Int
        switch v {
        case .vector(let series): size = series.reduce(0) { $0 + $1.presentCount }
        case .scalar(let s): size = s.count
        case .matrix(let series): size = series.reduce(0) { $0 + $1.samples.count }
        case .string: size = 0
        }
        state.release(state.currentSamples - before)
        try state.hold(size)
        return v
    }

    private func evalNode(_ expr: Expr) async throws(PromQLError) -> EvalValue {
        switch expr {
        case .number(let n):
            return .scalar([Double](repeating: n.value, count: numSteps))
        case .string(let s):
            return .string(s.value)
        case .paren(let p):
            return try await eval(p.expr)
        case .vectorSelector(let vs):
            return .vector(try await vectorSelector(vs))
        case .matrixSelector(let ms):
            precondition(numSteps == 1, "range evaluation of a matrix selector")
            return .matrix(try await matrixSelector(ms))
        case .subquery(let sq):
            let (series, _, _) = try await subquery(sq)
            return .matrix(series)
        case .stepInvariant(let si):
            return try await stepInvariant(si.expr)
        case .unary(let u):
            return try await unary(u)
        case .binary(let b):
            return try await binary(b)
        case .aggregate(let a):
            return .vector(try await aggregate(a))
        case .call(let c):
            return try await call(c)
        }
    }

    func evalVector(_ e: Expr) async throws(PromQLError) -> [StepSeries] {
        switch try await eval(e) {
        case .vector(let v): return v
        case .scalar(let s):
            // Cannot happen in a type-checked tree; keep a sane conversion.
            return [StepSeries(labels: .empty, firstStep: 0, values: s)]
        default: preconditionFailure("expected an instant vector from \(e)")
        }
    }

    func evalScalar(_ e: Expr) async throws(PromQLError) -> [Double] {
        guard case .scalar(let s) = try await eval(e) else { preconditionFailure("expected a scalar from \(e)") }
        return s
    }

    // MARK: Step invariance

    /// A part of the query with the same value at every step: evaluated once at the start and
    /// repeated (range selectors and subqueries are returned as they are).
    private func stepInvariant(_ inner: Expr) async throws(PromQLError) -> EvalValue {
        switch inner {
        case .number, .string: return try await eval(inner)
        default: break
        }
        let once = child(startMs: startMs, endMs: startMs, intervalMs: intervalMs)
        let v = try await once.eval(inner)
        switch inner {
        case .matrixSelector, .subquery: return v
        default: break
        }
        if numSteps == 1 { return v }
        switch v {
        case .scalar(let s):
            return .scalar([Double](repeating: s[0], count: numSteps))
        case .vector(let series):
            var out: [StepSeries] = []
            out.reserveCapacity(series.count)
            for s in series {
                try state.hold(numSteps - 1)
                out.append(StepSeries(labels: s.labels, firstStep: 0, values: [Double](repeating: s.values[0], count: numSteps)))
            }
            return .vector(out)
        default:
            return v
        }
    }

    // MARK: Selectors

    /// Prometheus's `getTimeRangesForSelector`: the data range a selector needs, ms, inclusive.
    func selectRange(_ vs: VectorSelector, rangeMs: Int64?) -> (Int64, Int64) {
        var start = startMs
        var end = endMs
        if let ts = vs.timestampMs {
            start = ts
            end = ts
        }
        if let r = rangeMs { start -= r } else { start -= lookbackMs }
        start -= vs.originalOffsetMs
        end -= vs.originalOffsetMs
        return (start, end)
    }

    func hints(_ range: (Int64, Int64), function: String?) -> SelectHints {
        SelectHints(startMs: range.0, endMs: range.1, stepMs: numSteps > 1 ? intervalMs : nil, function: function)
    }

    /// An instant selector at every step: the latest sample at or before `t - offset` and no
    /// older than the lookback delta, unless that sample is a staleness marker.
    func vectorSelector(_ vs: VectorSelector, function: String? = nil) async throws(PromQLError) -> [StepSeries] {
        var out: [StepSeries] = []
        let st = state
        try await vectorSelector(vs, function: function) { s throws(PromQLError) in
            try st.hold(s.presentCount)
            out.append(s)
        }
        return out
    }

    /// The selector's series, handed to `sink` one by one as they are read.
    func vectorSelector(_ vs: VectorSelector, function: String?, sink: (StepSeries) throws(PromQLError) -> Void) async throws(PromQLError) {
        // `@` is folded into the effective offset by preprocessing; the data range is
        // Prometheus's, which for `@` ignores the evaluation range.
        let range = selectRange(vs, rangeMs: nil)
        let selection = try await source.select(vs.matchers, hints: hints(range, function: function), state: state)
        while let labels = try await selection.next(into: &sampleBuffer) {
            try state.checkCanceled()
            if let s = try instantValues(labels: labels, samples: sampleBuffer, offsetMs: vs.offsetMs) {
                try sink(s)
            }
        }
    }

    /// Looks up one series' value at every step (`refTime = t - offsetMs`).
    func instantValues(labels: Labels, samples: [Sample], offsetMs: Int64) throws(PromQLError) -> StepSeries? {
        if samples.isEmpty { return nil }
        var values: [Double] = []
        var first = -1
        var present = 0
        var j = 0  // samples[..<j] are at or before the current reference time
        let n = samples.count
        for step in 0..<numSteps {
            let ref = time(ofStep: step) - offsetMs
            while j < n && samples[j].timestampMs <= ref { j += 1 }
            var v = absentValue
            if j > 0 {
                let s = samples[j - 1]
                if s.timestampMs >= ref - lookbackMs && !StaleMarker.isStale(s.value) { v = s.value }
            }
            if isPresent(v) {
                if first < 0 {
                    first = step
                    values.reserveCapacity(numSteps - step)
                }
                values.append(v)
                present += 1
            } else if first >= 0 {
                values.append(absentValue)
            }
        }
        if first < 0 { return nil }
        while let l = values.last, !isPresent(l) { values.removeLast() }
        return StepSeries(labels: labels, firstStep: first, values: values)
    }

    /// A range selector evaluated at one instant: raw samples in `[t - offset - range, t - offset]`.
    func matrixSelector(_ ms: MatrixSelector) async throws(PromQLError) -> [RawSeries] {
        let vs = ms.vectorSelector
        let range = selectRange(vs, rangeMs: ms.rangeMs)
        let maxt = startMs - vs.offsetMs
        let mint = maxt - ms.rangeMs
        let selection = try await source.select(vs.matchers, hints: hints(range, function: nil), state: state)
        var out: [RawSeries] = []
        while let labels = try await selection.next(into: &sampleBuffer) {
            try state.checkCanceled()
            var pts: [Sample] = []
            for s in sampleBuffer where s.timestampMs >= mint && s.timestampMs <= maxt && !StaleMarker.isStale(s.value) {
                pts.append(s)
            }
            if pts.isEmpty { continue }
            try state.hold(pts.count)
            out.append(RawSeries(labels: labels, samples: pts))
        }
        return out
    }

    // MARK: Subqueries

    /// Evaluates a subquery's inner expression over the steps it covers for this evaluation.
    /// Returns the points per series, and the range and effective offset that a range function
    /// applies to them.
    func subquery(_ sq: SubqueryExpr) async throws(PromQLError) -> ([RawSeries], Int64, Int64) {
        let offset = sq.offsetMs
        let interval = sq.stepMs != 0 ? sq.stepMs : state.settings.defaultSubqueryStepMs
        let end = endMs - offset
        let lowest = startMs - offset - sq.rangeMs
        var start = interval * truncatingDiv(lowest, interval)
        if start < lowest { start += interval }
        var inner = sq.expr
        if start != startMs {
            inner = setOffsetsForAtModifier(evalTimeMs: start, inner)
        }
        if start > end {
            return ([], sq.rangeMs, effectiveSubqueryOffset(sq))
        }
        let sub = child(startMs: start, endMs: end, intervalMs: interval)
        let series = try await sub.evalVector(inner)
        let out = series.map { RawSeries(labels: $0.labels, samples: $0.samples(time: sub.time(ofStep:))) }
        return (out, sq.rangeMs, effectiveSubqueryOffset(sq))
    }

    /// The offset Prometheus gives the selector it substitutes for an evaluated subquery.
    private func effectiveSubqueryOffset(_ sq: SubqueryExpr) -> Int64 {
        if let ts = sq.timestampMs { return sq.originalOffsetMs + (startMs - ts) }
        return sq.offsetMs
    }

    // MARK: Unary

    private func unary(_ u: UnaryExpr) async throws(PromQLError) -> EvalValue {
        let v = try await eval(u.expr)
        guard u.op == .sub else { return v }
        switch v {
        case .scalar(var s):
            for i in s.indices { s[i] = -s[i] }
            return .scalar(s)
        case .vector(var series):
            var seen = Set<Labels>()
            var duplicate = false
            for i in series.indices {
                series[i].labels = series[i].labels.withoutMetricName
                for k in series[i].values.indices where isPresent(series[i].values[k]) {
                    series[i].values[k] = -series[i].values[k]
                }
                if !seen.insert(series[i].labels).inserted { duplicate = true }
            }
            if duplicate { throw .execution("vector cannot contain metrics with the same labelset") }
            return .vector(series)
        default:
            return v
        }
    }
}

/// Go's integer division (toward zero), which Prometheus's step alignment relies on.
@inline(__always) func truncatingDiv(_ a: Int64, _ b: Int64) -> Int64 { a / b }
