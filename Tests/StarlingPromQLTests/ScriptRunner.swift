import Foundation
import StarlingCore
import StarlingPromQL
import StarlingTestKit

/// Runs test scripts in the format of Prometheus's `promqltest` (`load`, `clear`,
/// `eval[_fail|_ordered] instant at <time> <expr>` followed by expected samples), plus two
/// extensions: `eval[_fail] range from <t> to <t> step <d> <expr>` with one expected value per
/// step (`_` for none), and an `expected_fail_message <text>` line after `eval_fail`.
///
/// Like Prometheus's runner, each instant `eval` is checked three ways: as written; with every
/// selector pinned by `@ <time>` and evaluated at other times (when the expression has no
/// time-dependent function); and as a range query around the time, whose point at the time must
/// equal the instant result.
struct ScriptRunner {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    enum Expected {
        case scalar(Double)
        case series([(Labels, [PromQLParser.SequenceValue])])
    }

    enum Command {
        case clear
        case load(stepMs: Int64, series: [(Labels, [PromQLParser.SequenceValue])])
        case evalInstant(line: Int, expr: String, timeMs: Int64, fail: Bool, ordered: Bool, failMessage: String?, expected: Expected)
        case evalRange(line: Int, expr: String, startMs: Int64, endMs: Int64, stepMs: Int64, fail: Bool, failMessage: String?, expected: [(Labels, [PromQLParser.SequenceValue])])
    }

    let name: String
    var commands: [Command] = []
    var settings: EngineSettings

    init(name: String, text: String) throws {
        self.name = name
        var s = EngineSettings()
        s.maxSamples = 10_000  // as Prometheus's test engine
        settings = s
        try parse(text)
    }

    private static func durationMs(_ s: String, line: Int) throws -> Int64 {
        var text = s
        var negative = false
        if text.hasPrefix("-") {
            negative = true
            text.removeFirst()
        }
        switch parsePromDuration(text) {
        case .success(let ms): return negative ? -ms : ms
        case .failure(let e): throw Failure(description: "line \(line): invalid duration \(s): \(e)")
        }
    }

    private mutating func parse(_ text: String) throws {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { raw -> String in
            let t = raw.trimmingCharacters(in: .whitespaces)
            return t.hasPrefix("#") ? "" : t
        }
        var i = 0
        func err(_ msg: String) -> Failure { Failure(description: "\(name):\(i + 1): \(msg)") }
        func block(from start: Int) -> (ArraySlice<String>, Int) {
            var j = start
            while j < lines.count && !lines[j].isEmpty { j += 1 }
            return (lines[start..<j], j)
        }
        func seriesLines(_ ls: ArraySlice<String>, base: Int) throws -> [(Labels, [PromQLParser.SequenceValue])] {
            var out: [(Labels, [PromQLParser.SequenceValue])] = []
            for (k, l) in ls.enumerated() {
                do {
                    out.append(try PromQLParser.parseSeriesDescription(l))
                } catch {
                    throw Failure(description: "\(name):\(base + k + 1): \(error.description)")
                }
            }
            return out
        }
        while i < lines.count {
            let line = lines[i]
            if line.isEmpty {
                i += 1
                continue
            }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            let cmd = words[0].lowercased()
            if cmd == "clear" {
                commands.append(.clear)
                i += 1
            } else if cmd == "load" {
                guard words.count == 2 else { throw err("invalid load command. (load <step:duration>)") }
                let step = try Self.durationMs(words[1], line: i + 1)
                let (ls, next) = block(from: i + 1)
                // A series defined twice in one load keeps its last definition, as in promqltest.
                var series: [(Labels, [PromQLParser.SequenceValue])] = []
                var index: [Labels: Int] = [:]
                for (l, v) in try seriesLines(ls, base: i + 1) {
                    if let k = index[l] {
                        series[k] = (l, v)
                    } else {
                        index[l] = series.count
                        series.append((l, v))
                    }
                }
                commands.append(.load(stepMs: step, series: series))
                i = next
            } else if cmd.hasPrefix("eval") {
                let fail = cmd == "eval_fail"
                let ordered = cmd == "eval_ordered"
                guard cmd == "eval" || fail || ordered else { throw err("invalid command \(cmd)") }
                var (ls, next) = block(from: i + 1)
                var failMessage: String? = nil
                if let f = ls.first, f.hasPrefix("expected_fail_message") {
                    failMessage = String(f.dropFirst("expected_fail_message".count)).trimmingCharacters(in: .whitespaces)
                    ls = ls.dropFirst()
                }
                if words.count >= 4 && words[1] == "instant" && words[2] == "at" {
                    let t = try Self.durationMs(words[3], line: i + 1)
                    let expr = try Self.rest(of: line, afterWords: 4)
                    var expected = Expected.series([])
                    if let first = ls.first, ls.count == 1, let v = Self.parseNumber(first) {
                        expected = .scalar(v)
                    } else {
                        let series = try seriesLines(ls, base: i + 1)
                        for s in series where s.1.count != 1 { throw err("expecting multiple values in instant evaluation not allowed") }
                        expected = .series(series)
                    }
                    commands.append(.evalInstant(line: i + 1, expr: expr, timeMs: t, fail: fail, ordered: ordered, failMessage: failMessage, expected: expected))
                } else if words.count >= 8 && words[1] == "range" && words[2] == "from" && words[4] == "to" && words[6] == "step" {
                    let start = try Self.durationMs(words[3], line: i + 1)
                    let end = try Self.durationMs(words[5], line: i + 1)
                    let step = try Self.durationMs(words[7], line: i + 1)
                    let expr = try Self.rest(of: line, afterWords: 8)
                    commands.append(.evalRange(line: i + 1, expr: expr, startMs: start, endMs: end, stepMs: step, fail: fail, failMessage: failMessage, expected: try seriesLines(ls, base: i + 1)))
                } else {
                    throw err("invalid evaluation command. (eval[_fail|_ordered] instant [at <offset:duration>] <query> | eval[_fail] range from <t> to <t> step <d> <query>)")
                }
                i = next
            } else {
                throw err("invalid command \(line)")
            }
        }
    }

    /// The text of `line` after its first `n` whitespace-separated words.
    private static func rest(of line: String, afterWords n: Int) throws -> String {
        var idx = line.startIndex
        for _ in 0..<n {
            while idx < line.endIndex, line[idx] == " " || line[idx] == "\t" { idx = line.index(after: idx) }
            while idx < line.endIndex, line[idx] != " " && line[idx] != "\t" { idx = line.index(after: idx) }
        }
        let r = line[idx...].trimmingCharacters(in: .whitespaces)
        if r.isEmpty { throw Failure(description: "missing expression in: \(line)") }
        return r
    }

    /// A bare number line (the expected value of a scalar result).
    private static func parseNumber(_ s: String) -> Double? {
        if s.contains("{") || s.contains(" ") { return nil }
        if s.hasPrefix("-") || s.hasPrefix("+") {
            guard let v = parseNumber(String(s.dropFirst())) else { return nil }
            return s.hasPrefix("-") ? -v : v
        }
        guard case .number(let n) = try? PromQLParser.parseExpr(s) else { return nil }
        return n.value
    }

    // MARK: Running

    func run() async throws {
        let querier = MemoryQuerier(samplesPerChunk: 7)
        let engine = Engine(settings: settings)
        for c in commands {
            switch c {
            case .clear:
                querier.clear()
            case .load(let step, let series):
                for (labels, values) in series {
                    var samples: [Sample] = []
                    for (k, v) in values.enumerated() {
                        if case .value(let x) = v { samples.append(Sample(Int64(k) * step, x)) }
                    }
                    querier.add(labels, samples)
                }
            case .evalInstant(let line, let expr, let t, let fail, let ordered, let failMessage, let expected):
                let cases: [(String, Int64)] = [(expr, t)] + (try Self.atModifierCases(expr, t))
                for (e, at) in cases {
                    let where_ = "\(name):\(line): \(e) at \(at)"
                    let result: QueryResult<PromValue>
                    do {
                        result = try await engine.instantQuery(e, timeMs: at, querier: querier)
                    } catch {
                        if fail {
                            if let m = failMessage, !error.description.contains(m) {
                                throw Failure(description: "\(where_): expected error containing \(m), got \(error.description)")
                            }
                            continue
                        }
                        throw Failure(description: "\(where_): \(error.description)")
                    }
                    if fail { throw Failure(description: "\(where_): expected an error, got \(result.value)") }
                    try Self.compare(result.value, expected, ordered: ordered, where_)
                    // The same query as a range query: its point at `at` must be the same.
                    let range: QueryResult<PromValue>
                    do {
                        range = try await engine.rangeQuery(e, startMs: at - 60_000, endMs: at + 60_000, stepMs: 60_000, querier: querier)
                    } catch {
                        throw Failure(description: "\(where_) in range mode: \(error.description)")
                    }
                    if ordered { continue }
                    guard case .matrix(let m) = range.value else { throw Failure(description: "\(where_): range query did not return a matrix") }
                    var points: [InstantSample] = []
                    for s in m {
                        if let p = s.samples.first(where: { $0.timestampMs == at }) {
                            points.append(InstantSample(labels: s.labels, timestampMs: at, value: p.value))
                        }
                    }
                    if case .scalar = result.value {
                        guard let p = points.first else { throw Failure(description: "\(where_) in range mode: no scalar point") }
                        try Self.compare(.scalar(timestampMs: at, value: p.value), expected, ordered: false, where_ + " (range mode)")
                    } else {
                        try Self.compare(.vector(points), expected, ordered: false, where_ + " (range mode)")
                    }
                }
            case .evalRange(let line, let expr, let start, let end, let step, let fail, let failMessage, let expected):
                let where_ = "\(name):\(line): \(expr)"
                let result: QueryResult<PromValue>
                do {
                    result = try await engine.rangeQuery(expr, startMs: start, endMs: end, stepMs: step, querier: querier)
                } catch {
                    if fail {
                        if let m = failMessage, !error.description.contains(m) {
                            throw Failure(description: "\(where_): expected error containing \(m), got \(error.description)")
                        }
                        continue
                    }
                    throw Failure(description: "\(where_): \(error.description)")
                }
                if fail { throw Failure(description: "\(where_): expected an error") }
                guard case .matrix(let m) = result.value else { throw Failure(description: "\(where_): not a matrix") }
                try Self.compareRange(m, expected, startMs: start, stepMs: step, where_)
            }
        }
    }

    static func almostEqual(_ a: Double, _ b: Double) -> Bool {
        if a.isNaN && b.isNaN { return true }
        if a == b { return true }
        let minNormal = 2.2250738585072014e-308
        let epsilon = 0.000001
        let diff = Swift.abs(a - b)
        if a == 0 || b == 0 || diff < minNormal { return diff < epsilon * minNormal }
        return diff / (Swift.abs(a) + Swift.abs(b)) < epsilon
    }

    private static func compare(_ v: PromValue, _ expected: Expected, ordered: Bool, _ where_: String) throws {
        switch (v, expected) {
        case (.scalar(_, let x), .scalar(let e)):
            if !almostEqual(x, e) { throw Failure(description: "\(where_): expected scalar \(e), got \(x)") }
        case (.vector(let samples), .series(let exp)):
            var byLabels: [Labels: (Int, Double)] = [:]
            for (i, e) in exp.enumerated() {
                guard case .value(let x) = e.1[0] else { throw Failure(description: "\(where_): expected value omitted") }
                byLabels[e.0] = (i, x)
            }
            var seen = Set<Labels>()
            for (pos, s) in samples.enumerated() {
                guard let (i, x) = byLabels[s.labels] else {
                    throw Failure(description: "\(where_): unexpected metric \(s.labels) in result \(describe(samples))")
                }
                if ordered && i != pos {
                    throw Failure(description: "\(where_): expected metric \(s.labels) at position \(i + 1) but was at \(pos + 1)")
                }
                if !almostEqual(x, s.value) {
                    throw Failure(description: "\(where_): expected \(x) for \(s.labels) but got \(s.value)")
                }
                if !seen.insert(s.labels).inserted { throw Failure(description: "\(where_): duplicate \(s.labels)") }
            }
            for e in exp where !seen.contains(e.0) {
                throw Failure(description: "\(where_): expected metric \(e.0) not found in \(describe(samples))")
            }
        case (.matrix, _):
            throw Failure(description: "\(where_): received range result on instant evaluation")
        default:
            throw Failure(description: "\(where_): result \(v) does not match expected \(expected)")
        }
    }

    private static func describe(_ s: [InstantSample]) -> String {
        "[" + s.map { "\($0.labels) \($0.value)" }.joined(separator: ", ") + "]"
    }

    private static func compareRange(_ m: [SeriesPoints], _ expected: [(Labels, [PromQLParser.SequenceValue])], startMs: Int64, stepMs: Int64, _ where_: String) throws {
        var exp: [Labels: [PromQLParser.SequenceValue]] = [:]
        for e in expected { exp[e.0] = e.1 }
        for s in m {
            guard let values = exp[s.labels] else {
                throw Failure(description: "\(where_): unexpected series \(s.labels) \(s.samples)")
            }
            var byStep: [Int: Double] = [:]
            for p in s.samples { byStep[Int((p.timestampMs - startMs) / stepMs)] = p.value }
            for (k, v) in values.enumerated() {
                switch v {
                case .omitted:
                    if let got = byStep[k] { throw Failure(description: "\(where_): \(s.labels) step \(k): expected no value, got \(got)") }
                case .value(let x):
                    guard let got = byStep[k] else { throw Failure(description: "\(where_): \(s.labels) step \(k): expected \(x), got none") }
                    if !almostEqual(x, got) { throw Failure(description: "\(where_): \(s.labels) step \(k): expected \(x), got \(got)") }
                }
            }
            if let extra = byStep.keys.first(where: { $0 >= values.count }) {
                throw Failure(description: "\(where_): \(s.labels) has an unexpected point at step \(extra)")
            }
            exp[s.labels] = nil
        }
        if let missing = exp.keys.first { throw Failure(description: "\(where_): expected series \(missing) not found") }
    }

    // MARK: Export for checking the scripts against a real Prometheus

    /// The script as JSON: segments between `clear`s, each a list of steps in script order —
    /// loads (series with samples as value bit patterns) and evaluations with their expectations.
    /// `scripts/promql-compare.py --check-scripts` replays them on Prometheus, so the scripts are
    /// known to encode Prometheus's semantics rather than Starling's.
    func exportJSON() -> [String: Any] {
        var segments: [[[String: Any]]] = []
        var steps: [[String: Any]] = []
        func labelsJSON(_ l: Labels) -> [String: String] {
            Dictionary(uniqueKeysWithValues: l.array.map { ($0.name, $0.value) })
        }
        func expectedJSON(_ e: [(Labels, [PromQLParser.SequenceValue])]) -> [[String: Any]] {
            e.map { (l, vs) in
                ["labels": labelsJSON(l),
                 "values": vs.map { v -> Any in
                     if case .value(let x) = v { return goFormatFloat(x) }
                     return NSNull()
                 }]
            }
        }
        for c in commands {
            switch c {
            case .clear:
                if !steps.isEmpty { segments.append(steps) }
                steps = []
            case .load(let step, let ss):
                let series: [[String: Any]] = ss.map { (l, values) in
                    var ts: [Int64] = []
                    var vs: [String] = []
                    for (k, v) in values.enumerated() {
                        if case .value(let x) = v {
                            ts.append(Int64(k) * step)
                            vs.append(String(x.bitPattern, radix: 16))
                        }
                    }
                    return ["labels": labelsJSON(l), "t": ts, "v": vs]
                }
                steps.append(["load": series])
            case .evalInstant(let line, let expr, let t, let fail, let ordered, let msg, let expected):
                var o: [String: Any] = ["line": line, "expr": expr, "kind": "instant", "time": t, "fail": fail, "ordered": ordered]
                if let m = msg { o["failMessage"] = m }
                switch expected {
                case .scalar(let x): o["scalar"] = goFormatFloat(x)
                case .series(let e): o["expected"] = expectedJSON(e)
                }
                steps.append(["eval": o])
            case .evalRange(let line, let expr, let start, let end, let step, let fail, let msg, let expected):
                var o: [String: Any] = ["line": line, "expr": expr, "kind": "range", "start": start, "end": end, "step": step, "fail": fail,
                                        "expected": expectedJSON(expected)]
                if let m = msg { o["failMessage"] = m }
                steps.append(["eval": o])
            }
        }
        if !steps.isEmpty { segments.append(steps) }
        return ["file": name, "segments": segments]
    }

    // MARK: @ modifier variants (Prometheus's atModifierTestCases)

    static let timeDependentFunctions: Set<String> = [
        "days_in_month", "day_of_month", "day_of_week", "day_of_year", "hour", "minute", "month", "year",
        "predict_linear", "time", "timestamp",
    ]

    static func atModifierCases(_ text: String, _ t: Int64) throws -> [(String, Int64)] {
        guard let expr = try? PromQLParser.parseExpr(text) else { return [] }
        var timeDependent = false
        func pin(_ e: Expr, underAt: Bool) -> Expr {
            switch e {
            case .vectorSelector(var v):
                if !underAt && v.timestampMs == nil && v.startOrEnd == nil { v.timestampMs = t }
                return .vectorSelector(v)
            case .matrixSelector(var m):
                if !underAt && m.vectorSelector.timestampMs == nil && m.vectorSelector.startOrEnd == nil { m.vectorSelector.timestampMs = t }
                return .matrixSelector(m)
            case .subquery(var s):
                let had = s.timestampMs != nil || s.startOrEnd != nil
                if !underAt && !had { s.timestampMs = t }
                s.expr = pin(s.expr, underAt: true)
                return .subquery(s)
            case .aggregate(var a):
                a.expr = pin(a.expr, underAt: underAt)
                if let p = a.param { a.param = pin(p, underAt: underAt) }
                return .aggregate(a)
            case .binary(var b):
                b.lhs = pin(b.lhs, underAt: underAt)
                b.rhs = pin(b.rhs, underAt: underAt)
                return .binary(b)
            case .call(var c):
                if !underAt && timeDependentFunctions.contains(c.function.name) { timeDependent = true }
                c.args = c.args.map { pin($0, underAt: underAt) }
                return .call(c)
            case .paren(var p):
                p.expr = pin(p.expr, underAt: underAt)
                return .paren(p)
            case .unary(var u):
                u.expr = pin(u.expr, underAt: underAt)
                return .unary(u)
            case .stepInvariant(var s):
                s.expr = pin(s.expr, underAt: underAt)
                return .stepInvariant(s)
            case .number, .string:
                return e
            }
        }
        let pinned = pin(expr, underAt: false)
        if timeDependent { return [] }
        let text = pinned.description
        let times: [Int64] = t == 0 ? [-1000, 0, 1000] : [-10 * t, 0, t / 5, t, 10 * t]
        return times.map { (text, $0) }
    }
}
