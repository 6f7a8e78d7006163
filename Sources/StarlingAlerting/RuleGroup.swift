import StarlingCore

/// The health of one rule, as `GET /api/v1/rules` reports it.
public struct RuleHealth: Sendable, Equatable {
    public enum Status: String, Sendable { case unknown, ok, err }
    public var status: Status = .unknown
    public var lastError: String?
    public var lastEvaluationMs: Int64?
    public var evaluationSeconds: Double = 0

    public init() {}
}

/// One rule group's state across evaluations: its alerting rules' alerts, every rule's health.
/// Evaluation runs the rules in file order at one timestamp, as Prometheus does: each rule's
/// expression is queried (`query`), recording results and the `ALERTS` / `ALERTS_FOR_STATE`
/// series are written (`write`) before the next rule runs, so later rules see earlier results.
public struct RuleGroupState: Sendable {
    public let spec: RuleGroupSpec
    public private(set) var alerting: [Int: AlertingRuleState] = [:]
    public private(set) var health: [RuleHealth]
    public private(set) var lastEvaluationMs: Int64?
    public private(set) var lastEvaluationSeconds: Double = 0
    /// Series a recording rule wrote at the previous evaluation: those missing now get stale
    /// markers.
    private var lastRecorded: [Int: Set<Labels>] = [:]

    public init(spec: RuleGroupSpec) {
        self.spec = spec
        health = Array(repeating: RuleHealth(), count: spec.rules.count)
        for (i, r) in spec.rules.enumerated() {
            if case .alerting(let a) = r { alerting[i] = AlertingRuleState(spec: a) }
        }
    }

    /// Carries alert state from `old` when a group is reloaded: rules with the same name and
    /// expression keep their alerts.
    public mutating func inherit(from old: RuleGroupState) {
        for (i, r) in spec.rules.enumerated() {
            guard case .alerting(let a) = r else { continue }
            if let j = old.spec.rules.firstIndex(where: { if case .alerting(let b) = $0 { return b.name == a.name && b.expr == a.expr } else { return false } }),
               var prev = old.alerting[j] {
                prev = AlertingRuleState(inheriting: prev, spec: a)
                alerting[i] = prev
            }
        }
        lastRecorded = old.lastRecorded
        lastEvaluationMs = old.lastEvaluationMs
    }

    /// Restores `for` state of every alerting rule from `ALERTS_FOR_STATE` values (a new
    /// evaluator after a failover or restart).
    public mutating func restore(_ byRule: (AlertingRuleSpec) -> [(labels: Labels, activeAtMs: Int64)], nowMs: Int64) {
        for (i, var st) in alerting {
            st.restore(byRule(st.spec), nowMs: nowMs)
            alerting[i] = st
        }
    }

    /// Evaluates every rule at `nowMs`.
    ///
    /// Output is written in as few batches as the rules allow: one write per group, except
    /// that what is pending is written before a rule whose expression may read it (it names a
    /// pending metric, or selects by `__name__`), so later rules still see earlier results as
    /// in Prometheus. A failed write marks every rule whose output it carried as failed.
    /// - Returns: the alerts to hand to the notifier.
    public mutating func evaluate(
        nowMs: Int64, intervalMs: Int64, externalLabels: [String: String] = [:], externalURL: String = "",
        monotonicSeconds: @Sendable () -> Double = { 0 },
        query: @Sendable (String, Int64) async throws -> [(Labels, Double)],
        write: @Sendable ([SeriesSamples]) async throws -> Void
    ) async -> [RuleAlert] {
        let groupStart = monotonicSeconds()
        var toSend: [RuleAlert] = []
        var pending: [SeriesSamples] = []
        var pendingNames = Set<String>()
        var pendingRules: [(index: Int, current: Set<Labels>)] = []

        func flush() async {
            defer {
                pending = []
                pendingNames = []
                pendingRules = []
            }
            do {
                if !pending.isEmpty { try await write(pending) }
                for r in pendingRules { lastRecorded[r.index] = r.current }
            } catch {
                for r in pendingRules {
                    health[r.index].status = .err
                    health[r.index].lastError = "\(error)"
                }
            }
        }

        for (i, rule) in spec.rules.enumerated() {
            if !pendingNames.isEmpty, Self.mayReadAnyMetric(rule.expr) || pendingNames.contains(where: { rule.expr.contains($0) }) {
                await flush()
            }
            let start = monotonicSeconds()
            var h = RuleHealth()
            h.lastEvaluationMs = nowMs
            do {
                let result = try await query(rule.expr, nowMs)
                var series: [SeriesSamples]
                var ruleError: String?
                switch rule {
                case .recording(let r):
                    (series, ruleError) = RecordingEvaluation.evaluate(r, result, nowMs: nowMs, limit: spec.limit)
                case .alerting:
                    var st = alerting[i]!
                    let eval = st.evaluate(result, nowMs: nowMs, intervalMs: intervalMs, limit: spec.limit,
                                           externalLabels: externalLabels, externalURL: externalURL)
                    alerting[i] = st
                    series = eval.series
                    ruleError = eval.error
                    toSend += eval.toSend
                }
                // Series this rule wrote last time and not now end with a stale marker (as
                // Prometheus does), so they disappear from queries at once.
                let current = Set(series.map(\.labels))
                for gone in (lastRecorded[i] ?? []).subtracting(current).sorted() {
                    series.append(SeriesSamples(labels: gone, samples: [Sample(nowMs, StaleMarker.value)]))
                }
                for s in series { if let name = s.labels.metricName { pendingNames.insert(name) } }
                if series.isEmpty {
                    lastRecorded[i] = current
                } else {
                    pending += series
                    pendingRules.append((i, current))
                }
                if let ruleError { throw RuleEvaluationError(message: ruleError) }
                h.status = .ok
            } catch {
                h.status = .err
                h.lastError = "\(error)"
            }
            h.evaluationSeconds = monotonicSeconds() - start
            health[i] = h
        }
        await flush()
        lastEvaluationMs = nowMs
        lastEvaluationSeconds = monotonicSeconds() - groupStart
        return toSend
    }

    /// Whether `expr` may select series whatever their name: it matches on `__name__`, or has a
    /// selector without a metric name (`{alertstate="firing"}`: a `{` not right after a name).
    /// Conservative: a brace inside a string also counts.
    static func mayReadAnyMetric(_ expr: String) -> Bool {
        if expr.contains("__name__") { return true }
        var previous: Character?
        for c in expr {
            if c == "{", !(previous.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" } ?? false) { return true }
            if !c.isWhitespace { previous = c }
        }
        return false
    }

    /// Every alert of the group's alerting rules that is pending or firing.
    public var activeAlerts: [RuleAlert] {
        alerting.keys.sorted().flatMap { alerting[$0]!.active }
    }
}

public struct RuleEvaluationError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

extension AlertingRuleState {
    /// A state for an updated spec of the same rule, keeping its alerts.
    init(inheriting old: AlertingRuleState, spec: AlertingRuleSpec) {
        self.init(spec: spec)
        for a in old.alerts.values { restoreAlert(a) }
    }
}
