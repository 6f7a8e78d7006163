import StarlingCore

/// An alert as Alertmanager holds it: identity (labels), payload (annotations), and the
/// activity range `[startsAtMs, endsAtMs)`. An alert is resolved at `nowMs` once `endsAtMs <= nowMs`.
public struct Alert: Sendable, Equatable {
    public var labels: Labels
    public var annotations: Labels
    public var startsAtMs: Int64
    /// When the alert ends. For alerts received without an end, `receivedAt + resolve_timeout`
    /// with `endsAtIsTimeout` set: a later explicit end always wins over a timeout.
    public var endsAtMs: Int64
    public var generatorURL: String
    /// When this alert was last received or changed; the younger of two versions wins a merge.
    public var updatedAtMs: Int64
    public var endsAtIsTimeout: Bool
    public let fingerprint: AlertFingerprint

    public init(
        labels: Labels, annotations: Labels = .empty, startsAtMs: Int64, endsAtMs: Int64, generatorURL: String = "",
        updatedAtMs: Int64, endsAtIsTimeout: Bool = false
    ) {
        self.labels = labels
        self.annotations = annotations
        self.startsAtMs = startsAtMs
        self.endsAtMs = endsAtMs
        self.generatorURL = generatorURL
        self.updatedAtMs = updatedAtMs
        self.endsAtIsTimeout = endsAtIsTimeout
        self.fingerprint = labels.alertFingerprint
    }

    /// Builds an alert the way Alertmanager's API does for a posted alert: a missing start is
    /// the given end, or `nowMs` when there is no end either; a missing end is
    /// `nowMs + resolveTimeoutMs`, marked as a timeout.
    public static func received(
        labels: Labels, annotations: Labels = .empty, startsAtMs: Int64?, endsAtMs: Int64?, generatorURL: String = "",
        nowMs: Int64, resolveTimeoutMs: Int64
    ) -> Alert {
        let start = startsAtMs ?? endsAtMs ?? nowMs
        if let endsAtMs {
            return Alert(
                labels: labels, annotations: annotations, startsAtMs: start, endsAtMs: endsAtMs, generatorURL: generatorURL,
                updatedAtMs: nowMs)
        }
        return Alert(
            labels: labels, annotations: annotations, startsAtMs: start, endsAtMs: nowMs + resolveTimeoutMs,
            generatorURL: generatorURL, updatedAtMs: nowMs, endsAtIsTimeout: true)
    }

    public func isResolved(atMs nowMs: Int64) -> Bool { endsAtMs <= nowMs }

    /// Merges two versions of the same alert as Alertmanager does: the younger version
    /// (`updatedAtMs`) provides the payload; the earliest start wins; if the younger is resolved
    /// the latest explicit end among resolved versions wins; otherwise the older version's end
    /// wins only if it is later and was not a timeout.
    public func merged(with other: Alert, nowMs: Int64) -> Alert {
        precondition(other.fingerprint == fingerprint, "merging alerts with different fingerprints")
        if other.updatedAtMs < updatedAtMs { return other.merged(with: self, nowMs: nowMs) }
        var res = other
        if startsAtMs < other.startsAtMs { res.startsAtMs = startsAtMs }
        if other.isResolved(atMs: nowMs) {
            if isResolved(atMs: nowMs) && endsAtMs > other.endsAtMs { res.endsAtMs = endsAtMs }
        } else if endsAtMs > other.endsAtMs && !endsAtIsTimeout {
            res.endsAtMs = endsAtMs
            res.endsAtIsTimeout = false
        }
        return res
    }

    /// Validation as Alertmanager's API applies it.
    public func validate() throws(AlertValidationError) {
        if labels.isEmpty { throw .noLabels }
        for l in labels where l.name.isEmpty { throw .invalidLabelName(l.name) }
        if startsAtMs <= 0 { throw .missingStart }
        if endsAtMs < startsAtMs { throw .endBeforeStart(startsAtMs: startsAtMs, endsAtMs: endsAtMs) }
    }
}

public enum AlertValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    case noLabels
    case invalidLabelName(String)
    case missingStart
    case endBeforeStart(startsAtMs: Int64, endsAtMs: Int64)

    public var description: String {
        switch self {
        case .noLabels: return "alert has no labels"
        case .invalidLabelName(let n): return "invalid label name \(quoteLabelValue(n))"
        case .missingStart: return "alert has no start time"
        case .endBeforeStart(let s, let e): return "alert ends (\(e) ms) before it starts (\(s) ms)"
        }
    }
}

/// Alertmanager's notification order for the alerts of a group: by `job`, then `instance`
/// (alerts lacking the label sort after those that have it), then by the whole label set.
func alertNotificationOrder(_ a: Alert, _ b: Alert) -> Bool {
    for key in ["job", "instance"] {
        let av = a.labels.get(key)
        let bv = b.labels.get(key)
        switch (av, bv) {
        case (nil, nil): continue
        case (nil, _): return false
        case (_, nil): return true
        case (let x?, let y?): if x != y { return utf8Less(x, y) }
        }
    }
    return a.labels < b.labels
}
