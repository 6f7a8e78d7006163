import StarlingCore

/// Binary operators: scalar/scalar, vector/scalar element-wise, and vector/vector with label
/// matching (`on`, `ignoring`, `group_left`, `group_right`) and the set operators. Matching
/// signatures are computed once per series and numbered, so each step is array lookups.
extension Evaluator {
    func binary(_ b: BinaryExpr) async throws(PromQLError) -> EvalValue {
        let lhs = try await eval(b.lhs)
        let rhs = try await eval(b.rhs)
        switch (lhs, rhs) {
        case (.scalar(let l), .scalar(let r)):
            var out = l
            for i in out.indices { out[i] = scalarBinop(b.op, l[i], r[i]) }
            return .scalar(out)
        case (.vector(let l), .scalar(let r)):
            return .vector(try vectorScalar(b, l, r, swap: false))
        case (.scalar(let l), .vector(let r)):
            return .vector(try vectorScalar(b, r, l, swap: true))
        case (.vector(let l), .vector(let r)):
            let matching = b.matching ?? VectorMatching(card: .oneToOne, matchingLabels: [], on: false, include: [])
            if b.op.isSetOperator {
                return .vector(try setOperation(b.op, l, r, matching))
            }
            return .vector(try vectorVector(b.op, l, r, matching, returnBool: b.returnBool))
        default:
            preconditionFailure("binary operator on \(lhs) and \(rhs)")
        }
    }

    private func vectorScalar(_ b: BinaryExpr, _ vec: [StepSeries], _ scalar: [Double], swap: Bool) throws(PromQLError) -> [StepSeries] {
        let op = b.op
        let dropName = shouldDropMetricName(op) || b.returnBool
        let comparison = op.isComparisonOperator
        return try mapSeries(vec, dropName: dropName) { v, step in
            var lv = v, rv = scalar[step]
            if swap { (lv, rv) = (rv, lv) }
            var (value, keep) = vectorElemBinop(op, lv, rv)
            // The vector's element is the value of a comparison, whichever side it is on.
            if comparison && swap { value = rv }
            if b.returnBool {
                return keep ? 1 : 0
            }
            return keep ? value : absentValue
        }
    }

    /// Numbers the matching signature of each series (`on`: the listed labels; `ignoring`: all
    /// but the listed labels and the metric name) across both sides.
    private func signatures(_ l: [StepSeries], _ r: [StepSeries], _ m: VectorMatching) -> ([Int], [Int], Int) {
        var ids: [Labels: Int] = [:]
        let names = LabelNameSet(m.matchingLabels)
        let ignored = LabelNameSet(m.matchingLabels + [metricNameLabel])
        func sig(_ s: StepSeries) -> Int {
            let key = m.on ? s.labels.keeping(names) : s.labels.removing(ignored)
            if let i = ids[key] { return i }
            let i = ids.count
            ids[key] = i
            return i
        }
        let ls = l.map(sig)
        let rs = r.map(sig)
        return (ls, rs, ids.count)
    }

    private func setOperation(_ op: TokenType, _ l: [StepSeries], _ r: [StepSeries], _ m: VectorMatching) throws(PromQLError) -> [StepSeries] {
        let (lsig, rsig, nsig) = signatures(l, r, m)
        var builder = SeriesBuilder()
        let lslots = l.map { builder.slot(for: $0.labels) }
        let rslots = r.map { builder.slot(for: $0.labels) }
        var stamp = [Int](repeating: -1, count: nsig)
        for step in 0..<numSteps {
            try state.checkCanceled()
            var lhsAny = false, rhsAny = false
            for s in l where isPresent(s.value(at: step)) { lhsAny = true; break }
            for s in r where isPresent(s.value(at: step)) { rhsAny = true; break }
            switch op {
            case .land:
                if !lhsAny || !rhsAny { continue }
                for (j, s) in r.enumerated() where isPresent(s.value(at: step)) { stamp[rsig[j]] = step }
                for (i, s) in l.enumerated() {
                    let v = s.value(at: step)
                    if isPresent(v) && stamp[lsig[i]] == step { try builder.set(lslots[i], step: step, v) }
                }
            case .lor:
                for (i, s) in l.enumerated() {
                    let v = s.value(at: step)
                    if isPresent(v) {
                        stamp[lsig[i]] = step
                        try builder.set(lslots[i], step: step, v)
                    }
                }
                for (j, s) in r.enumerated() {
                    let v = s.value(at: step)
                    if isPresent(v) && (!lhsAny || stamp[rsig[j]] != step) { try builder.set(rslots[j], step: step, v) }
                }
            case .lunless:
                if lhsAny && rhsAny {
                    for (j, s) in r.enumerated() where isPresent(s.value(at: step)) { stamp[rsig[j]] = step }
                }
                for (i, s) in l.enumerated() {
                    let v = s.value(at: step)
                    if isPresent(v) && (!rhsAny || stamp[lsig[i]] != step) { try builder.set(lslots[i], step: step, v) }
                }
            default:
                preconditionFailure("not a set operator")
            }
        }
        return builder.finish()
    }

    private func vectorVector(_ op: TokenType, _ lhsIn: [StepSeries], _ rhsIn: [StepSeries], _ m: VectorMatching, returnBool: Bool) throws(PromQLError) -> [StepSeries] {
        var (lsigIn, rsigIn, nsig) = signatures(lhsIn, rhsIn, m)
        // One-to-many is many-to-one with the sides swapped.
        let swapped = m.card == .oneToMany
        let lhs = swapped ? rhsIn : lhsIn
        let rhs = swapped ? lhsIn : rhsIn
        if swapped { swap(&lsigIn, &rsigIn) }
        let lsig = lsigIn, rsig = rsigIn
        var builder = SeriesBuilder()
        var rightAt = [Int](repeating: -1, count: nsig)  // rhs series index for the signature at this step
        var rightStamp = [Int](repeating: -1, count: nsig)
        var matchedStamp = [Int](repeating: -1, count: nsig)
        // The output slot of each (lhs, rhs) pair, computed once: the pair's result labels are the
        // same at every step. The last pair of each lhs series answers without hashing, since a
        // series almost always meets the same partner at every step.
        var slotOfPair: [Int: Int] = [:]  // lhs index * rhs count + rhs index → builder slot
        var lastPartner = [Int](repeating: -1, count: lhs.count)
        var lastSlot = [Int](repeating: -1, count: lhs.count)
        var insertedBySig: [Int: Set<Int>] = [:]  // slots, one per result label set
        for step in 0..<numSteps {
            try state.checkCanceled()
            var lhsAny = false, rhsAny = false
            for s in lhs where isPresent(s.value(at: step)) { lhsAny = true; break }
            for s in rhs where isPresent(s.value(at: step)) { rhsAny = true; break }
            if !lhsAny || !rhsAny { continue }
            for (j, s) in rhs.enumerated() where isPresent(s.value(at: step)) {
                let sig = rsig[j]
                if rightStamp[sig] == step {
                    let dup = rhs[rightAt[sig]]
                    let matched = m.on ? s.labels.keeping(LabelNameSet(m.matchingLabels)) : s.labels.removing(LabelNameSet(m.matchingLabels + [metricNameLabel]))
                    throw .execution(
                        "found duplicate series for the match group \(promLabelsString(matched)) on the \(swapped ? "left" : "right") hand-side of the operation: [\(promLabelsString(s.labels)), \(promLabelsString(dup.labels))];many-to-many matching not allowed: matching labels must be unique on one side")
                }
                rightStamp[sig] = step
                rightAt[sig] = j
            }
            if m.card != .oneToOne { insertedBySig.removeAll(keepingCapacity: true) }
            for (i, s) in lhs.enumerated() {
                let lv = s.value(at: step)
                guard isPresent(lv) else { continue }
                let sig = lsig[i]
                guard rightStamp[sig] == step else { continue }
                let j = rightAt[sig]
                let rv = rhs[j].value(at: step)
                var (vl, vr) = (lv, rv)
                if swapped { (vl, vr) = (vr, vl) }
                var (value, keep) = vectorElemBinop(op, vl, vr)
                if returnBool {
                    value = keep ? 1 : 0
                } else if !keep {
                    continue
                }
                let slot: Int
                if lastPartner[i] == j {
                    slot = lastSlot[i]
                } else {
                    let pairKey = i &* rhs.count &+ j
                    if let cached = slotOfPair[pairKey] {
                        slot = cached
                    } else {
                        var metric = resultMetric(s.labels, rhs[j].labels, op, m)
                        if returnBool { metric = metric.withoutMetricName }
                        slot = builder.slot(for: metric)
                        slotOfPair[pairKey] = slot
                    }
                    lastPartner[i] = j
                    lastSlot[i] = slot
                }
                if m.card == .oneToOne {
                    if matchedStamp[sig] == step {
                        throw .execution("multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)")
                    }
                    matchedStamp[sig] = step
                } else {
                    if !insertedBySig[sig, default: []].insert(slot).inserted {
                        throw .execution("multiple matches for labels: grouping labels must ensure unique matches")
                    }
                }
                try builder.set(slot, step: step, value)
            }
        }
        return builder.finish()
    }

    private func resultMetric(_ lhs: Labels, _ rhs: Labels, _ op: TokenType, _ m: VectorMatching) -> Labels {
        var l = lhs
        if shouldDropMetricName(op) { l = l.withoutMetricName }
        if m.card == .oneToOne {
            l = m.on ? l.keeping(LabelNameSet(m.matchingLabels)) : l.removing(LabelNameSet(m.matchingLabels))
        }
        if !m.include.isEmpty {
            var b = LabelsBuilder(l)
            for name in m.include {
                if let v = rhs.get(name), !v.isEmpty { b.set(name, v) } else { b.remove(name) }
            }
            l = b.build()
        }
        return l
    }
}

/// Arithmetic operators drop the metric name; comparisons and `atan2` keep it.
func shouldDropMetricName(_ op: TokenType) -> Bool {
    switch op {
    case .add, .sub, .div, .mul, .pow, .mod: return true
    default: return false
    }
}

func scalarBinop(_ op: TokenType, _ l: Double, _ r: Double) -> Double {
    switch op {
    case .add: return l + r
    case .sub: return l - r
    case .mul: return l * r
    case .div: return l / r
    case .pow: return goPow(l, r)
    case .mod: return goMod(l, r)
    case .eqlc: return l == r ? 1 : 0
    case .neq: return l != r ? 1 : 0
    case .gtr: return l > r ? 1 : 0
    case .lss: return l < r ? 1 : 0
    case .gte: return l >= r ? 1 : 0
    case .lte: return l <= r ? 1 : 0
    case .atan2: return goAtan2(l, r)
    default: preconditionFailure("operator \(op) not allowed for scalar operations")
    }
}

/// The value of `l op r` and whether the element is kept (comparisons filter).
@inline(__always) func vectorElemBinop(_ op: TokenType, _ l: Double, _ r: Double) -> (Double, Bool) {
    switch op {
    case .add: return (l + r, true)
    case .sub: return (l - r, true)
    case .mul: return (l * r, true)
    case .div: return (l / r, true)
    case .pow: return (goPow(l, r), true)
    case .mod: return (goMod(l, r), true)
    case .eqlc: return (l, l == r)
    case .neq: return (l, l != r)
    case .gtr: return (l, l > r)
    case .lss: return (l, l < r)
    case .gte: return (l, l >= r)
    case .lte: return (l, l <= r)
    case .atan2: return (goAtan2(l, r), true)
    default: preconditionFailure("operator \(op) not allowed between vectors")
    }
}
