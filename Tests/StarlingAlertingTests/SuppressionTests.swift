import Foundation
import StarlingCore
import StarlingTestKit
import Testing

@testable import StarlingAlerting

private func ms(_ s: String) -> [LabelMatcher] { try! MatcherParser().parseList(s) }
private func firing(_ l: [String: String], now: Int64 = 1_000) -> Alert {
    Alert(labels: Labels(l), startsAtMs: now, endsAtMs: now + 300_000, updatedAtMs: now)
}

@Suite struct InhibitionTests {
    let rule = InhibitRule(sourceMatchers: ms(#"severity="critical""#), targetMatchers: ms(#"severity="warning""#), equal: ["cluster"])

    @Test func sourceInhibitsTargetWithEqualLabels() {
        let src = firing(["alertname": "Down", "severity": "critical", "cluster": "a"])
        let inh = Inhibitor(rules: [rule], alerts: [src], nowMs: 2_000)
        #expect(inh.inhibitedBy(Labels(["alertname": "Slow", "severity": "warning", "cluster": "a"])) == src.fingerprint)
        #expect(inh.inhibitedBy(Labels(["alertname": "Slow", "severity": "warning", "cluster": "b"])) == nil)
        #expect(inh.inhibitedBy(Labels(["alertname": "Slow", "severity": "info", "cluster": "a"])) == nil)
    }

    @Test func absentEqualLabelsCountAsEqual() {
        let src = firing(["severity": "critical"])
        let inh = Inhibitor(rules: [rule], alerts: [src], nowMs: 2_000)
        #expect(inh.inhibitedBy(Labels(["severity": "warning"])) == src.fingerprint)
        #expect(inh.inhibitedBy(Labels(["severity": "warning", "cluster": "x"])) == nil)
    }

    @Test func resolvedSourcesDoNotInhibit() {
        let src = Alert(labels: Labels(["severity": "critical"]), startsAtMs: 0, endsAtMs: 1_500, updatedAtMs: 0)
        let inh = Inhibitor(rules: [rule], alerts: [src], nowMs: 2_000)
        #expect(inh.inhibitedBy(Labels(["severity": "warning"])) == nil)
    }

    @Test func anAlertNeverInhibitsItself() {
        // Source and target overlap: any alert with team=db matches both sides.
        let r = InhibitRule(sourceMatchers: ms("team=db"), targetMatchers: ms("team=db"), equal: [])
        let a = firing(["team": "db", "x": "1"])
        let b = firing(["team": "db", "x": "2"])
        let inh = Inhibitor(rules: [r], alerts: [a, b], nowMs: 2_000)
        #expect(inh.inhibitedBy(a.labels) == nil)
        #expect(inh.inhibitedBy(b.labels) == nil)
        // A source that matches only the source side still inhibits a two-sided target.
        let r2 = InhibitRule(sourceMatchers: ms("team=~db|ops"), targetMatchers: ms("team=db"), equal: [])
        let ops = firing(["team": "ops"])
        #expect(Inhibitor(rules: [r2], alerts: [a, ops], nowMs: 2_000).inhibitedBy(a.labels) == ops.fingerprint)
    }
}

@Suite struct SilenceTests {
    @Test func lifecycleOfASilence() throws {
        var rng = SeededRandom(seed: 7)
        var s = Silences()
        let clock = ManualClock(nowMs: 1_000_000)
        let id = try s.upsert(
            Silence(matchers: ms("alertname=Down,env=~prod.*"), startsAtMs: clock.nowMs + 60_000, endsAtMs: clock.nowMs + 3_600_000,
                createdBy: "ana", comment: "deploy"), nowMs: clock.nowMs, using: &rng)
        #expect(id.count == 36 && id.split(separator: "-").count == 5)
        let labels = Labels(["alertname": "Down", "env": "prod-eu"])
        #expect(s.byID[id]?.state(atMs: clock.nowMs) == .pending)
        #expect(s.silencedBy(labels, nowMs: clock.nowMs).isEmpty)
        clock.advance(byMs: 60_000)
        #expect(s.silencedBy(labels, nowMs: clock.nowMs) == [id])
        #expect(s.silencedBy(Labels(["alertname": "Down", "env": "dev"]), nowMs: clock.nowMs).isEmpty)
        clock.advance(byMs: 1_000)
        try s.expire(id: id, nowMs: clock.nowMs)
        #expect(s.byID[id]?.state(atMs: clock.nowMs) == .expired)
        #expect(s.silencedBy(labels, nowMs: clock.nowMs).isEmpty)
        #expect(throws: SilenceError.alreadyExpired(id)) { try s.expire(id: id, nowMs: clock.nowMs) }
        #expect(s.list(states: [.expired], nowMs: clock.nowMs).map(\.id) == [id])
        clock.advance(byMs: s.settings.expiredRetentionMs)
        s.collectGarbage(nowMs: clock.nowMs)
        #expect(s.byID.isEmpty)
    }

    @Test func expiringAPendingSilenceClosesIt() throws {
        var rng = SeededRandom(seed: 1)
        var s = Silences()
        let id = try s.upsert(
            Silence(matchers: ms("a=b"), startsAtMs: 5_000, endsAtMs: 9_000, createdBy: "x", comment: "y"), nowMs: 1_000, using: &rng)
        try s.expire(id: id, nowMs: 2_000)
        #expect(s.byID[id]!.startsAtMs == 2_000 && s.byID[id]!.endsAtMs == 2_000)
    }

    @Test func updatesFollowAlertmanager() throws {
        var rng = SeededRandom(seed: 2)
        var s = Silences()
        let base = Silence(matchers: ms("a=b"), startsAtMs: 1_000, endsAtMs: 100_000, createdBy: "x", comment: "y")
        let id = try s.upsert(base, nowMs: 1_000, using: &rng)
        // Extending an active silence keeps its ID.
        var longer = s.byID[id]!
        longer.endsAtMs = 200_000
        #expect(try s.upsert(longer, nowMs: 2_000, using: &rng) == id)
        // Changing its matchers expires it and creates a new one.
        var other = s.byID[id]!
        other.matchers = ms("a=c")
        let newID = try s.upsert(other, nowMs: 3_000, using: &rng)
        #expect(newID != id)
        #expect(s.byID[id]!.state(atMs: 3_000) == .expired)
        #expect(s.byID[newID]!.state(atMs: 3_000) == .active)
        #expect(throws: SilenceError.notFound("nope")) {
            var g = SeededRandom(seed: 3)
            var x = base
            x.id = "nope"
            _ = try s.upsert(x, nowMs: 3_000, using: &g)
        }
    }

    @Test func validation() {
        var rng = SeededRandom(seed: 3)
        var s = Silences()
        func err(_ x: Silence) -> SilenceError? {
            do {
                _ = try s.upsert(x, nowMs: 10_000, using: &rng)
                return nil
            } catch { return error }
        }
        let ok = Silence(matchers: ms("a=b"), startsAtMs: 10_000, endsAtMs: 20_000, createdBy: "x", comment: "y")
        var x = ok
        x.matchers = []
        #expect(err(x) == .noMatchers)
        x = ok
        x.matchers = ms(#"a=~".*""#)
        #expect(err(x) == .matchesEverything)
        x = ok
        x.endsAtMs = 5_000
        #expect(err(x) == .endBeforeStart)
        x = ok
        x.startsAtMs = 1_000
        x.endsAtMs = 9_000
        #expect(err(x) == .endInPast)
        x = ok
        x.createdBy = ""
        #expect(err(x) == .missingCreator)
        x = ok
        x.comment = ""
        #expect(err(x) == .missingComment)
        var small = SilenceSettings()
        small.maxSilences = 1
        s = Silences(settings: small)
        #expect(err(ok) == nil)
        #expect(err(ok) == .tooManySilences(limit: 1))
    }

    @Test func idsAreDeterministicForASeed() throws {
        var a = SeededRandom(seed: 9)
        var b = SeededRandom(seed: 9)
        #expect(makeUUID(&a) == makeUUID(&b))
        let u = makeUUID(&a)
        let parts = u.split(separator: "-")
        #expect(parts.map(\.count) == [8, 4, 4, 4, 12])
        #expect(parts[2].first == "4")
    }
}

@Suite struct MaintenanceWindowTests {
    /// Milliseconds of a UTC wall-clock time.
    static func utc(_ y: Int, _ mo: Int, _ d: Int, _ h: Int, _ mi: Int) -> Int64 {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        let date = cal.date(from: DateComponents(year: y, month: mo, day: d, hour: h, minute: mi))!
        return Int64(date.timeIntervalSince1970 * 1000)
    }

    @Test func weeklyWindowInAZoneFollowsDST() throws {
        // Sundays 02:00–04:00 in Paris. 2026-03-22 is a Sunday before the DST change (UTC+1);
        // 2026-04-05 a Sunday after it (UTC+2).
        let w = try MaintenanceWindow.weekly(
            id: "w", name: "sunday", matchers: ms("env=prod"), weekdays: [0], start: "02:00", end: "04:00", timeZoneID: "Europe/Paris")
        #expect(!w.isOpen(atMs: Self.utc(2026, 3, 22, 0, 59)))
        #expect(w.isOpen(atMs: Self.utc(2026, 3, 22, 1, 0)))
        #expect(w.openedAtMs(atMs: Self.utc(2026, 3, 22, 2, 30)) == Self.utc(2026, 3, 22, 1, 0))
        #expect(!w.isOpen(atMs: Self.utc(2026, 3, 22, 3, 0)))
        #expect(w.isOpen(atMs: Self.utc(2026, 4, 5, 0, 0)))
        #expect(!w.isOpen(atMs: Self.utc(2026, 4, 5, 2, 0)))
        #expect(!w.isOpen(atMs: Self.utc(2026, 3, 23, 1, 30)))  // Monday
        #expect(w.mutes(Labels(["env": "prod"]), atMs: Self.utc(2026, 3, 22, 1, 30)))
        #expect(!w.mutes(Labels(["env": "dev"]), atMs: Self.utc(2026, 3, 22, 1, 30)))
    }

    @Test func weeklyWindowPastMidnightBelongsToItsStartDay() throws {
        // Fridays 22:00–02:00 UTC: open early Saturday, not early Friday.
        let w = try MaintenanceWindow.weekly(
            id: "w", name: "n", matchers: ms("a=b"), weekdays: [5], start: "22:00", end: "02:00", timeZoneID: "UTC")
        // 2026-11-27 is a Friday.
        #expect(w.isOpen(atMs: Self.utc(2026, 11, 27, 23, 0)))
        #expect(w.isOpen(atMs: Self.utc(2026, 11, 28, 1, 59)))
        #expect(!w.isOpen(atMs: Self.utc(2026, 11, 28, 2, 0)))
        #expect(!w.isOpen(atMs: Self.utc(2026, 11, 27, 1, 0)))
    }

    @Test func cronWindow() throws {
        // 03:30 on weekdays, for 45 minutes, New York time (UTC-5 in November).
        let w = try MaintenanceWindow(
            id: "c", name: "n", matchers: ms("a=b"), schedule: .cron(try CronExpression("30 3 * * mon-fri"), durationMs: 45 * 60_000),
            timeZoneID: "America/New_York")
        #expect(w.isOpen(atMs: Self.utc(2026, 11, 25, 8, 30)))  // Wednesday 03:30 local
        #expect(w.isOpen(atMs: Self.utc(2026, 11, 25, 9, 14)))
        #expect(!w.isOpen(atMs: Self.utc(2026, 11, 25, 9, 15)))
        #expect(!w.isOpen(atMs: Self.utc(2026, 11, 25, 8, 29)))
        #expect(!w.isOpen(atMs: Self.utc(2026, 11, 29, 8, 40)))  // Sunday
    }

    @Test func cronSyntax() throws {
        let c = try CronExpression("*/15 0-6/2 1,15 jan-mar,dec 7")
        #expect(c.minutes == [0, 15, 30, 45])
        #expect(c.hours == [0, 2, 4, 6])
        #expect(c.daysOfMonth == [1, 15])
        #expect(c.months == [1, 2, 3, 12])
        #expect(c.weekdays == [0])
        // Both day fields restricted: either matches.
        #expect(c.matchesDay(dayOfMonth: 2, month: 1, weekday: 0))
        #expect(c.matchesDay(dayOfMonth: 15, month: 2, weekday: 3))
        #expect(!c.matchesDay(dayOfMonth: 2, month: 2, weekday: 3))
        #expect(!c.matchesDay(dayOfMonth: 1, month: 4, weekday: 0))
        for bad in ["* * * *", "60 * * * *", "* 24 * * *", "5-1 * * * *", "*/0 * * * *", "* * * foo *", "1,,2 * * * *"] {
            #expect(throws: CronError.self, "\(bad)") { try CronExpression(bad) }
        }
        do {
            _ = try CronExpression("* 25 * * *")
        } catch {
            #expect(error.field == "hour")
        }
    }

    @Test func validation() {
        #expect(throws: MaintenanceWindowError.unknownTimeZone("Mars/Base")) {
            try MaintenanceWindow.weekly(id: "w", name: "n", matchers: ms("a=b"), weekdays: [1], start: "01:00", end: "02:00", timeZoneID: "Mars/Base")
        }
        #expect(throws: MaintenanceWindowError.invalidTime("1:00")) {
            try MaintenanceWindow.weekly(id: "w", name: "n", matchers: ms("a=b"), weekdays: [1], start: "1:00", end: "02:00", timeZoneID: "UTC")
        }
        #expect(throws: MaintenanceWindowError.invalidWeekdays) {
            try MaintenanceWindow.weekly(id: "w", name: "n", matchers: ms("a=b"), weekdays: [7], start: "01:00", end: "02:00", timeZoneID: "UTC")
        }
        #expect(throws: MaintenanceWindowError.noMatchers) {
            try MaintenanceWindow.weekly(id: "w", name: "n", matchers: [], weekdays: [1], start: "01:00", end: "02:00", timeZoneID: "UTC")
        }
    }
}

@Suite struct SuppressorTests {
    @Test func suppressedAlertsAreListedWithStatusAndNotNotified() throws {
        let config = try AlertingConfig.parse(
            yaml: """
                route: {receiver: hook, group_by: [alertname], group_wait: 0s}
                receivers: [{name: hook, webhook_configs: [{url: 'http://h/x'}]}]
                inhibit_rules:
                  - source_matchers: [severity=critical]
                    target_matchers: [severity=warning]
                    equal: [cluster]
                """)
        var rng = SeededRandom(seed: 5)
        let clock = ManualClock()
        var d = Dispatcher(config: config)
        let crit = firing(["alertname": "Down", "severity": "critical", "cluster": "a"], now: clock.nowMs)
        let warn = firing(["alertname": "Slow", "severity": "warning", "cluster": "a"], now: clock.nowMs)
        let silenced = firing(["alertname": "Noise", "severity": "info"], now: clock.nowMs)
        let plain = firing(["alertname": "Disk", "severity": "info"], now: clock.nowMs)
        d.receive([crit, warn, silenced, plain], nowMs: clock.nowMs)
        var silences = Silences()
        let sid = try silences.upsert(
            Silence(matchers: ms("alertname=Noise"), startsAtMs: clock.nowMs, endsAtMs: clock.nowMs + 3_600_000, createdBy: "a", comment: "c"),
            nowMs: clock.nowMs, using: &rng)
        let sup = Suppressor(dispatcher: d, silences: silences, windows: [], nowMs: clock.nowMs)
        #expect(sup.status(of: warn, nowMs: clock.nowMs) == AlertStatus(state: .suppressed, silencedBy: [], inhibitedBy: [crit.fingerprint], mutedByWindows: []))
        #expect(sup.status(of: silenced, nowMs: clock.nowMs).silencedBy == [sid])
        #expect(sup.status(of: plain, nowMs: clock.nowMs).state == .active)
        #expect(sup.status(of: crit, nowMs: clock.nowMs).state == .active)
        let ds = d.tick(nowMs: clock.nowMs, muter: sup)
        #expect(Set(ds.map { $0.groupLabels.get("alertname")! }) == ["Down", "Disk"])
        // Still held: suppression never drops alerts.
        #expect(d.alerts.count == 4 && d.groups.count == 4)
    }
}
