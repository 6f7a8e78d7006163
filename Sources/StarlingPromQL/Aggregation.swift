import StarlingCore

/// Aggregation operators. `sum`, `avg`, `count`, `group`, `min`, `max`, `stddev`, `stdvar`
/// accumulate series by series into per-group, per-step state; at each step a group sees its
/// samples in input order, so every floating-point operation happens in Prometheus's order.
/// `topk`, `bottomk`, `quantile` and `count_values` work step by step.
extension Evaluator {
    func aggregate(_ a: AggregateExpr) async throws(PromQLError) -> [StepSeries] {
        let grouping = a.grouping.sorted(by: utf8Less)
        var param: [Double]? = nil
        var valueLabel: String? = nil
        if a.op == .countValues, let p = a.param {
            guard case .string(let s) = p.unwrapped else { preconditionFailure("count_values needs a string") }
            valueLabel = s.value
        } else if let p = a.param {
            param = try await evalScalar(p)
        }
        if a.op.isAccumulating, let streamed = try await streamedAggregation(a, grouping: grouping) {
            return streamed
        }
        let input = try await evalVector(a.expr)
        switch a.op {
        case .topk, .bottomk:
            return try selectK(input, k: param!, grouping: grouping, without: a.without, top: a.op == .topk)
        case .quantile:
            return try quantileAggregation(input, q: param!, grouping: grouping, without: a.without)
        case .countValues:
            return try countValues(input, label: valueLabel!, grouping: grouping, without: a.without)
        default:
            return try accumulate(a.op, input, grouping: grouping, without: a.without)
        }
    }

    /// `sum by (…) (rate(x[5m]))` and the like: the argument's series are folded into the groups
    /// as they are produced, so only the groups' values are ever held, not the argument's.
    private func streamedAggregation(_ a: AggregateExpr, grouping: [String]) async throws(PromQLError) -> [StepSeries]? {
        var acc = GroupAccumulator(op: a.op, grouping: grouping, without: a.without, numSteps: numSteps)
        let st = state
        switch a.expr.unwrappingParens {
        case .vectorSelector(let vs):
            try await vectorSelector(vs, function: a.op.canonicalText) { s throws(PromQLError) in try acc.add(s, state: st) }
        case .call(let c):
            guard let k = c.args.firstIndex(where: {
                switch $0.unwrapped {
                case .matrixSelector, .subquery: return true
                default: return false
                }
            }), c.function.name != "absent_over_time" else { return nil }
            try await rangeFunction(c, matrixIndex: k) { s throws(PromQLError) in try acc.add(s, state: st) }
        default:
            return nil
        }
        return acc.finish()
    }

    func groupLabels(_ l: Labels, _ grouping: [String], without: Bool) -> Labels {
        AggregationGrouping(grouping, without: without).labels(of: l)
    }

    private func accumulate(_ op: TokenType, _ input: [StepSeries], grouping: [String], without: Bool) throws(PromQLError) -> [StepSeries] {
        var acc = GroupAccumulator(op: op, grouping: grouping, without: without, numSteps: numSteps)
        for s in input {
            try state.checkCanceled()
            try acc.add(s, state: state)
        }
        return acc.finish()
    }

    /// The present samples of every step, in input order, grouped.
    private func forEachStep(_ input: [StepSeries], _ body: (Int, [StepSample]) throws(PromQLError) -> Void) throws(PromQLError) {
        var samples: [StepSample] = []
        samples.reserveCapacity(input.count)
        for step in 0..<numSteps {
            try state.checkCanceled()
            samples.removeAll(keepingCapacity: true)
            for (i, s) in input.enumerated() {
                let v = s.value(at: step)
                if isPresent(v) { samples.append(StepSample(series: i, value: v)) }
            }
            try body(step, samples)
        }
    }

    private func selectK(_ input: [StepSeries], k param: [Double], grouping: [String], without: Bool, top: Bool) throws(PromQLError) -> [StepSeries] {
        let keys = input.map { groupLabels($0.labels, grouping, without: without) }
        var builder = SeriesBuilder()
        try forEachStep(input) { (step, samples) throws(PromQLError) in
            let f = param[step]
            if !(f <= 9_223_372_036_854_774_784 && f >= -9_223_372_036_854_775_808) {
                throw .execution("Scalar value \(goFormatFloat(f)) overflows int64")
            }
            let k = Int64(f)
            if k < 1 { return }
            var groupIndex: [Labels: Int] = [:]
            var heaps: [[StepSample]] = []
            for s in samples {
                let key = keys[s.series]
                guard let g = groupIndex[key] else {
                    groupIndex[key] = heaps.count
                    heaps.append([s])
                    continue
                }
                // Go's container/heap with Prometheus's orderings: a min-heap for topk, a max-heap
                // for bottomk, NaN at the top of both.
                let less: (Double, Double) -> Bool = top ? { $0.isNaN || $0 < $1 } : { $0.isNaN || $0 > $1 }
                let rootWorse = top ? (heaps[g][0].value < s.value) : (heaps[g][0].value > s.value)
                if Int64(heaps[g].count) < k || rootWorse || heaps[g][0].value.isNaN {
                    if Int64(heaps[g].count) == k {
                        if k == 1 {
                            heaps[g][0] = s
                            continue
                        }
                        goHeapPop(&heaps[g], less)
                    }
                    goHeapPush(&heaps[g], s, less)
                }
            }
            for var h in heaps {
                if h.count > 1 {
                    // sort.Sort(sort.Reverse(heap)): descending for topk, ascending for bottomk.
                    goSort(&h) { (a: StepSample, b: StepSample) -> Bool in top ? (a.value.isNaN || a.value < b.value) : (a.value.isNaN || a.value > b.value) }
                }
                for s in h {
                    try state.hold(1)
                    try builder.add(input[s.series].labels, step: step, s.value)
                }
            }
        }
        return builder.finish()
    }

    private func quantileAggregation(_ input: [StepSeries], q: [Double], grouping: [String], without: Bool) throws(PromQLError) -> [StepSeries] {
        let keys = input.map { groupLabels($0.labels, grouping, without: without) }
        var builder = SeriesBuilder()
        try forEachStep(input) { (step, samples) throws(PromQLError) in
            var groupIndex: [Labels: Int] = [:]
            var groups: [(Labels, [Double])] = []
            for s in samples {
                let key = keys[s.series]
                if let g = groupIndex[key] {
                    groups[g].1.append(s.value)
                } else {
                    groupIndex[key] = groups.count
                    groups.append((key, [s.value]))
                }
            }
            for (labels, var values) in groups {
                try state.hold(1)
                try builder.add(labels, step: step, quantile(q[step], &values))
            }
        }
        return builder.finish()
    }

    private func countValues(_ input: [StepSeries], label: String, grouping: [String], without: Bool) throws(PromQLError) -> [StepSeries] {
        if !isLabelName(label) { throw .execution("invalid label name \(goQuote(label))") }
        var effectiveGrouping = grouping
        if !without {
            effectiveGrouping.append(label)
            effectiveGrouping.sort(by: utf8Less)
        }
        var builder = SeriesBuilder()
        try forEachStep(input) { (step, samples) throws(PromQLError) in
            var groupIndex: [Labels: Int] = [:]
            var groups: [(Labels, Double)] = []
            for s in samples {
                let labels = input[s.series].labels.setting(label, formatSampleValue(s.value))
                let key = groupLabels(labels, effectiveGrouping, without: without)
                if let g = groupIndex[key] {
                    groups[g].1 += 1
                } else {
                    groupIndex[key] = groups.count
                    groups.append((key, 1))
                }
            }
            for (labels, n) in groups {
                try state.hold(1)
                try builder.add(labels, step: step, n)
            }
        }
        return builder.finish()
    }
}

/// `by (…)` / `without (…)`: the labels that identify a series' group, which are also the
/// group's output labels (`without` always drops the metric name too).
struct AggregationGrouping {
    let names: LabelNameSet
    let without: Bool

    init(_ grouping: [String], without: Bool) {
        names = LabelNameSet(without ? grouping + [metricNameLabel] : grouping)
        self.without = without
    }

    func labels(of l: Labels) -> Labels {
        if without { return l.removing(names) }
        if names.isEmpty { return .empty }
        return l.keeping(names)
    }
}

/// Per-group, per-step state of `sum`, `avg`, `count`, `group`, `min`, `max`, `stddev`, `stdvar`.
/// Series are added in input order; at each step a group's samples are combined in that order
/// with Prometheus's update rules (first sample initializes; incremental mean; Welford).
struct GroupAccumulator {
    let op: TokenType
    let grouping: AggregationGrouping
    let numSteps: Int
    private var groupIndex: [Labels: Int] = [:]
    private var labels: [Labels] = []
    private var value: [[Double]] = []
    private var mean: [[Double]] = []
    private var count: [[Double]] = []

    init(op: TokenType, grouping: [String], without: Bool, numSteps: Int) {
        self.op = op
        self.grouping = AggregationGrouping(grouping, without: without)
        self.numSteps = numSteps
    }

    mutating func add(_ s: StepSeries, state: QueryState) throws(PromQLError) {
        let k = grouping.labels(of: s.labels)
        let g: Int
        if let x = groupIndex[k] {
            g = x
        } else {
            g = labels.count
            groupIndex[k] = g
            labels.append(k)
            value.append([Double](repeating: 0, count: numSteps))
            count.append([Double](repeating: 0, count: numSteps))
            let needsMean = op == .avg || op == .stddev || op == .stdvar
            mean.append(needsMean ? [Double](repeating: 0, count: numSteps) : [])
            try state.hold(numSteps)
        }
        for (k, v) in s.values.enumerated() where isPresent(v) {
            let step = s.firstStep + k
            let n = count[g][step]
            if n == 0 {
                count[g][step] = 1
                switch op {
                case .stddev, .stdvar:
                    value[g][step] = 0
                    mean[g][step] = v
                case .group:
                    value[g][step] = 1
                case .avg:
                    value[g][step] = v
                    mean[g][step] = v
                default:
                    value[g][step] = v
                }
                continue
            }
            switch op {
            case .sum:
                value[g][step] += v
            case .avg:
                let c = n + 1
                count[g][step] = c
                let m = mean[g][step]
                if m.isInfinite {
                    if v.isInfinite && (m > 0) == (v > 0) { break }
                    if !v.isInfinite && !v.isNaN { break }
                }
                mean[g][step] = m + (v / c - m / c)
            case .group:
                break
            case .max:
                let cur = value[g][step]
                if cur < v || cur.isNaN { value[g][step] = v }
            case .min:
                let cur = value[g][step]
                if cur > v || cur.isNaN { value[g][step] = v }
            case .count:
                count[g][step] = n + 1
            case .stddev, .stdvar:
                let c = n + 1
                count[g][step] = c
                let delta = v - mean[g][step]
                mean[g][step] += delta / c
                value[g][step] += delta * (v - mean[g][step])
            default:
                preconditionFailure("not an accumulating aggregation: \(op)")
            }
        }
    }

    func finish() -> [StepSeries] {
        var out: [StepSeries] = []
        out.reserveCapacity(labels.count)
        for g in labels.indices {
            var first = -1
            var vals: [Double] = []
            for step in 0..<numSteps {
                let n = count[g][step]
                var v = absentValue
                if n > 0 {
                    switch op {
                    case .avg: v = mean[g][step]
                    case .count: v = n
                    case .stdvar: v = value[g][step] / n
                    case .stddev: v = (value[g][step] / n).squareRoot()
                    default: v = value[g][step]
                    }
                    if first < 0 { first = step }
                }
                if first >= 0 { vals.append(v) }
            }
            while let l = vals.last, !isPresent(l) { vals.removeLast() }
            if first >= 0 { out.append(StepSeries(labels: labels[g], firstStep: first, values: vals)) }
        }
        return out
    }
}

extension TokenType {
    /// Aggregations computed by `GroupAccumulator`.
    var isAccumulating: Bool {
        switch self {
        case .sum, .avg, .count, .group, .min, .max, .stddev, .stdvar: return true
        default: return false
        }
    }
}

// MARK: Go's container/heap and sort.Sort, reproduced for identical tie-breaking

/// `heap.Push` with `less(a, b)` meaning "a is closer to the root".
func goHeapPush(_ h: inout [StepSample], _ x: StepSample, _ less: (Double, Double) -> Bool) {
    h.append(x)
    var j = h.count - 1
    while true {
        let i = (j - 1) / 2
        if i == j || !less(h[j].value, h[i].value) { break }
        h.swapAt(i, j)
        j = i
    }
}

/// `heap.Pop`: removes the root.
func goHeapPop(_ h: inout [StepSample], _ less: (Double, Double) -> Bool) {
    let n = h.count - 1
    h.swapAt(0, n)
    var i = 0
    while true {
        let j1 = 2 * i + 1
        if j1 >= n { break }
        var j = j1
        let j2 = j1 + 1
        if j2 < n && less(h[j2].value, h[j1].value) { j = j2 }
        if !less(h[j].value, h[i].value) { break }
        h.swapAt(i, j)
        i = j
    }
    h.removeLast()
}

/// `sort.Sort(sort.Reverse(x))` where `heapLess` is x's Less.
func goSort(_ a: inout [StepSample], heapLess: (StepSample, StepSample) -> Bool) {
    goSortSmallExact(&a) { x, y in heapLess(y, x) }
}

/// Go's `sort.Sort` with `less` (which need not be a strict order: Prometheus's value orders put
/// NaN first both ways). Up to 12 elements Go runs an insertion sort, reproduced exactly, ties
/// and NaNs included; beyond, Go's order among equal values is unspecified and a stable sort is
/// used.
func goSortSmallExact<T>(_ a: inout [T], less: (T, T) -> Bool) {
    if a.count < 2 { return }
    if a.count <= 12 {
        for i in 1..<a.count {
            var j = i
            while j > 0 && less(a[j], a[j - 1]) {
                a.swapAt(j, j - 1)
                j -= 1
            }
        }
        return
    }
    let indexed = a.enumerated().map { ($0.offset, $0.element) }
    a = indexed.sorted { x, y in
        if less(x.1, y.1) && !less(y.1, x.1) { return true }
        if less(y.1, x.1) && !less(x.1, y.1) { return false }
        return x.0 < y.0
    }.map(\.1)
}
