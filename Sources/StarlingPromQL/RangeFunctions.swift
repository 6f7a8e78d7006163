import StarlingCore

/// Functions over range vectors (`rate(x[5m])`, `max_over_time(...)`). Each receives the
/// samples of one series inside one step's window `[mint, maxt]` (both ends included, as in
/// Prometheus 2.x; staleness markers removed) and returns a value or nothing. Formulas and
/// floating-point operation order follow Prometheus 2.42's `functions.go`.
struct RangeWindow {
    /// Window bounds, ms, inclusive.
    var mintMs: Int64
    var maxtMs: Int64
    /// The selector's range, ms.
    var rangeMs: Int64
    /// Evaluation time of the step, ms.
    var stepTimeMs: Int64
}

enum RangeFunction {
    case rate, increase, delta, irate, idelta, deriv, predictLinear, holtWinters, resets, changes
    case avgOverTime, countOverTime, lastOverTime, maxOverTime, minOverTime, sumOverTime
    case quantileOverTime, stddevOverTime, stdvarOverTime, presentOverTime, absentOverTime

    init?(_ name: String) {
        switch name {
        case "rate": self = .rate
        case "increase": self = .increase
        case "delta": self = .delta
        case "irate": self = .irate
        case "idelta": self = .idelta
        case "deriv": self = .deriv
        case "predict_linear": self = .predictLinear
        case "holt_winters": self = .holtWinters
        case "resets": self = .resets
        case "changes": self = .changes
        case "avg_over_time": self = .avgOverTime
        case "count_over_time": self = .countOverTime
        case "last_over_time": self = .lastOverTime
        case "max_over_time": self = .maxOverTime
        case "min_over_time": self = .minOverTime
        case "sum_over_time": self = .sumOverTime
        case "quantile_over_time": self = .quantileOverTime
        case "stddev_over_time": self = .stddevOverTime
        case "stdvar_over_time": self = .stdvarOverTime
        case "present_over_time": self = .presentOverTime
        case "absent_over_time": self = .absentOverTime
        default: return nil
        }
    }

    /// Evaluates the function on a non-empty window. `scalars` are the other arguments' values
    /// at this step, in argument order.
    func apply(_ s: ArraySlice<Sample>, _ w: RangeWindow, scalars: [Double]) throws(PromQLError) -> Double? {
        switch self {
        case .rate: return extrapolatedRate(s, w, isCounter: true, isRate: true)
        case .increase: return extrapolatedRate(s, w, isCounter: true, isRate: false)
        case .delta: return extrapolatedRate(s, w, isCounter: false, isRate: false)
        case .irate: return instantValue(s, isRate: true)
        case .idelta: return instantValue(s, isRate: false)
        case .deriv:
            if s.count < 2 { return nil }
            return linearRegression(s, interceptTimeMs: s.first!.timestampMs).slope
        case .predictLinear:
            if s.count < 2 { return nil }
            let r = linearRegression(s, interceptTimeMs: w.stepTimeMs)
            return r.slope * scalars[0] + r.intercept
        case .holtWinters:
            return try holtWintersValue(s, smoothing: scalars[0], trend: scalars[1])
        case .resets:
            var resets = 0
            var prev = s.first!.value
            for x in s.dropFirst() {
                if x.value < prev { resets += 1 }
                prev = x.value
            }
            return Double(resets)
        case .changes:
            var changes = 0
            var prev = s.first!.value
            for x in s.dropFirst() {
                let cur = x.value
                if cur != prev && !(cur.isNaN && prev.isNaN) { changes += 1 }
                prev = cur
            }
            return Double(changes)
        case .avgOverTime:
            var mean = 0.0, count = 0.0, c = 0.0
            for x in s {
                let v = x.value
                count += 1
                if mean.isInfinite {
                    if v.isInfinite && (mean > 0) == (v > 0) { continue }
                    if !v.isInfinite && !v.isNaN { continue }
                }
                (mean, c) = kahanSumInc(v / count - mean / count, mean, c)
            }
            return mean.isInfinite ? mean : mean + c
        case .countOverTime:
            return Double(s.count)
        case .lastOverTime:
            return s.last!.value
        case .maxOverTime:
            var m = s.first!.value
            for x in s where x.value > m || m.isNaN { m = x.value }
            return m
        case .minOverTime:
            var m = s.first!.value
            for x in s where x.value < m || m.isNaN { m = x.value }
            return m
        case .sumOverTime:
            var sum = 0.0, c = 0.0
            for x in s { (sum, c) = kahanSumInc(x.value, sum, c) }
            return sum.isInfinite ? sum : sum + c
        case .quantileOverTime:
            var values = s.map(\.value)
            return quantile(scalars[0], &values)
        case .stddevOverTime:
            return welfordVariance(s).squareRoot()
        case .stdvarOverTime:
            return welfordVariance(s)
        case .presentOverTime, .absentOverTime:
            return 1
        }
    }
}

/// `rate`, `increase`, `delta`: the change over the window, extrapolated towards the window's
/// edges when the first/last samples are close to them (within 1.1 average intervals), never
/// extrapolating a counter below zero.
func extrapolatedRate(_ s: ArraySlice<Sample>, _ w: RangeWindow, isCounter: Bool, isRate: Bool) -> Double? {
    if s.count < 2 { return nil }
    let first = s.first!
    let last = s.last!
    var result = last.value - first.value
    if isCounter {
        var prev = first.value
        for x in s.dropFirst() {
            if x.value < prev { result += prev }
            prev = x.value
        }
    }
    var durationToStart = Double(first.timestampMs - w.mintMs) / 1000
    let durationToEnd = Double(w.maxtMs - last.timestampMs) / 1000
    let sampledInterval = Double(last.timestampMs - first.timestampMs) / 1000
    let averageInterval = sampledInterval / Double(s.count - 1)
    if isCounter && result > 0 && first.value >= 0 {
        let durationToZero = sampledInterval * (first.value / result)
        if durationToZero < durationToStart { durationToStart = durationToZero }
    }
    let threshold = averageInterval * 1.1
    var extrapolateTo = sampledInterval
    extrapolateTo += durationToStart < threshold ? durationToStart : averageInterval / 2
    extrapolateTo += durationToEnd < threshold ? durationToEnd : averageInterval / 2
    var factor = extrapolateTo / sampledInterval
    if isRate { factor /= goDurationSeconds(w.rangeMs) }
    return result * factor
}

/// Go's `time.Duration.Seconds()` for a millisecond duration (whole seconds plus the fraction,
/// computed the way Go does so the last bit matches).
@inline(__always) func goDurationSeconds(_ ms: Int64) -> Double {
    Double(ms / 1000) + Double((ms % 1000) * 1_000_000) / 1e9
}

/// `irate`, `idelta`: from the last two samples.
func instantValue(_ s: ArraySlice<Sample>, isRate: Bool) -> Double? {
    if s.count < 2 { return nil }
    let last = s[s.endIndex - 1]
    let prev = s[s.endIndex - 2]
    var result: Double
    if isRate && last.value < prev.value {
        result = last.value  // counter reset
    } else {
        result = last.value - prev.value
    }
    let interval = last.timestampMs - prev.timestampMs
    if interval == 0 { return nil }
    if isRate { result /= Double(interval) / 1000 }
    return result
}

/// Kahan–Babuška summation step, as Prometheus's `kahanSumInc`.
@inline(__always) func kahanSumInc(_ inc: Double, _ sum: Double, _ c: Double) -> (Double, Double) {
    let t = sum + inc
    var c = c
    if Swift.abs(sum) >= Swift.abs(inc) {
        c += (sum - t) + inc
    } else {
        c += (inc - t) + sum
    }
    return (t, c)
}

/// Population variance by Welford's method with compensated sums (`stdvar_over_time`).
func welfordVariance(_ s: ArraySlice<Sample>) -> Double {
    var count = 0.0, mean = 0.0, cMean = 0.0, aux = 0.0, cAux = 0.0
    for x in s {
        count += 1
        let delta = x.value - (mean + cMean)
        (mean, cMean) = kahanSumInc(delta / count, mean, cMean)
        (aux, cAux) = kahanSumInc(delta * (x.value - (mean + cMean)), aux, cAux)
    }
    return (aux + cAux) / count
}

/// Least-squares line through the samples, x in seconds relative to `interceptTimeMs`.
func linearRegression(_ s: ArraySlice<Sample>, interceptTimeMs: Int64) -> (slope: Double, intercept: Double) {
    var n = 0.0
    var sumX = 0.0, cX = 0.0, sumY = 0.0, cY = 0.0, sumXY = 0.0, cXY = 0.0, sumX2 = 0.0, cX2 = 0.0
    let initY = s.first!.value
    var constY = true
    for (i, x) in s.enumerated() {
        if constY && i > 0 && x.value != initY { constY = false }
        n += 1
        let xv = Double(x.timestampMs - interceptTimeMs) / 1e3
        (sumX, cX) = kahanSumInc(xv, sumX, cX)
        (sumY, cY) = kahanSumInc(x.value, sumY, cY)
        (sumXY, cXY) = kahanSumInc(xv * x.value, sumXY, cXY)
        (sumX2, cX2) = kahanSumInc(xv * xv, sumX2, cX2)
    }
    if constY {
        if initY.isInfinite { return (.nan, .nan) }
        return (0, initY)
    }
    sumX += cX
    sumY += cY
    sumXY += cXY
    sumX2 += cX2
    let covXY = sumXY - sumX * sumY / n
    let varX = sumX2 - sumX * sumX / n
    let slope = covXY / varX
    let intercept = sumY / n - slope * sumX / n
    return (slope, intercept)
}

/// Double exponential smoothing (`holt_winters`).
func holtWintersValue(_ s: ArraySlice<Sample>, smoothing sf: Double, trend tf: Double) throws(PromQLError) -> Double? {
    if sf <= 0 || sf >= 1 {  // NaN passes, as in Prometheus
        throw .execution("invalid smoothing factor. Expected: 0 < sf < 1, got: \(goFormatFixed6(sf))")
    }
    if tf <= 0 || tf >= 1 {
        throw .execution("invalid trend factor. Expected: 0 < tf < 1, got: \(goFormatFixed6(tf))")
    }
    if s.count < 2 { return nil }
    let v = Array(s.map(\.value))
    var s0 = 0.0
    var s1 = v[0]
    var b = v[1] - v[0]
    for i in 1..<v.count {
        let x = sf * v[i]
        if i - 1 != 0 { b = tf * (s1 - s0) + (1 - tf) * b }
        let y = (1 - sf) * (s1 + b)
        (s0, s1) = (s1, x + y)
    }
    return s1
}

/// The φ-quantile of `values` by linear interpolation between closest ranks (NaNs sort first,
/// as in Prometheus). Sorts `values`.
func quantile(_ q: Double, _ values: inout [Double]) -> Double {
    if values.isEmpty || q.isNaN { return .nan }
    if q < 0 { return -.infinity }
    if q > 1 { return .infinity }
    values.sort { a, b in a.isNaN ? !b.isNaN : (!b.isNaN && a < b) }
    let n = Double(values.count)
    let rank = q * (n - 1)
    let lower = Swift.max(0, rank.rounded(.down))
    let upper = Swift.min(n - 1, lower + 1)
    let weight = rank - rank.rounded(.down)
    return values[Int(lower)] * (1 - weight) + values[Int(upper)] * weight
}

/// `max_over_time` / `min_over_time` of a series at every step of a range query. The windows of
/// consecutive steps only move forward, so a monotonic queue of sample indices gives each step's
/// extremum in O(1) amortized, where `RangeFunction.apply` passes over the whole window (a 1 h
/// window at 15 s steps is 240 samples per step). Same answer bit for bit: NaNs are skipped
/// unless the window holds nothing else (then its last NaN), and among equal values (0 and -0)
/// the earliest wins, as in the linear scan.
struct SlidingExtremum {
    let max: Bool
    /// Indices of non-NaN samples, values non-increasing (max) or non-decreasing (min) from
    /// `head` on; entries before `head` have left the window.
    private var queue: [Int] = []
    private var head = 0
    /// First sample index not yet pushed.
    private var next = 0

    init(max: Bool) { self.max = max }

    /// The extremum of `samples[lo..<hi]` (non-empty) in one pass, for a single window (instant
    /// queries): what `value` returns for it, without the queue. NaNs are skipped; with only
    /// NaNs, the last sample's value. Among equal values the earliest wins, as in the queue.
    static func single(_ samples: [Sample], lo: Int, hi: Int, max: Bool) -> Double {
        samples.withUnsafeBufferPointer { s in
            var best = Double.nan
            var found = false
            for i in lo..<hi {
                let v = s[i].value
                if v.isNaN { continue }
                if !found || (max ? v > best : v < best) {
                    best = v
                    found = true
                }
            }
            return found ? best : s[hi - 1].value
        }
    }

    /// The extremum of `samples[lo..<hi]` (non-empty); `lo` and `hi` never decrease between calls.
    mutating func value(_ samples: [Sample], lo: Int, hi: Int) -> Double {
        while next < hi {
            let v = samples[next].value
            if !v.isNaN {
                while queue.count > head {
                    let back = samples[queue[queue.count - 1]].value
                    guard max ? back < v : back > v else { break }
                    queue.removeLast()
                }
                queue.append(next)
            }
            next += 1
        }
        while head < queue.count, queue[head] < lo { head += 1 }
        return head < queue.count ? samples[queue[head]].value : samples[hi - 1].value
    }
}
