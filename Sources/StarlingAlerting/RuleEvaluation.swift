import StarlingCore

/// The state of one alert instance of an alerting rule (Prometheus's `rules.Alert`).
public struct RuleAlert: Sendable, Equatable {
    public enum State: String, Sendable, Equatable {
        case inactive, pending, firing
    }

    /// Rule labels applied: the expression's labels without `__name__`, the rule's (templated)
    /// labels, and `alertname`.
    public var labels: Labels
    public var annotations: Labels
    public var state: State
    /// The value of the expression at the last evaluation that returned this alert.
    public var value: Double
    /// When the condition started to hold (pending since), ms.
    public var activeAtMs: Int64
    public var firedAtMs: Int64?
    public var resolvedAtMs: Int64?
    /// Last time this alert was handed to the notifier, ms.
    public var lastSentAtMs: Int64?
    /// While `keep_firing_for` holds a firing alert whose condition stopped: since when.
    public var keepFiringSinceMs: Int64?
    /// The notifier considers the alert resolved after this unless sent again.
    public var validUntilMs: Int64

    public var fingerprint: UInt64 { labels.stableHash }
}

/// What one evaluation of an alerting rule produced.
public struct AlertingEvaluation: Sendable {
    /// `ALERTS{…, alertstate}` = 1 and `ALERTS_FOR_STATE{…}` = active-since seconds, for every
    /// pending or firing alert, at the evaluation time.
    public var series: [SeriesSamples] = []
    /// Alerts that stopped being active at this evaluation: their `ALERTS` series get stale
    /// markers (as Prometheus writes), so the series end at once rather than after the lookback.
    public var stale: [Labels] = []
    /// Alerts to hand to the notifier now (firing, and resolved ones until 15 min after).
    public var toSend: [RuleAlert] = []
    /// Errors that made the evaluation fail (a template error is not one: it becomes the value,
    /// as in Prometheus).
    public var error: String?
}

/// An alerting rule's alerts across evaluations: Prometheus's `AlertingRule.Eval` and
/// `sendAlerts` semantics, as a value fed the expression's result and the evaluation time.
///
/// - A sample whose labels (after the rule's labels are applied) are new starts a `pending`
///   alert with `activeAt` = now; one whose condition held for `for` becomes `firing`.
/// - An alert the result no longer contains is dropped if pending; if firing it stays firing for
///   `keep_firing_for` (measured from the first evaluation without it), then becomes `inactive`
///   with `resolvedAt` = now, is sent as resolved for 15 min, then forgotten.
/// - Alerts are sent when firing and not sent for `resendDelay` (1 min) or never, and once when
///   resolved (after which again every `resendDelay` until forgotten); a firing alert is valid
///   until now + 4 × max(interval, resendDelay), so a notifier treats it as resolved if the
///   evaluator stops.
/// - Two samples that give the same labels after templating are an error for the whole
///   evaluation ("vector contains metrics with the same labelset after applying alert labels").
public struct AlertingRuleState: Sendable {
    public let spec: AlertingRuleSpec
    public private(set) var alerts: [UInt64: RuleAlert] = [:]
    /// Resolved alerts are kept (and re-sent) this long. Prometheus: 15 min.
    public static let resolvedRetentionMs: Int64 = 15 * 60_000
    /// Minimum time between two sends of an unchanged alert. Prometheus's default: 1 min.
    public var resendDelayMs: Int64 = 60_000

    public init(spec: AlertingRuleSpec) { self.spec = spec }

    /// Restores alerts after a change of evaluator (failover, restart) from the last
    /// `ALERTS_FOR_STATE` values: `activeAt` as it was, so `for` timers continue rather than
    /// restart. Alerts whose `for` has passed come back firing (`firedAt` = activeAt + for).
    public mutating func restore(_ states: [(labels: Labels, activeAtMs: Int64)], nowMs: Int64) {
        for s in states {
            let labels = s.labels.droppingMetricName
            let fp = labels.stableHash
            guard alerts[fp] == nil else { continue }
            var a = RuleAlert(labels: labels, annotations: Labels.empty, state: .pending, value: .nan, activeAtMs: s.activeAtMs,
                              firedAtMs: nil, resolvedAtMs: nil, lastSentAtMs: nil, keepFiringSinceMs: nil, validUntilMs: 0)
            if nowMs - s.activeAtMs >= spec.forMs {
                a.state = .firing
                a.firedAtMs = s.activeAtMs + spec.forMs
            }
            alerts[fp] = a
        }
    }

    /// Applies one evaluation's result (`nil` when the query failed: nothing changes).
    /// - Parameters:
    ///   - result: the expression's samples (labels, value).
    ///   - intervalMs: the group's evaluation interval.
    ///   - limit: most alerts allowed (0: no limit); beyond it the evaluation fails and every
    ///     alert of the rule is dropped, as in Prometheus.
    public mutating func evaluate(_ result: [(Labels, Double)], nowMs: Int64, intervalMs: Int64, limit: Int = 0,
                                  externalLabels: [String: String] = [:], externalURL: String = "") -> AlertingEvaluation {
        var out = AlertingEvaluation()
        var seen: [UInt64: RuleAlert] = [:]
        for (metric, value) in result {
            var labelMap: [String: String] = [:]
            for l in metric.array { labelMap[l.name] = l.value }
            let data = AlertTemplate.Data(labels: labelMap.filter { $0.key != "__name__" }, value: value,
                                          externalLabels: externalLabels, externalURL: externalURL)
            var labels = metric.droppingMetricName
            for (name, t) in spec.labels {
                let v = Self.expand(t, data)
                labels = v.isEmpty ? labels.removing([name]) : labels.setting(name, v)
            }
            labels = labels.setting("alertname", spec.name)
            var annotations = Labels.empty
            for (name, t) in spec.annotations { annotations = annotations.setting(name, Self.expand(t, data)) }
            let fp = labels.stableHash
            if seen[fp] != nil {
                out.error = "vector contains metrics with the same labelset after applying alert labels"
                return out
            }
            seen[fp] = RuleAlert(labels: labels, annotations: annotations, state: .pending, value: value, activeAtMs: nowMs,
                                 firedAtMs: nil, resolvedAtMs: nil, lastSentAtMs: nil, keepFiringSinceMs: nil, validUntilMs: 0)
        }
        // Update the alerts the result still contains, start the new ones.
        for (fp, fresh) in seen {
            if var a = alerts[fp], a.state != .inactive {
                a.value = fresh.value
                a.annotations = fresh.annotations
                a.keepFiringSinceMs = nil
                alerts[fp] = a
            } else {
                alerts[fp] = fresh
            }
        }
        // Alerts the result no longer contains.
        for (fp, var a) in alerts where seen[fp] == nil {
            if a.state == .pending {
                alerts[fp] = nil
                out.stale.append(a.labels)
                continue
            }
            if a.state == .firing, spec.keepFiringForMs > 0 {
                let since = a.keepFiringSinceMs ?? nowMs
                if nowMs - since < spec.keepFiringForMs {
                    a.keepFiringSinceMs = since
                    alerts[fp] = a
                    continue
                }
            }
            if a.state != .inactive {
                a.state = .inactive
                a.resolvedAtMs = nowMs
                a.keepFiringSinceMs = nil
                alerts[fp] = a
                out.stale.append(a.labels)
            }
            if let resolved = a.resolvedAtMs, nowMs - resolved > Self.resolvedRetentionMs {
                alerts[fp] = nil
            }
        }
        if limit > 0 {
            let active = alerts.values.filter { $0.state != .inactive }.count
            if active > limit {
                for (fp, a) in alerts where a.state != .inactive {
                    alerts[fp] = nil
                    out.stale.append(a.labels)
                }
                out.error = "exceeded limit of \(limit) with \(active) alerts"
                return out
            }
        }
        // Pending alerts whose condition held for `for` fire.
        for (fp, var a) in alerts where a.state == .pending && nowMs - a.activeAtMs >= spec.forMs {
            a.state = .firing
            a.firedAtMs = nowMs
            alerts[fp] = a
        }
        // ALERTS and ALERTS_FOR_STATE.
        for a in alerts.values.sorted(by: { $0.labels < $1.labels }) where a.state != .inactive {
            out.series.append(SeriesSamples(
                labels: a.labels.setting("__name__", "ALERTS").setting("alertstate", a.state.rawValue), samples: [Sample(nowMs, 1)]))
            out.series.append(SeriesSamples(
                labels: a.labels.setting("__name__", "ALERTS_FOR_STATE"), samples: [Sample(nowMs, Double(a.activeAtMs / 1000))]))
        }
        // What the notifier gets.
        let resend = max(intervalMs, resendDelayMs)
        for (fp, var a) in alerts.sorted(by: { $0.value.labels < $1.value.labels }) {
            guard a.state != .pending else { continue }
            let needs: Bool
            if let resolved = a.resolvedAtMs, a.state == .inactive, (a.lastSentAtMs ?? .min) < resolved {
                needs = true
            } else {
                needs = a.lastSentAtMs.map { nowMs - $0 >= resendDelayMs } ?? true
            }
            guard needs else { continue }
            a.lastSentAtMs = nowMs
            a.validUntilMs = a.state == .inactive ? (a.resolvedAtMs ?? nowMs) : nowMs + 4 * resend
            alerts[fp] = a
            out.toSend.append(a)
        }
        return out
    }

    /// A template's text, or — when rendering fails — the error, as Prometheus puts it in the
    /// label or annotation.
    static func expand(_ t: AlertTemplate, _ data: AlertTemplate.Data) -> String {
        do {
            return try t.render(data)
        } catch {
            return "<error expanding template: \(error)>"
        }
    }

    /// Adopts an alert as it is (a reload keeping a rule's alerts).
    mutating func restoreAlert(_ a: RuleAlert) { alerts[a.fingerprint] = a }

    /// Active (pending or firing) alerts, sorted by labels.
    public var active: [RuleAlert] {
        alerts.values.filter { $0.state != .inactive }.sorted { $0.labels < $1.labels }
    }
}

/// What a recording rule evaluation produced: the series to store, or an error.
public enum RecordingEvaluation {
    /// Applies a recording rule to the expression's samples: `__name__` becomes the rule's name,
    /// the rule's labels are set (an empty value removes the label).
    public static func evaluate(_ spec: RecordingRuleSpec, _ result: [(Labels, Double)], nowMs: Int64, limit: Int = 0)
        -> (series: [SeriesSamples], error: String?)
    {
        if limit > 0, result.count > limit {
            return ([], "exceeded limit of \(limit) with \(result.count) series")
        }
        var out: [SeriesSamples] = []
        var seen = Set<UInt64>()
        for (metric, value) in result {
            var labels = metric.setting("__name__", spec.record)
            for (n, v) in spec.labels { labels = v.isEmpty ? labels.removing([n]) : labels.setting(n, v) }
            guard seen.insert(labels.stableHash).inserted else {
                return ([], "vector contains metrics with the same labelset after applying rule labels")
            }
            out.append(SeriesSamples(labels: labels, samples: [Sample(nowMs, value)]))
        }
        return (out, nil)
    }
}
