import StarlingCore

/// Function calls. Functions with a range-vector argument are evaluated series by series over
/// all steps (the range path); the others step by step over instant vectors.
extension Evaluator {
    func call(_ c: Call) async throws(PromQLError) -> EvalValue {
        let name = c.function.name
        if name == "timestamp", case .vectorSelector(let vs) = c.args[0].unwrapped {
            return .vector(try await timestampOfSelector(vs))
        }
        for (i, a) in c.args.enumerated() {
            switch a.unwrapped {
            case .matrixSelector, .subquery:
                return .vector(try await rangeFunction(c, matrixIndex: i))
            default: continue
            }
        }
        return try await instantFunction(c)
    }

    // MARK: Range path

    private func rangeFunction(_ c: Call, matrixIndex: Int) async throws(PromQLError) -> [StepSeries] {
        var out: [StepSeries] = []
        let st = state
        if let absent = try await rangeFunction(c, matrixIndex: matrixIndex, sink: { s throws(PromQLError) in
            try st.hold(s.presentCount)
            out.append(s)
        }) {
            return absent
        }
        return out
    }

    /// Evaluates a function of a range vector series by series, handing each result series to
    /// `sink` as soon as it is computed. Returns the result of `absent_over_time` (which needs all
    /// series first), nil for the other functions.
    @discardableResult
    func rangeFunction(_ c: Call, matrixIndex: Int, sink: (StepSeries) throws(PromQLError) -> Void) async throws(PromQLError) -> [StepSeries]? {
        guard let fn = RangeFunction(c.function.name) else {
            preconditionFailure("\(c.function.name) takes no range vector")
        }
        // The other (scalar) arguments, one value per step.
        var scalarArgs: [[Double]] = []
        for (i, a) in c.args.enumerated() where i != matrixIndex {
            scalarArgs.append(try await evalScalar(a))
        }
        let keepName = fn == .lastOverTime
        var seen = Set<Labels>()
        var covered = fn == .absentOverTime ? [Bool](repeating: false, count: numSteps) : []
        var scalarsAtStep = [Double](repeating: 0, count: scalarArgs.count)

        func evaluateSeries(_ labels: Labels, _ samples: [Sample], rangeMs: Int64, offsetMs: Int64) throws(PromQLError) {
            if samples.isEmpty { return }
            var values: [Double] = []
            var first = -1
            var present = 0
            var lo = 0, hi = 0
            let n = samples.count
            var held = 0
            defer { state.release(held) }
            var extremum = fn == .maxOverTime || fn == .minOverTime ? SlidingExtremum(max: fn == .maxOverTime) : nil
            for step in 0..<numSteps {
                let t = time(ofStep: step)
                let maxt = t - offsetMs
                let mint = maxt - rangeMs
                while hi < n && samples[hi].timestampMs <= maxt { hi += 1 }
                while lo < hi && samples[lo].timestampMs < mint { lo += 1 }
                var v = absentValue
                if lo < hi {
                    if hi - lo > held {
                        try state.hold(hi - lo - held)
                        held = hi - lo
                    }
                    if extremum != nil {
                        v = numSteps == 1
                            ? SlidingExtremum.single(samples, lo: lo, hi: hi, max: fn == .maxOverTime)
                            : extremum!.value(samples, lo: lo, hi: hi)
                    } else {
                        for k in scalarArgs.indices { scalarsAtStep[k] = scalarArgs[k][step] }
                        let w = RangeWindow(mintMs: mint, maxtMs: maxt, rangeMs: rangeMs, stepTimeMs: t)
                        if let r = try fn.apply(samples[lo..<hi], w, scalars: scalarsAtStep) { v = r }
                    }
                }
                if isPresent(v) {
                    if fn == .absentOverTime { covered[step] = true }
                    if first < 0 { first = step }
                    values.append(v)
                    present += 1
                } else if first >= 0 {
                    values.append(absentValue)
                }
            }
            if first < 0 || fn == .absentOverTime { return }
            while let l = values.last, !isPresent(l) { values.removeLast() }
            let outLabels = keepName ? labels : labels.withoutMetricName
            // Prometheus checks the whole result, not each step, for duplicate label sets.
            if !seen.insert(outLabels).inserted {
                throw .execution("vector cannot contain metrics with the same labelset")
            }
            try sink(StepSeries(labels: outLabels, firstStep: first, values: values))
        }

        var absentLabels = Labels.empty
        switch c.args[matrixIndex].unwrapped {
        case .matrixSelector(let ms):
            let vs = ms.vectorSelector
            absentLabels = labelsForAbsent(vs.matchers)
            let range = selectRange(vs, rangeMs: ms.rangeMs)
            let selection = try await source.select(vs.matchers, hints: hints(range, function: c.function.name), state: state)
            while let labels = try await selection.next(into: &sampleBuffer) {
                try state.checkCanceled()
                // Range windows never contain staleness markers.
                sampleBuffer.removeAll { StaleMarker.isStale($0.value) }
                try evaluateSeries(labels, sampleBuffer, rangeMs: ms.rangeMs, offsetMs: vs.offsetMs)
            }
        case .subquery(let sq):
            let (series, rangeMs, offsetMs) = try await subquery(sq)
            var held = 0
            for s in series { held += s.samples.count }
            defer { state.release(held) }
            try state.hold(held)
            for s in series {
                try state.checkCanceled()
                try evaluateSeries(s.labels, s.samples, rangeMs: rangeMs, offsetMs: offsetMs)
            }
        default:
            preconditionFailure("not a range argument")
        }

        if fn == .absentOverTime {
            if !covered.contains(false) { return [] }
            var values = [Double](repeating: absentValue, count: numSteps)
            var n = 0
            for (i, c) in covered.enumerated() where !c {
                values[i] = 1
                n += 1
            }
            try state.hold(n)
            var first = 0
            while !isPresent(values[first]) { first += 1 }
            while let l = values.last, !isPresent(l) { values.removeLast() }
            return [StepSeries(labels: absentLabels, firstStep: first, values: Array(values[first...]))]
        }
        return nil
    }

    /// `timestamp(selector)`: the timestamps of the selected samples themselves. With `@`, the
    /// lookup happens at the `@` time and the offset is ignored, as in Prometheus 2.42.
    private func timestampOfSelector(_ vs: VectorSelector) async throws(PromQLError) -> [StepSeries] {
        let range = selectRange(vs, rangeMs: nil)
        let selection = try await source.select(vs.matchers, hints: hints(range, function: "timestamp"), state: state)
        var builder = SeriesBuilder()
        while let labels = try await selection.next(into: &sampleBuffer) {
            try state.checkCanceled()
            let slot = builder.slot(for: labels.withoutMetricName)
            var j = 0
            let n = sampleBuffer.count
            for step in 0..<numSteps {
                let ref = vs.timestampMs ?? (time(ofStep: step) - vs.offsetMs)
                while j < n && sampleBuffer[j].timestampMs <= ref { j += 1 }
                guard j > 0 else { continue }
                let s = sampleBuffer[j - 1]
                if s.timestampMs < ref - lookbackMs || StaleMarker.isStale(s.value) { continue }
                try state.hold(1)
                try builder.set(slot, step: step, Double(s.timestampMs) / 1000)
            }
        }
        return builder.finish()
    }

    // MARK: Instant path

    private func instantFunction(_ c: Call) async throws(PromQLError) -> EvalValue {
        let name = c.function.name
        switch name {
        case "time":
            return .scalar((0..<numSteps).map { Double(time(ofStep: $0)) / 1000 })
        case "pi":
            return .scalar([Double](repeating: Double.pi, count: numSteps))
        case "scalar":
            let v = try await evalVector(c.args[0])
            var out = [Double](repeating: 0, count: numSteps)
            for step in 0..<numSteps {
                var count = 0
                var value = Double.nan
                for s in v {
                    let x = s.value(at: step)
                    if isPresent(x) {
                        count += 1
                        value = x
                    }
                }
                out[step] = count == 1 ? value : .nan
            }
            return .scalar(out)
        case "histogram_quantile":
            let q = try await evalScalar(c.args[0])
            return .vector(try histogramQuantile(q: q, try await evalVector(c.args[1])))
        case "vector":
            let s = try await evalScalar(c.args[0])
            try state.hold(numSteps)
            return .vector([StepSeries(labels: .empty, firstStep: 0, values: s)])
        default:
            break
        }

        // Functions of one instant vector (plus scalar or string parameters).
        if c.args.isEmpty {
            // Date functions without an argument use the evaluation time.
            guard let f = dateFunction(name) else { preconditionFailure("unknown function \(name)") }
            let values = (0..<numSteps).map { f(goUnixAbs(seconds: time(ofStep: $0) / 1000)) }
            try state.hold(numSteps)
            return .vector([StepSeries(labels: .empty, firstStep: 0, values: values)])
        }
        let input = try await evalVector(c.args[0])
        var scalars: [[Double]] = []
        for a in c.args.dropFirst() where a.type == .scalar { scalars.append(try await evalScalar(a)) }

        if let f = simpleFunction(name) {
            return .vector(try mapSeries(input, dropName: true) { v, _ in f(v) })
        }
        if let f = dateFunction(name) {
            return .vector(try mapSeries(input, dropName: true) { v, _ in f(goUnixAbs(seconds: goFloatToInt64(v))) })
        }
        switch name {
        case "clamp":
            return .vector(try mapSeries(input, dropName: true) { v, step in
                let lo = scalars[0][step], hi = scalars[1][step]
                if hi < lo { return absentValue }
                return goMax(lo, goMin(hi, v))
            })
        case "clamp_max":
            return .vector(try mapSeries(input, dropName: true) { v, step in goMin(scalars[0][step], v) })
        case "clamp_min":
            return .vector(try mapSeries(input, dropName: true) { v, step in goMax(scalars[0][step], v) })
        case "round":
            return .vector(try mapSeries(input, dropName: true) { v, step in
                let toNearest = scalars.isEmpty ? 1.0 : scalars[0][step]
                let inverse = 1.0 / toNearest
                return (v * inverse + 0.5).rounded(.down) / inverse
            })
        case "timestamp":
            return .vector(try mapSeries(input, dropName: true) { _, step in Double(time(ofStep: step)) / 1000 })
        case "sort", "sort_desc":
            if numSteps != 1 { return .vector(input) }
            return .vector(sortByValue(input, descending: name == "sort_desc"))
        case "absent":
            let labels: Labels
            if case .vectorSelector(let vs) = c.args[0].unwrappingParens { labels = labelsForAbsent(vs.matchers) } else { labels = .empty }
            var values = [Double](repeating: absentValue, count: numSteps)
            var n = 0
            for step in 0..<numSteps where !input.contains(where: { isPresent($0.value(at: step)) }) {
                values[step] = 1
                n += 1
            }
            if n == 0 { return .vector([]) }
            try state.hold(n)
            var first = 0
            while !isPresent(values[first]) { first += 1 }
            while let l = values.last, !isPresent(l) { values.removeLast() }
            return .vector([StepSeries(labels: labels, firstStep: first, values: Array(values[first...]))])
        case "label_replace":
            return .vector(try labelReplace(input, c.args))
        case "label_join":
            return .vector(try labelJoin(input, c.args))
        default:
            preconditionFailure("unhandled function \(name)")
        }
    }

    /// Applies `f` to every present value (absent results are dropped), mapping labels once per
    /// series; two series landing on the same labels at the same step fail the query.
    func mapSeries(_ input: [StepSeries], dropName: Bool, _ f: (Double, Int) throws(PromQLError) -> Double) throws(PromQLError) -> [StepSeries] {
        var builder = SeriesBuilder()
        for s in input {
            let slot = builder.slot(for: dropName ? s.labels.withoutMetricName : s.labels)
            for (k, v) in s.values.enumerated() where isPresent(v) {
                let r = try f(v, s.firstStep + k)
                if isPresent(r) { try builder.set(slot, step: s.firstStep + k, r) }
            }
        }
        return builder.finish()
    }

    /// `sort` ascending / `sort_desc` descending by value, NaN last, as Go's `sort.Sort` orders
    /// them (see `goSortSmallExact`).
    private func sortByValue(_ input: [StepSeries], descending: Bool) -> [StepSeries] {
        var items = input
        // sort: Reverse(vectorByReverseValueHeap), Less(i, j) = s[j] NaN || s[j] > s[i];
        // sort_desc: Reverse(vectorByValueHeap), Less(i, j) = s[j] NaN || s[j] < s[i].
        goSortSmallExact(&items) { a, b in
            let x = a.values[0], y = b.values[0]
            return descending ? (y.isNaN || y < x) : (y.isNaN || y > x)
        }
        return items
    }

    // MARK: label_replace / label_join

    private func stringArg(_ e: Expr) -> String {
        guard case .string(let s) = e.unwrapped else { preconditionFailure("expected a string literal") }
        return s.value
    }

    private func labelReplace(_ input: [StepSeries], _ args: [Expr]) throws(PromQLError) -> [StepSeries] {
        let dst = stringArg(args[1]), repl = stringArg(args[2]), src = stringArg(args[3]), regexText = stringArg(args[4])
        let regex: GoRegex
        do {
            regex = try GoRegex("^(?:" + regexText + ")$")
        } catch {
            throw .execution("invalid regular expression in label_replace(): \(regexText)")
        }
        if !isLabelName(dst) {
            throw .execution("invalid destination label name in label_replace(): \(dst)")
        }
        var builder = SeriesBuilder()
        for s in input {
            let value = s.labels.get(src) ?? ""
            var out = s.labels
            if let groups = regex.match(value) {
                let res = expandTemplate(repl, value: value, groups: groups)
                var b = LabelsBuilder(s.labels)
                b.remove(dst)
                if !res.isEmpty { b.set(dst, res) }
                out = b.build()
            }
            let slot = builder.slot(for: out)
            for (k, v) in s.values.enumerated() where isPresent(v) { try builder.set(slot, step: s.firstStep + k, v) }
        }
        return builder.finish()
    }

    private func labelJoin(_ input: [StepSeries], _ args: [Expr]) throws(PromQLError) -> [StepSeries] {
        let dst = stringArg(args[1]), sep = stringArg(args[2])
        var srcs: [String] = []
        for a in args.dropFirst(3) {
            let src = stringArg(a)
            if !isLabelName(src) { throw .execution("invalid source label name in label_join(): \(src)") }
            srcs.append(src)
        }
        if !isLabelName(dst) { throw .execution("invalid destination label name in label_join(): \(dst)") }
        var builder = SeriesBuilder()
        for s in input {
            let joined = srcs.map { s.labels.get($0) ?? "" }.joined(separator: sep)
            var b = LabelsBuilder(s.labels)
            if joined.isEmpty { b.remove(dst) } else { b.set(dst, joined) }
            let slot = builder.slot(for: b.build())
            for (k, v) in s.values.enumerated() where isPresent(v) { try builder.set(slot, step: s.firstStep + k, v) }
        }
        return builder.finish()
    }

    // MARK: histogram_quantile

    static let leLabel = LabelNameSet(["le"])

    /// Quantiles from classic histogram buckets: series are grouped by their labels without `le`,
    /// each group's buckets interpolated as Prometheus's `bucketQuantile` does.
    private func histogramQuantile(q: [Double], _ input: [StepSeries]) throws(PromQLError) -> [StepSeries] {
        struct Member {
            var series: Int
            var upperBound: Double
            var group: Int
        }
        var groupIndex: [Labels: Int] = [:]
        var groupLabels: [Labels] = []
        var members: [Member] = []
        for (i, s) in input.enumerated() {
            guard let le = s.labels.get("le"), case .success(let ub) = parseGoFloat(le) else { continue }
            let key = s.labels.removing(Self.leLabel)
            let g: Int
            if let x = groupIndex[key] {
                g = x
            } else {
                g = groupLabels.count
                groupIndex[key] = g
                groupLabels.append(key.withoutMetricName)
            }
            members.append(Member(series: i, upperBound: ub, group: g))
        }
        var builder = SeriesBuilder()
        var buckets = [[Bucket]](repeating: [], count: groupLabels.count)
        var order: [Int] = []
        for step in 0..<numSteps {
            order.removeAll(keepingCapacity: true)
            for m in members {
                let v = input[m.series].value(at: step)
                guard isPresent(v) else { continue }
                if buckets[m.group].isEmpty { order.append(m.group) }
                buckets[m.group].append(Bucket(upperBound: m.upperBound, count: v))
            }
            for g in order {
                try state.hold(1)
                try builder.add(groupLabels[g], step: step, bucketQuantile(q[step], &buckets[g]))
                buckets[g].removeAll(keepingCapacity: true)
            }
        }
        return builder.finish()
    }
}
