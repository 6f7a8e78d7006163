import StarlingCore
import StarlingTestKit
import Testing

@testable import StarlingAlerting

/// Dispatcher scenarios on a manual clock. Settings: group_wait 30s, group_interval 5m,
/// repeat_interval 1h unless a test says otherwise.
@Suite struct DispatcherTests {
    static func config(_ extra: String = "", sendResolved: Bool = true, maxAlerts: Int = 0) -> AlertingConfig {
        try! AlertingConfig.parse(
            yaml: """
                route:
                  receiver: hook
                  group_by: [alertname]
                  group_wait: 30s
                  group_interval: 5m
                  repeat_interval: 1h
                \(extra)
                receivers:
                  - name: hook
                    webhook_configs:
                      - {url: 'http://h/x', send_resolved: \(sendResolved), max_alerts: \(maxAlerts)}
                  - name: other
                    webhook_configs: [{url: 'http://h/y'}]
                  - name: blackhole
                """)
    }

    /// An alert as posted: started `at`; when `endsAt` is given it is a resolution posted at
    /// that time, otherwise a firing alert posted at `at` with the 5-minute timeout end.
    static func alert(_ name: String, _ instance: String, at: Int64, endsAt: Int64? = nil) -> Alert {
        Alert.received(
            labels: Labels(["alertname": name, "instance": instance]), startsAtMs: at, endsAtMs: endsAt,
            nowMs: max(at, endsAt ?? at), resolveTimeoutMs: 300_000)
    }

    func deliverAll(_ d: inout Dispatcher, _ ds: [NotificationDirective], _ now: Int64) {
        for x in ds { d.onDelivered(x, nowMs: now) }
    }

    @Test func groupWaitThenGroupIntervalBatchesAlerts() {
        let clock = ManualClock()
        var d = Dispatcher(config: Self.config())
        d.receive([Self.alert("Down", "a", at: clock.nowMs)], nowMs: clock.nowMs)
        #expect(d.nextTickMs == clock.nowMs + 30_000)
        clock.advance(byMs: 10_000)
        d.receive([Self.alert("Down", "b", at: clock.nowMs)], nowMs: clock.nowMs)
        clock.advance(byMs: 19_999)
        #expect(d.tick(nowMs: clock.nowMs).isEmpty)
        clock.advance(byMs: 1)
        let first = d.tick(nowMs: clock.nowMs)
        #expect(first.count == 1)
        #expect(first[0].alerts.map { $0.labels.get("instance") } == ["a", "b"])
        #expect(first[0].groupKey == #"{}:{alertname="Down"}"#)
        #expect(first[0].receiver == "hook")
        deliverAll(&d, first, clock.nowMs)
        #expect(d.nextTickMs == clock.nowMs + 300_000)

        // A new alert after the first flush waits for group_interval, not group_wait.
        clock.advance(byMs: 60_000)
        d.receive([Self.alert("Down", "c", at: clock.nowMs)], nowMs: clock.nowMs)
        clock.advance(byMs: 239_999)
        #expect(d.tick(nowMs: clock.nowMs).isEmpty)
        clock.advance(byMs: 1)
        let second = d.tick(nowMs: clock.nowMs)
        #expect(second.count == 1 && second[0].alerts.count == 3)
        #expect(second[0].idempotencyKey != first[0].idempotencyKey)
    }

    @Test func unchangedFiringGroupRepeatsOnlyAfterRepeatInterval() {
        let clock = ManualClock()
        var d = Dispatcher(config: Self.config())
        // Re-posted every minute with a fresh timeout end, as Prometheus does.
        func post() { d.receive([Self.alert("Down", "a", at: clock.nowMs)], nowMs: clock.nowMs) }
        post()
        clock.advance(byMs: 30_000)
        let first = d.tick(nowMs: clock.nowMs)
        #expect(first.count == 1)
        deliverAll(&d, first, clock.nowMs)
        let firstAt = clock.nowMs
        var sends: [Int64] = []
        var keys: Set<UInt64> = [first[0].idempotencyKey]
        for _ in 0..<130 {
            clock.advance(byMs: 60_000)
            post()
            if let t = d.nextTickMs, t <= clock.nowMs {
                let ds = d.tick(nowMs: clock.nowMs)
                for x in ds {
                    sends.append(clock.nowMs - firstAt)
                    keys.insert(x.idempotencyKey)
                }
                deliverAll(&d, ds, clock.nowMs)
            }
        }
        // Flushes happen every 5 min; the first one strictly past 1 h repeats (65 min), then 130 min.
        #expect(sends == [65 * 60_000, 130 * 60_000])
        #expect(keys.count == 3)
    }

    @Test func resolvedAlertsAreNotifiedThenDropped() {
        let clock = ManualClock()
        var d = Dispatcher(config: Self.config())
        let start = clock.nowMs
        d.receive([Self.alert("Down", "a", at: start), Self.alert("Down", "b", at: start)], nowMs: start)
        clock.advance(byMs: 30_000)
        deliverAll(&d, d.tick(nowMs: clock.nowMs), clock.nowMs)
        // b resolves explicitly.
        clock.advance(byMs: 60_000)
        d.receive([Self.alert("Down", "b", at: start, endsAt: clock.nowMs)], nowMs: clock.nowMs)
        d.receive([Self.alert("Down", "a", at: clock.nowMs)], nowMs: clock.nowMs)
        clock.set(start + 30_000 + 300_000)
        let ds = d.tick(nowMs: clock.nowMs)
        #expect(ds.count == 1)
        #expect(ds[0].firing.count == 1 && ds[0].resolved.count == 1)
        #expect(ds[0].alerts.count == 2)
        deliverAll(&d, ds, clock.nowMs)
        let g = d.groups.values.first!
        #expect(g.alerts.count == 1)  // b left the group after delivery
        // a stops being re-posted and times out (resolve_timeout 5m): everything resolved.
        clock.advance(byMs: 300_000)
        let last = d.tick(nowMs: clock.nowMs)
        #expect(last.count == 1 && last[0].firing.isEmpty)
        deliverAll(&d, last, clock.nowMs)
        #expect(d.groups.isEmpty)
        #expect(d.nextTickMs == nil)
        d.collectGarbage(nowMs: clock.nowMs)
        #expect(d.alerts.isEmpty)
    }

    @Test func withoutSendResolvedNothingIsSentForResolvedAlerts() {
        let clock = ManualClock()
        var d = Dispatcher(config: Self.config(sendResolved: false))
        let start = clock.nowMs
        d.receive([Self.alert("Down", "a", at: start)], nowMs: start)
        clock.advance(byMs: 30_000)
        deliverAll(&d, d.tick(nowMs: clock.nowMs), clock.nowMs)
        d.receive([Self.alert("Down", "a", at: start, endsAt: clock.nowMs + 1)], nowMs: clock.nowMs)
        clock.advance(byMs: 300_000)
        #expect(d.tick(nowMs: clock.nowMs).isEmpty)
        #expect(d.groups.isEmpty)
        // The log forgot the firing set, so a new firing notifies again.
        #expect(d.notificationLog.values.first?.firing.isEmpty == true)
    }

    @Test func alertThatStartedLongAgoFlushesAtOnce() {
        let clock = ManualClock()
        var d = Dispatcher(config: Self.config())
        let a = Alert.received(
            labels: Labels(["alertname": "Old"]), startsAtMs: clock.nowMs - 3_600_000, endsAtMs: nil, nowMs: clock.nowMs,
            resolveTimeoutMs: 300_000)
        d.receive([a], nowMs: clock.nowMs)
        #expect(d.nextTickMs == clock.nowMs)
        #expect(d.tick(nowMs: clock.nowMs).count == 1)
    }

    @Test func dedupByFingerprintAndMerge() {
        let clock = ManualClock()
        var d = Dispatcher(config: Self.config())
        let t0 = clock.nowMs
        d.receive([Self.alert("Down", "a", at: t0)], nowMs: t0)
        clock.advance(byMs: 60_000)
        // Same labels again: one alert, start kept from the first, end extended by the timeout.
        d.receive([Self.alert("Down", "a", at: clock.nowMs)], nowMs: clock.nowMs)
        #expect(d.alerts.count == 1)
        let a = d.alerts.values.first!
        #expect(a.startsAtMs == t0 && a.endsAtMs == clock.nowMs + 300_000 && a.endsAtIsTimeout)
        #expect(d.groups.values.first!.alerts.count == 1)
        // An explicit end wins over the timeout.
        d.receive([Self.alert("Down", "a", at: t0, endsAt: clock.nowMs + 5)], nowMs: clock.nowMs + 1)
        #expect(d.alerts.values.first!.endsAtMs == clock.nowMs + 5)
        #expect(!d.alerts.values.first!.endsAtIsTimeout)
    }

    @Test func failedDeliveryKeepsResolvedAlertsAndRetriesNextFlush() {
        let clock = ManualClock()
        var d = Dispatcher(config: Self.config())
        let start = clock.nowMs
        d.receive([Self.alert("Down", "a", at: start)], nowMs: start)
        clock.advance(byMs: 30_000)
        let first = d.tick(nowMs: clock.nowMs)
        for x in first { d.onDeliveryFailed(x) }
        // Not logged: the next flush notifies the same content again, with the same key.
        clock.advance(byMs: 300_000)
        d.receive([Self.alert("Down", "a", at: clock.nowMs)], nowMs: clock.nowMs)  // still firing
        let again = d.tick(nowMs: clock.nowMs)
        #expect(again.count == 1 && again[0].idempotencyKey == first[0].idempotencyKey)
        d.receive([Self.alert("Down", "a", at: start, endsAt: clock.nowMs)], nowMs: clock.nowMs)
        deliverAll(&d, again, clock.nowMs)
        clock.advance(byMs: 300_000)
        let resolved = d.tick(nowMs: clock.nowMs)
        #expect(resolved.count == 1 && resolved[0].firing.isEmpty)
        for x in resolved { d.onDeliveryFailed(x) }
        #expect(d.groups.count == 1)  // still there to be retried
        clock.advance(byMs: 300_000)
        let retry = d.tick(nowMs: clock.nowMs)
        #expect(retry.count == 1)
        deliverAll(&d, retry, clock.nowMs)
        #expect(d.groups.isEmpty)
    }

    @Test func failoverReplicaMakesTheSameDecisionWithTheSameKey() {
        // Two nodes fed the same alerts and the same (replicated) log decide identically.
        let clock = ManualClock()
        var leader = Dispatcher(config: Self.config())
        leader.receive([Self.alert("Down", "a", at: clock.nowMs)], nowMs: clock.nowMs)
        var replica = leader
        clock.advance(byMs: 30_000)
        let a = leader.tick(nowMs: clock.nowMs)
        let b = replica.tick(nowMs: clock.nowMs)
        #expect(a.count == 1)
        #expect(a.map(\.idempotencyKey) == b.map(\.idempotencyKey))
        // Once the replica has the log entry, it does not decide to notify again.
        replica.onDelivered(a[0], nowMs: clock.nowMs)
        clock.advance(byMs: 300_000)
        replica.receive([Self.alert("Down", "a", at: clock.nowMs)], nowMs: clock.nowMs)  // still firing
        #expect(replica.tick(nowMs: clock.nowMs).isEmpty)
    }

    @Test func maxAlertsTruncates() {
        let clock = ManualClock()
        var d = Dispatcher(config: Self.config(maxAlerts: 2))
        d.receive((0..<5).map { Self.alert("Down", "i\($0)", at: clock.nowMs) }, nowMs: clock.nowMs)
        clock.advance(byMs: 30_000)
        let ds = d.tick(nowMs: clock.nowMs)
        #expect(ds[0].alerts.count == 2 && ds[0].truncatedAlerts == 3 && ds[0].firing.count == 5)
    }

    @Test func continueRoutesAndGroupByAll() {
        let clock = ManualClock()
        let c = Self.config(
            """
              routes:
                - {matchers: [team=db], receiver: other, group_by: ['...'], continue: true}
                - {matchers: [team=db], receiver: hook}
                - {matchers: [team=x], receiver: blackhole}
            """)
        var d = Dispatcher(config: c)
        d.receive(
            [
                Alert.received(labels: Labels(["alertname": "A", "team": "db", "i": "1"]), startsAtMs: nil, endsAtMs: nil, nowMs: clock.nowMs, resolveTimeoutMs: 300_000),
                Alert.received(labels: Labels(["alertname": "A", "team": "db", "i": "2"]), startsAtMs: nil, endsAtMs: nil, nowMs: clock.nowMs, resolveTimeoutMs: 300_000),
                Alert.received(labels: Labels(["alertname": "A", "team": "x"]), startsAtMs: nil, endsAtMs: nil, nowMs: clock.nowMs, resolveTimeoutMs: 300_000),
            ], nowMs: clock.nowMs)
        // route 1: one group per alert (group_by ...); route 2: one group; route 3: one group.
        #expect(d.groups.count == 4)
        clock.advance(byMs: 30_000)
        let ds = d.tick(nowMs: clock.nowMs)
        #expect(ds.filter { $0.receiver == "other" }.count == 2)
        #expect(ds.filter { $0.receiver == "hook" }.count == 1)
        #expect(ds.filter { $0.receiver == "hook" }.first?.groupKey == #"{}/{team="db"}:{alertname="A"}"#)
        #expect(!ds.contains { $0.receiver == "blackhole" })
    }

    @Test func mutedAlertsAreNotNotified() {
        struct MuteInstanceB: AlertMuter {
            func isMuted(_ alert: Alert, nowMs: Int64) -> Bool { alert.labels.get("instance") == "b" }
        }
        let clock = ManualClock()
        var d = Dispatcher(config: Self.config())
        d.receive([Self.alert("Down", "b", at: clock.nowMs)], nowMs: clock.nowMs)
        clock.advance(byMs: 30_000)
        #expect(d.tick(nowMs: clock.nowMs, muter: MuteInstanceB()).isEmpty)
        clock.advance(byMs: 300_000)
        d.receive([Self.alert("Down", "a", at: clock.nowMs)], nowMs: clock.nowMs)
        let ds = d.tick(nowMs: clock.nowMs, muter: MuteInstanceB())
        #expect(ds.count == 1 && ds[0].alerts.map { $0.labels.get("instance") } == ["a"])
    }

    @Test func limitsAreCountedNotCrashed() {
        var s = DispatcherSettings()
        s.maxAlerts = 2
        s.maxGroups = 1
        var d = Dispatcher(config: Self.config(), settings: s)
        let now: Int64 = 1_000_000
        d.receive([Self.alert("A", "1", at: now), Self.alert("B", "1", at: now), Self.alert("C", "1", at: now)], nowMs: now)
        #expect(d.alerts.count == 2)
        #expect(d.counters.alertsRejectedLimit == 1)
        #expect(d.groups.count == 1 && d.counters.groupsRejectedLimit == 1)
        let bad = d.receive([Alert(labels: .empty, startsAtMs: now, endsAtMs: now, updatedAtMs: now)], nowMs: now)
        #expect(bad.count == 1 && bad[0].1 == .noLabels)
    }

    @Test func notificationOrderIsJobInstanceThenLabels() {
        let now: Int64 = 1
        func a(_ l: [String: String]) -> Alert { Alert(labels: Labels(l), startsAtMs: now, endsAtMs: now + 1, updatedAtMs: now) }
        let xs = [a(["x": "1"]), a(["instance": "b"]), a(["job": "z"]), a(["instance": "a"]), a(["job": "a", "instance": "q"])]
        let sorted = xs.sorted(by: alertNotificationOrder).map(\.labels)
        #expect(sorted == [Labels(["job": "a", "instance": "q"]), Labels(["job": "z"]), Labels(["instance": "a"]), Labels(["instance": "b"]), Labels(["x": "1"])])
    }
}
