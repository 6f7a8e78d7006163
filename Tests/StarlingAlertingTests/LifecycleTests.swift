import StarlingTestKit
import Testing

@testable import StarlingAlerting

@Suite struct LifecycleTests {
    typealias L = AlertLifecycle
    let minute: Int64 = 60_000

    @Test func unacknowledgedAlertEscalatesOnSchedule() {
        let clock = ManualClock()
        let t0 = clock.nowMs
        var l = L(id: "a", nowMs: t0)
        #expect(l.state == .new && l.severity == .low)
        #expect(l.nextDeadlineMs == t0 + 15 * minute)
        clock.advance(byMs: 15 * minute - 1)
        #expect(l.tick(nowMs: clock.nowMs).isEmpty)
        clock.advance(byMs: 1)
        let t = l.tick(nowMs: clock.nowMs)
        #expect(t.map(\.to) == [.escalated] && l.severity == .high)
        clock.advance(byMs: 5 * minute)
        #expect(l.tick(nowMs: clock.nowMs).map(\.to) == [.critical])
        #expect(l.severity == .critical && l.nextDeadlineMs == nil)
    }

    @Test func lateTickRecordsEachTransitionAtItsDeadline() {
        var l = L(id: "a", nowMs: 0)
        let t = l.tick(nowMs: 60 * minute)
        #expect(t.map(\.to) == [.escalated, .critical])
        #expect(t.map(\.atMs) == [15 * minute, 20 * minute])
        #expect(l.history.map(\.reason) == [.opened, .escalationTimeout, .escalationTimeout])
    }

    @Test func acknowledgementStopsEscalationUntilItExpires() throws {
        var p = EscalationPolicy()
        p.acknowledgementTimeoutMs = 30 * minute
        var l = L(id: "a", policy: p, nowMs: 0)
        let ack = try l.acknowledge(by: "ana", comment: "looking", nowMs: 10 * minute)
        #expect(ack.actor == .user("ana") && ack.comment == "looking" && ack.from == .new)
        #expect(l.state == .acknowledged && l.severity == .low)
        #expect(l.tick(nowMs: 39 * minute).isEmpty)
        // Acknowledged from New: expires into Escalated, whose 5-minute timer starts then.
        #expect(l.tick(nowMs: 40 * minute).map { ($0.to, $0.reason) }.first! == (.escalated, .acknowledgementExpired))
        #expect(l.tick(nowMs: 45 * minute).map(\.to) == [.critical])
        // Critical acknowledged and expired stays critical (re-pages).
        _ = try l.acknowledge(by: "bo", comment: "", nowMs: 46 * minute, expiresAfterMs: minute)
        #expect(l.tick(nowMs: 47 * minute).map(\.to) == [.critical])
        #expect(l.severity == .critical)
    }

    @Test func unacknowledgeReturnsToThePreviousLevelAndRestartsItsTimer() throws {
        var l = L(id: "a", nowMs: 0)
        l.tick(nowMs: 16 * minute)  // escalated at 15
        _ = try l.acknowledge(by: "ana", comment: "", nowMs: 17 * minute)
        let u = try l.unacknowledge(by: "ana", comment: "wrong alert", nowMs: 30 * minute)
        #expect(u.to == .escalated && l.severity == .high)
        #expect(l.nextDeadlineMs == 35 * minute)
        #expect(throws: LifecycleError.invalid(action: "unacknowledge", state: .escalated)) {
            try l.unacknowledge(by: "ana", comment: "", nowMs: 31 * minute)
        }
    }

    @Test func manualResolveAndInvalidActions() throws {
        var l = L(id: "a", nowMs: 0)
        _ = try l.acknowledge(by: "ana", comment: "", nowMs: minute)
        #expect(throws: LifecycleError.invalid(action: "acknowledge", state: .acknowledged)) {
            try l.acknowledge(by: "bo", comment: "", nowMs: 2 * minute)
        }
        let r = try l.resolve(by: "ana", comment: "fixed disk", nowMs: 3 * minute)
        #expect(r.to == .resolved && r.reason == .resolvedManually)
        #expect(!l.isOpen && l.nextDeadlineMs == nil)
        #expect(throws: LifecycleError.self) { try l.resolve(by: "ana", comment: "", nowMs: 4 * minute) }
        #expect(throws: LifecycleError.self) { try l.acknowledge(by: "ana", comment: "", nowMs: 4 * minute) }
        #expect(l.history.map(\.to) == [.new, .acknowledged, .resolved])
    }

    @Test func conditionClearingAutoResolvesUnlessManualResolutionIsRequired() {
        var auto = L(id: "a", nowMs: 0)
        let t = auto.onConditionCleared(nowMs: 16 * minute)
        // The escalation due at 15 min happened before the clear at 16.
        #expect(t.map(\.to) == [.escalated, .resolved])
        #expect(t.last?.actor == .system && t.last?.reason == .conditionCleared)

        var p = EscalationPolicy()
        p.requireManualResolution = true
        var manual = L(id: "b", policy: p, nowMs: 0)
        #expect(manual.onConditionCleared(nowMs: minute).isEmpty)
        #expect(manual.state == .new && !manual.conditionActive)
        manual.tick(nowMs: 15 * minute)
        #expect(manual.state == .escalated)  // still escalates: nobody has looked at it
        manual.onConditionFiring(nowMs: 16 * minute)
        #expect(manual.conditionActive)
    }

    @Test func configurableAndDisabledTimers() {
        var p = EscalationPolicy()
        p.newToEscalatedMs = 2 * minute
        p.escalatedToCriticalMs = nil
        var l = L(id: "a", policy: p, nowMs: 0)
        #expect(l.tick(nowMs: 100 * minute).map(\.to) == [.escalated])
        #expect(l.nextDeadlineMs == nil)
    }

    @Test func historyIsBounded() throws {
        var p = EscalationPolicy()
        p.maxHistory = 3
        p.newToEscalatedMs = nil
        var l = L(id: "a", policy: p, nowMs: 0)
        for i in 0..<5 {
            _ = try l.acknowledge(by: "u", comment: "\(i)", nowMs: Int64(i) * 10)
            _ = try l.unacknowledge(by: "u", comment: "\(i)", nowMs: Int64(i) * 10 + 5)
        }
        #expect(l.history.count == 3 && l.historyDropped == 8)
        #expect(l.history.last?.reason == .unacknowledged)
    }
}
