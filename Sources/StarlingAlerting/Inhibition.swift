import StarlingCore

/// Inhibition at one instant: for every rule, the firing alerts that match its source matchers.
/// Build one from the alert store when flushing (`Inhibitor(rules:alerts:nowMs:)`) and ask it
/// which alerts are inhibited, and by whom.
///
/// Semantics, as Alertmanager's: a target alert (matching a rule's target matchers) is
/// inhibited while some firing source alert has the same value for every `equal` label (an
/// absent label counts as the empty value, so both lacking it is equal). An alert never
/// inhibits itself: when the target also matches the source matchers, source alerts that
/// also match the target matchers are not considered — so two alerts matching both sides of
/// a rule do not inhibit each other.
public struct Inhibitor: Sendable {
    public let rules: [InhibitRule]
    /// Per rule: the firing source alerts, as (labels, fingerprint).
    private let sources: [[(Labels, AlertFingerprint)]]
    /// Labels of every firing source alert, to follow chains of dependencies.
    private let labelsByFingerprint: [AlertFingerprint: Labels]

    public init(rules: [InhibitRule], alerts: some Sequence<Alert>, nowMs: Int64) {
        self.rules = rules
        var s = [[(Labels, AlertFingerprint)]](repeating: [], count: rules.count)
        for a in alerts where !a.isResolved(atMs: nowMs) {
            for (i, r) in rules.enumerated() where r.sourceMatchers.matches(a.labels) {
                s[i].append((a.labels, a.fingerprint))
            }
        }
        for i in s.indices { s[i].sort { $0.1 < $1.1 } }  // deterministic "inhibited by"
        sources = s
        var byFP: [AlertFingerprint: Labels] = [:]
        for list in s { for (l, fp) in list { byFP[fp] = l } }
        labelsByFingerprint = byFP
    }

    /// The fingerprint of the first source alert that inhibits an alert with `labels`, per the
    /// first rule that inhibits it; nil when not inhibited.
    public func inhibitedBy(_ labels: Labels) -> AlertFingerprint? { inhibition(labels)?.source }

    /// The first rule (of those `counting`) that inhibits an alert with `labels`, and its first
    /// source alert.
    public func inhibition(_ labels: Labels, counting: (InhibitRule) -> Bool = { _ in true }) -> (rule: Int, source: AlertFingerprint)? {
        for (i, r) in rules.enumerated() where counting(r) && r.targetMatchers.matches(labels) {
            let twoSided = r.sourceMatchers.matches(labels)
            source: for (sl, fp) in sources[i] {
                for n in r.equal where (sl.get(n) ?? "") != (labels.get(n) ?? "") { continue source }
                if twoSided && r.targetMatchers.matches(sl) { continue source }
                return (i, fp)
            }
        }
        return nil
    }

    /// The probable cause of an alert with `labels` under the dependency topology: the firing
    /// upstream alert it depends on, followed up the chain (a service's host is down because
    /// its rack is) to the alert that depends on nothing firing. Only dependency rules count;
    /// nil when no upstream of the alert is down.
    public func probableCause(_ labels: Labels) -> ProbableCause? {
        var current = labels
        var cause: ProbableCause?
        var seen = Set<AlertFingerprint>()
        while let (i, fp) = inhibition(current, counting: { $0.dependency != nil }), seen.insert(fp).inserted, let l = labelsByFingerprint[fp] {
            cause = ProbableCause(fingerprint: fp, labels: l, via: (cause?.via ?? []) + [rules[i].dependency ?? ""])
            current = l
        }
        return cause
    }
}

/// The root of a chain of failed dependencies: the upstream alert to look at first.
public struct ProbableCause: Sendable, Equatable {
    public var fingerprint: AlertFingerprint
    public var labels: Labels
    /// The dependencies followed, from the alert to the cause.
    public var via: [String]
}
