import StarlingCore

/// Why an alert is or is not being notified, as Alertmanager's `status` of an alert in
/// `/api/v2/alerts` (`state`, `silencedBy`, `inhibitedBy`), plus the maintenance windows that
/// mute it (Starling's addition; Alertmanager's equivalent, `mutedBy`, names time intervals).
public struct AlertStatus: Sendable, Equatable {
    public enum State: String, Sendable, Equatable {
        /// Firing and neither silenced, inhibited nor in a maintenance window.
        case active
        /// Muted by at least one silence, inhibition or maintenance window.
        case suppressed
        /// Resolved (kept until garbage collection); Alertmanager reports these as `unprocessed`
        /// only before routing, so Starling names the state for what it is.
        case resolved
    }

    public var state: State
    /// IDs of the active silences that match the alert.
    public var silencedBy: [String]
    /// Fingerprints of the alerts inhibiting it.
    public var inhibitedBy: [AlertFingerprint]
    /// IDs of the open maintenance windows that match it.
    public var mutedByWindows: [String]
    /// Under the dependency topology: the failed upstream alert it is linked to.
    public var probableCause: ProbableCause? = nil
}

/// Everything that can mute an alert at one instant: silences, maintenance windows, and an
/// inhibitor built from the current alerts. It is the dispatcher's `AlertMuter` and answers
/// the API's status per alert. A suppressed alert stays in the store and in its group; it is
/// only left out of notifications.
public struct Suppressor: AlertMuter, Sendable {
    public let silences: Silences
    public let windows: [MaintenanceWindow]
    public let inhibitor: Inhibitor

    public init(silences: Silences, windows: [MaintenanceWindow], inhibitor: Inhibitor) {
        self.silences = silences
        self.windows = windows
        self.inhibitor = inhibitor
    }

    /// Builds the suppressor for `nowMs` from the dispatcher's alert store and rules.
    public init(dispatcher: Dispatcher, silences: Silences, windows: [MaintenanceWindow], nowMs: Int64) {
        self.init(
            silences: silences, windows: windows,
            inhibitor: Inhibitor(rules: dispatcher.config.inhibitRules + dispatcher.config.dependencies, alerts: dispatcher.alerts.values, nowMs: nowMs))
    }

    public func status(of alert: Alert, nowMs: Int64) -> AlertStatus {
        let silenced = silences.silencedBy(alert.labels, nowMs: nowMs)
        let inhibited = inhibitor.inhibitedBy(alert.labels).map { [$0] } ?? []
        let muted = windows.filter { $0.mutes(alert.labels, atMs: nowMs) }.map(\.id).sorted()
        let state: AlertStatus.State
        if alert.isResolved(atMs: nowMs) {
            state = .resolved
        } else if !silenced.isEmpty || !inhibited.isEmpty || !muted.isEmpty {
            state = .suppressed
        } else {
            state = .active
        }
        return AlertStatus(state: state, silencedBy: silenced, inhibitedBy: inhibited, mutedByWindows: muted,
                           probableCause: inhibitor.probableCause(alert.labels))
    }

    /// Muted when silenced, inhibited or in an open window. Resolved alerts are judged by the
    /// same rules, so a resolution of a silenced alert is not notified either (as in Alertmanager).
    public func isMuted(_ alert: Alert, nowMs: Int64) -> Bool {
        if windows.contains(where: { $0.mutes(alert.labels, atMs: nowMs) }) { return true }
        if inhibitor.inhibitedBy(alert.labels) != nil { return true }
        return !silences.silencedBy(alert.labels, nowMs: nowMs).isEmpty
    }
}
