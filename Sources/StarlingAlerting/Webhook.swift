import Foundation
import StarlingCore

/// Alertmanager's webhook payload (version 4) for one notification, so any receiver written for
/// Alertmanager's webhook works unchanged: group key and labels, the labels and annotations
/// common to every alert, and each alert with status, times, generator URL and fingerprint.
public enum WebhookPayload {
    public static func render(_ d: NotificationDirective, externalURL: String, nowMs: Int64) -> [UInt8] {
        func object(_ l: Labels) -> [String: String] {
            var out: [String: String] = [:]
            for x in l.array { out[x.name] = x.value }
            return out
        }
        let alerts: [[String: Any]] = d.alerts.map { a in
            let resolved = a.isResolved(atMs: nowMs)
            return [
                "status": resolved ? "resolved" : "firing",
                "labels": object(a.labels),
                "annotations": object(a.annotations),
                "startsAt": rfc3339(ms: a.startsAtMs),
                "endsAt": resolved ? rfc3339(ms: a.endsAtMs) : "0001-01-01T00:00:00Z",
                "generatorURL": a.generatorURL,
                "fingerprint": a.fingerprint.description,
            ]
        }
        let firing = d.alerts.contains { !$0.isResolved(atMs: nowMs) }
        let payload: [String: Any] = [
            "version": "4",
            "groupKey": d.groupKey,
            "truncatedAlerts": d.truncatedAlerts,
            "status": firing ? "firing" : "resolved",
            "receiver": d.receiver,
            "groupLabels": object(d.groupLabels),
            "commonLabels": object(common(d.alerts.map(\.labels))),
            "commonAnnotations": object(common(d.alerts.map(\.annotations))),
            "externalURL": externalURL,
            "alerts": alerts,
        ]
        return Array((try? JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data())
    }

    /// The label pairs every set has.
    static func common(_ sets: [Labels]) -> Labels {
        guard var acc = sets.first?.array else { return .empty }
        for s in sets.dropFirst() {
            let other = Set(s.array.map { "\($0.name)\u{0}\($0.value)" })
            acc = acc.filter { other.contains("\($0.name)\u{0}\($0.value)") }
        }
        return Labels(acc)
    }
}
