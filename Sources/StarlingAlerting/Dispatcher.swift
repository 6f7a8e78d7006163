import StarlingCore

/// Decides, for the alerts a receiver would be notified about, which are muted (silenced or
/// inhibited) at `nowMs`. The dispatcher asks at flush time, as Alertmanager's mute stage does.
public protocol AlertMuter {
    func isMuted(_ alert: Alert, nowMs: Int64) -> Bool
}

/// Mutes nothing.
public struct NoMuting: AlertMuter {
    public init() {}
    public func isMuted(_ alert: Alert, nowMs: Int64) -> Bool { false }
}

/// Identifies one aggregation group: the route (by index, so siblings with equal matchers stay
/// apart) and the group's label values.
public struct GroupID: Sendable, Hashable {
    public let routeIndex: Int
    public let groupLabels: Labels
}

/// One send a shell must perform: `alerts` to one integration of a receiver for one group.
public struct NotificationDirective: Sendable, Equatable {
    public let receiver: String
    /// Index of the integration within the receiver (`webhook_configs[i]`).
    public let integrationIndex: Int
    public let webhook: WebhookConfig
    public let group: GroupID
    /// Alertmanager's group key, `<route key>:<group labels>`, as sent in the webhook payload.
    public let groupKey: String
    public let groupLabels: Labels
    /// The alerts to send (firing and, if the integration wants them, resolved), in
    /// Alertmanager's order, at most `webhook.maxAlerts` of them.
    public let alerts: [Alert]
    /// Alerts left out because of `max_alerts` (the payload's `truncatedAlerts`).
    public let truncatedAlerts: Int
    /// Fingerprints of the group's firing / resolved alerts that this notification reports
    /// (before truncation); recorded in the notification log on delivery.
    public let firing: [AlertFingerprint]
    public let resolved: [AlertFingerprint]
    /// A hash of the group key, receiver, integration, firing and resolved sets, and the
    /// notification-log entry the decision was based on. Two nodes that make the same decision
    /// from the same replicated log state produce the same key, so a sender checks the
    /// replicated notification log for it before sending; a legitimate repeat (the repeat
    /// interval elapsed) is based on a newer entry and so gets a new key.
    public let idempotencyKey: UInt64
    /// The flush this directive belongs to; pass it back in `onDelivered`/`onDeliveryFailed`.
    public let flushID: UInt64
}

/// What the notification log remembers about the last successful notification of a group to
/// one integration (Alertmanager's `nflogpb.Entry`).
public struct NotificationLogEntry: Sendable, Equatable {
    public var firing: Set<AlertFingerprint>
    public var resolved: Set<AlertFingerprint>
    public var timestampMs: Int64

    public init(firing: Set<AlertFingerprint>, resolved: Set<AlertFingerprint>, timestampMs: Int64) {
        self.firing = firing
        self.resolved = resolved
        self.timestampMs = timestampMs
    }
}

public struct NotificationLogKey: Sendable, Hashable {
    public let groupKey: String
    public let routeIndex: Int
    public let receiver: String
    public let integrationIndex: Int

    public init(groupKey: String, routeIndex: Int, receiver: String, integrationIndex: Int) {
        self.groupKey = groupKey
        self.routeIndex = routeIndex
        self.receiver = receiver
        self.integrationIndex = integrationIndex
    }
}

/// Limits and retention of the dispatcher.
public struct DispatcherSettings: Sendable {
    /// Most alerts held (firing and not yet collected resolved ones). Beyond it new alerts are
    /// rejected and `Dispatcher.counters.alertsRejectedLimit` counts them; existing ones still update.
    public var maxAlerts: Int = 100_000
    /// Most aggregation groups. An alert that would open a group past this is not grouped on
    /// that route (`counters.groupsRejectedLimit`); Alertmanager 0.27 has the same kind of limit.
    public var maxGroups: Int = 10_000
    /// How long a notification-log entry is kept after its notification (Alertmanager's
    /// `--data.retention`, default 120 h). Must exceed every repeat interval, or a repeat
    /// would be sent early.
    public var notificationLogRetentionMs: Int64 = 120 * 3_600_000

    public init() {}
}

public struct DispatcherCounters: Sendable, Equatable {
    public var alertsRejectedLimit = 0
    public var groupsRejectedLimit = 0
    public var alertsInvalid = 0
}

/// Alertmanager's dispatcher as a pure state machine: an alert store deduplicated by
/// fingerprint, aggregation groups per route and group labels, group timers, and the
/// notification log that decides whether a flush really needs to notify.
///
/// Driving it: `receive` alerts; call `tick(nowMs:)` at `nextTickMs` (or later) and execute the
/// returned directives; report each with `onDelivered` or `onDeliveryFailed`. Nothing here
/// reads a clock.
///
/// Timing, as in Alertmanager: a new group waits `group_wait` before its first flush (or
/// flushes at once if an alert in it started more than `group_wait` ago); after each flush the
/// next is `group_interval` later. A flush notifies an integration when a firing alert is new
/// to it, when all alerts resolved (and some had been notified firing), when a resolved alert
/// is new and the integration sends resolved, or when `repeat_interval` has passed since the
/// last notification. After a fully delivered flush, resolved alerts that did not change
/// leave the group; an empty group is deleted.
public struct Dispatcher: Sendable {
    public private(set) var config: AlertingConfig
    public let settings: DispatcherSettings
    public private(set) var counters = DispatcherCounters()

    /// The alert store, deduplicated by fingerprint.
    public private(set) var alerts: [AlertFingerprint: Alert] = [:]
    public private(set) var groups: [GroupID: AggregationGroup] = [:]
    public private(set) var notificationLog: [NotificationLogKey: NotificationLogEntry] = [:]
    /// Log entries written since the last `drainLogChanges()`: what the shell replicates so a
    /// successor decides from the same log.
    private var logChanges: [(NotificationLogKey, NotificationLogEntry)] = []
    private var nextFlushID: UInt64 = 1

    public init(config: AlertingConfig, settings: DispatcherSettings = .init()) {
        self.config = config
        self.settings = settings
    }

    /// An aggregation group: the alerts of one route with the same group labels.
    public struct AggregationGroup: Sendable {
        public let id: GroupID
        public let key: String
        public internal(set) var alerts: [AlertFingerprint: Alert] = [:]
        public internal(set) var nextFlushMs: Int64
        public internal(set) var hasFlushed = false
        /// The flush whose directives are outstanding, with the resolved alerts to drop once
        /// every directive is delivered.
        var pending: PendingFlush?
    }

    struct PendingFlush: Sendable {
        let id: UInt64
        var outstanding: Int
        var failed = false
        let resolvedSnapshot: [AlertFingerprint: Int64]  // fingerprint → updatedAtMs at flush
    }

    /// Adds or updates alerts (API posts, rule evaluation). Alerts with the fingerprint of a
    /// stored alert are merged with it when their activity ranges overlap, else replace it.
    /// Returns the alerts that failed validation, with why.
    @discardableResult
    public mutating func receive(_ batch: [Alert], nowMs: Int64) -> [(Alert, AlertValidationError)] {
        var invalid: [(Alert, AlertValidationError)] = []
        for var a in batch {
            do { try a.validate() } catch {
                invalid.append((a, error))
                counters.alertsInvalid += 1
                continue
            }
            if let old = alerts[a.fingerprint] {
                let overlaps =
                    (a.endsAtMs > old.startsAtMs && a.endsAtMs < old.endsAtMs)
                    || (a.startsAtMs > old.startsAtMs && a.startsAtMs < old.endsAtMs)
                if overlaps { a = old.merged(with: a, nowMs: nowMs) }
            } else if alerts.count >= settings.maxAlerts {
                counters.alertsRejectedLimit += 1
                continue
            }
            alerts[a.fingerprint] = a
            route(a, nowMs: nowMs)
        }
        return invalid
    }

    private mutating func route(_ a: Alert, nowMs: Int64) {
        for r in config.tree.match(a.labels) {
            let gl = r.groupBy.groupLabels(of: a.labels)
            let id = GroupID(routeIndex: r.index, groupLabels: gl)
            if groups[id] == nil {
                if groups.count >= settings.maxGroups {
                    counters.groupsRejectedLimit += 1
                    continue
                }
                groups[id] = AggregationGroup(id: id, key: r.key + ":" + formatGroupLabels(gl), nextFlushMs: nowMs + r.groupWaitMs)
            }
            groups[id]!.alerts[a.fingerprint] = a
            // An alert that started more than group_wait ago must not wait again.
            if !groups[id]!.hasFlushed && a.startsAtMs + r.groupWaitMs < nowMs {
                groups[id]!.nextFlushMs = min(groups[id]!.nextFlushMs, nowMs)
            }
        }
    }

    /// When `tick` next has work: the earliest group flush. Nil when there are no groups.
    public var nextTickMs: Int64? { groups.values.map(\.nextFlushMs).min() }

    /// Flushes every group whose timer is due and returns the notifications to send.
    public mutating func tick(nowMs: Int64, muter: some AlertMuter = NoMuting()) -> [NotificationDirective] {
        var out: [NotificationDirective] = []
        let due = groups.values.filter { $0.nextFlushMs <= nowMs }.map(\.id).sorted { a, b in
            a.routeIndex != b.routeIndex ? a.routeIndex < b.routeIndex : a.groupLabels < b.groupLabels
        }
        for id in due { out += flush(id, nowMs: nowMs, muter: muter) }
        return out
    }

    private mutating func flush(_ id: GroupID, nowMs: Int64, muter: some AlertMuter) -> [NotificationDirective] {
        guard var g = groups[id] else { return [] }
        let route = config.tree.routes[id.routeIndex]
        g.hasFlushed = true
        g.nextFlushMs = nowMs + route.groupIntervalMs
        let all = g.alerts.values.sorted(by: alertNotificationOrder)
        let unmuted = all.filter { !muter.isMuted($0, nowMs: nowMs) }
        let firing = unmuted.filter { !$0.isResolved(atMs: nowMs) }
        let resolved = unmuted.filter { $0.isResolved(atMs: nowMs) }
        let firingSet = Set(firing.map(\.fingerprint))
        let resolvedSet = Set(resolved.map(\.fingerprint))
        let flushID = nextFlushID
        nextFlushID += 1
        var out: [NotificationDirective] = []
        if !unmuted.isEmpty, let receiver = config.receiver(named: route.receiver) {
            for (i, hook) in receiver.webhooks.enumerated() {
                let logKey = NotificationLogKey(groupKey: g.key, routeIndex: id.routeIndex, receiver: receiver.name, integrationIndex: i)
                let entry = notificationLog[logKey]
                guard
                    Self.needsUpdate(
                        entry, firing: firingSet, resolved: resolvedSet, sendResolved: hook.sendResolved,
                        repeatIntervalMs: route.repeatIntervalMs, nowMs: nowMs)
                else { continue }
                let send = hook.sendResolved ? unmuted : firing
                if send.isEmpty {
                    // All resolved and the integration does not want resolved alerts: nothing to
                    // send, but the log must forget the firing set (Alertmanager does the same).
                    let e = NotificationLogEntry(firing: [], resolved: resolvedSet, timestampMs: nowMs)
                    notificationLog[logKey] = e
                    logChanges.append((logKey, e))
                    continue
                }
                let limit = hook.maxAlerts > 0 ? min(hook.maxAlerts, send.count) : send.count
                let f = firingSet.sorted()
                let r = resolvedSet.sorted()
                out.append(
                    NotificationDirective(
                        receiver: receiver.name, integrationIndex: i, webhook: hook, group: id, groupKey: g.key,
                        groupLabels: id.groupLabels, alerts: Array(send.prefix(limit)), truncatedAlerts: send.count - limit,
                        firing: f, resolved: r,
                        idempotencyKey: Self.idempotencyKey(logKey, firing: f, resolved: r, basedOn: entry),
                        flushID: flushID))
            }
        }
        g.pending = PendingFlush(
            id: flushID, outstanding: out.count,
            resolvedSnapshot: Dictionary(uniqueKeysWithValues: all.filter { $0.isResolved(atMs: nowMs) }.map { ($0.fingerprint, $0.updatedAtMs) }))
        groups[id] = g
        if out.isEmpty { completeFlush(id) }
        return out
    }

    /// Alertmanager's dedup decision (`DedupStage.needsUpdate`).
    static func needsUpdate(
        _ entry: NotificationLogEntry?, firing: Set<AlertFingerprint>, resolved: Set<AlertFingerprint>, sendResolved: Bool,
        repeatIntervalMs: Int64, nowMs: Int64
    ) -> Bool {
        guard let entry else { return !firing.isEmpty }  // never notified: only if something fires
        if !firing.isSubset(of: entry.firing) { return true }  // a new firing alert
        // Everything resolved: notify once (even without send_resolved, to clear the log), but
        // only if the receiver was told about something firing.
        if firing.isEmpty { return !entry.firing.isEmpty }
        if sendResolved && !resolved.isSubset(of: entry.resolved) { return true }
        return entry.timestampMs < nowMs - repeatIntervalMs
    }

    static func idempotencyKey(
        _ k: NotificationLogKey, firing: [AlertFingerprint], resolved: [AlertFingerprint], basedOn entry: NotificationLogEntry?
    ) -> UInt64 {
        var b: [UInt8] = []
        func put(_ s: String) { b.appendLengthPrefixed(s) }
        func put(_ v: UInt64) { b.appendLittleEndian(v) }
        put(k.groupKey)
        put(UInt64(k.routeIndex))
        put(k.receiver)
        put(UInt64(k.integrationIndex))
        put(UInt64(firing.count))
        for f in firing { put(f.rawValue) }
        put(UInt64(resolved.count))
        for r in resolved { put(r.rawValue) }
        put(UInt64(bitPattern: entry?.timestampMs ?? -1))
        return XXH64.hash(b)
    }

    /// The shell delivered `d`: record it in the notification log.
    public mutating func onDelivered(_ d: NotificationDirective, nowMs: Int64) {
        let key = NotificationLogKey(groupKey: d.groupKey, routeIndex: d.group.routeIndex, receiver: d.receiver, integrationIndex: d.integrationIndex)
        let e = NotificationLogEntry(firing: Set(d.firing), resolved: Set(d.resolved), timestampMs: nowMs)
        notificationLog[key] = e
        logChanges.append((key, e))
        settle(d, failed: false)
    }

    /// The shell gave up on `d` (after its retries). Nothing is logged, so the next flush of the
    /// group decides again, and resolved alerts stay in the group until they are delivered.
    public mutating func onDeliveryFailed(_ d: NotificationDirective) { settle(d, failed: true) }

    private mutating func settle(_ d: NotificationDirective, failed: Bool) {
        guard var p = groups[d.group]?.pending, p.id == d.flushID else { return }  // superseded flush
        p.outstanding -= 1
        p.failed = p.failed || failed
        groups[d.group]!.pending = p
        if p.outstanding <= 0 { completeFlush(d.group) }
    }

    /// After a flush whose notifications all went out: drop resolved alerts that have not
    /// changed since, and the group if it is empty.
    private mutating func completeFlush(_ id: GroupID) {
        guard var g = groups[id], let p = g.pending else { return }
        g.pending = nil
        if !p.failed {
            for (fp, updated) in p.resolvedSnapshot where g.alerts[fp]?.updatedAtMs == updated {
                g.alerts[fp] = nil
            }
        }
        groups[id] = g.alerts.isEmpty ? nil : g
    }

    /// The notification-log entries written since the last call (to replicate them).
    public mutating func drainLogChanges() -> [(NotificationLogKey, NotificationLogEntry)] {
        defer { logChanges = [] }
        return logChanges
    }

    /// Adopts log entries written by a previous dispatcher (read back from the replicated log):
    /// for each key the newer entry wins. Not reported by `drainLogChanges`.
    public mutating func restoreLog(_ entries: [NotificationLogKey: NotificationLogEntry]) {
        for (k, e) in entries where (notificationLog[k]?.timestampMs ?? .min) < e.timestampMs { notificationLog[k] = e }
    }

    /// Drops resolved alerts from the store that no group still holds, and expired
    /// notification-log entries. Call periodically (Alertmanager: every 30 minutes).
    public mutating func collectGarbage(nowMs: Int64) {
        var held: Set<AlertFingerprint> = []
        for g in groups.values { held.formUnion(g.alerts.keys) }
        alerts = alerts.filter { !$0.value.isResolved(atMs: nowMs) || held.contains($0.key) }
        notificationLog = notificationLog.filter { $0.value.timestampMs + settings.notificationLogRetentionMs > nowMs }
    }

    /// Replaces the configuration (a reload): groups are rebuilt from the stored alerts under
    /// the new routes; the notification log is kept, so unchanged groups do not re-notify.
    public mutating func reload(_ newConfig: AlertingConfig, nowMs: Int64) {
        config = newConfig
        groups = [:]
        for a in alerts.values.sorted(by: { $0.fingerprint < $1.fingerprint }) { route(a, nowMs: nowMs) }
    }
}

/// A label set as Prometheus prints it (`{a="b", c="d"}`), the second half of a group key.
public func formatGroupLabels(_ l: Labels) -> String {
    "{" + l.array.map { "\($0.name)=\(quoteLabelValue($0.value))" }.joined(separator: ", ") + "}"
}
