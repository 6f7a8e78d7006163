import StarlingCore

/// Bit pattern marking "no value at this step" in step-aligned value arrays: a signalling NaN.
/// Arithmetic never produces a signalling NaN (IEEE 754 quiets them), and values read from
/// storage with this exact pattern are turned into an ordinary NaN on the way in
/// (`canonicalStorageValue`), so the marker cannot collide with a real value.
let absentBits: UInt64 = 0x7FF0_0000_0000_0A5E
let absentValue = Double(bitPattern: absentBits)

@inline(__always) func isPresent(_ v: Double) -> Bool { v.bitPattern != absentBits }

@inline(__always) func canonicalStorageValue(_ v: Double) -> Double {
    v.bitPattern == absentBits ? .nan : v
}

/// One series of an instant-vector expression evaluated at every step of an evaluation: values
/// for steps `firstStep ..< firstStep + values.count`, `absentValue` where the series has no
/// value. Only the span between the first and last present step is stored, so short-lived
/// series in long ranges cost what they hold.
struct StepSeries {
    var labels: Labels
    var firstStep: Int
    var values: [Double]

    init(labels: Labels, firstStep: Int, values: [Double]) {
        self.labels = labels
        self.firstStep = firstStep
        self.values = values
    }

    @inline(__always) func value(at step: Int) -> Double {
        let i = step - firstStep
        return i >= 0 && i < values.count ? values[i] : absentValue
    }

    var endStep: Int { firstStep + values.count }

    /// The present values as samples, step `k` at `time(k)`.
    func samples(time: (Int) -> Int64) -> [Sample] {
        var pts: [Sample] = []
        pts.reserveCapacity(values.count)
        for (k, v) in values.enumerated() where isPresent(v) {
            pts.append(Sample(time(firstStep + k), v))
        }
        return pts
    }

    var presentCount: Int {
        var n = 0
        for v in values where isPresent(v) { n += 1 }
        return n
    }
}

/// Samples of one series decoded for a range function or a range-vector result.
struct RawSeries {
    var labels: Labels
    var samples: [Sample]
}

/// The value of an expression over the steps of one evaluation.
enum EvalValue {
    case vector([StepSeries])
    /// One value per step.
    case scalar([Double])
    case string(String)
    /// Raw samples: the result of a range selector or subquery evaluated at one instant.
    case matrix([RawSeries])
}

/// Collects output samples into series keyed by label set, detecting two samples with the same
/// labels at the same step — Prometheus's "vector cannot contain metrics with the same labelset".
struct SeriesBuilder {
    private(set) var series: [StepSeries] = []
    private var index: [Labels: Int] = [:]

    init() {}

    /// The output slot for `labels`, created on first use (first-use order is output order).
    mutating func slot(for labels: Labels) -> Int {
        if let i = index[labels] { return i }
        let i = series.count
        series.append(StepSeries(labels: labels, firstStep: 0, values: []))
        index[labels] = i
        return i
    }

    /// Sets the value of slot `i` at `step`.
    mutating func set(_ i: Int, step: Int, _ v: Double) throws(PromQLError) {
        try Self.put(&series[i], step: step, v)  // in place: the values array stays uniquely referenced
    }

    private static func put(_ s: inout StepSeries, step: Int, _ v: Double) throws(PromQLError) {
        if s.values.isEmpty {
            s.firstStep = step
            s.values.append(v)
            return
        }
        if step >= s.endStep {
            if step > s.endStep { s.values.append(contentsOf: repeatElement(absentValue, count: step - s.endStep)) }
            s.values.append(v)
            return
        }
        if step < s.firstStep {
            var grown = [Double](repeating: absentValue, count: s.firstStep - step)
            grown[0] = v
            grown.append(contentsOf: s.values)
            s.values = grown
            s.firstStep = step
            return
        }
        let k = step - s.firstStep
        if isPresent(s.values[k]) {
            throw .execution("vector cannot contain metrics with the same labelset")
        }
        s.values[k] = v
    }

    mutating func add(_ labels: Labels, step: Int, _ v: Double) throws(PromQLError) {
        try set(slot(for: labels), step: step, v)
    }

    /// The built series, dropping slots that never received a value.
    func finish() -> [StepSeries] { series.filter { !$0.values.isEmpty } }
}

/// A sample at one step, as per-step operators see it: the index of its input series and value.
struct StepSample {
    var series: Int
    var value: Double
}
