import Foundation
import StarlingCore
import Testing

@testable import StarlingAlerting

private func firing(_ l: [String: String], now: Int64 = 1_000) -> Alert {
    Alert(labels: Labels(l), startsAtMs: now, endsAtMs: now + 300_000, updatedAtMs: now)
}

/// The dependency topology (`dependencies:`) and escalation policies (`escalation_policies:`)
/// of the alerting configuration.
@Suite struct DependencyTests {
    static let config = """
        route: {receiver: hook}
        receivers: [{name: hook}]
        dependencies:
          - name: service-on-host
            upstream_matchers: ['alertname="HostDown"']
            downstream_matchers: ['service=~".+"']
            equal: [host]
          - name: host-in-rack
            upstream_matchers: ['alertname="RackDown"']
            downstream_matchers: ['alertname="HostDown"']
            equal: [rack]
        escalation_policies:
          - name: databases
            matchers: ['team="db"', 'severity="page"']
            escalate_after: 2m
            acknowledgement_timeout: 0s
          - name: everything-paged
            matchers: ['severity="page"']
            critical_after: 1m
            require_manual_resolution: true
        """

    @Test func aServiceAlertIsInhibitedAndLinkedToTheRootCause() throws {
        let c = try AlertingConfig.parse(yaml: Self.config)
        #expect(c.dependencies.map(\.dependency) == ["service-on-host", "host-in-rack"])
        let rack = firing(["alertname": "RackDown", "rack": "r1"])
        let host = firing(["alertname": "HostDown", "host": "db-1", "rack": "r1"])
        let other = firing(["alertname": "HostDown", "host": "db-2", "rack": "r2"])
        let inh = Inhibitor(rules: c.inhibitRules + c.dependencies, alerts: [rack, host, other], nowMs: 2_000)

        let service = Labels(["alertname": "CheckoutErrors", "service": "checkout", "host": "db-1"])
        #expect(inh.inhibitedBy(service) == host.fingerprint)
        let cause = try #require(inh.probableCause(service))
        #expect(cause.fingerprint == rack.fingerprint && cause.via == ["service-on-host", "host-in-rack"])
        // The host's own alert is linked to the rack; the rack's to nothing.
        #expect(inh.probableCause(host.labels)?.fingerprint == rack.fingerprint)
        #expect(inh.probableCause(rack.labels) == nil)
        // Another host (other rack, rack fine): its services link to the host only.
        let s2 = Labels(["alertname": "CheckoutErrors", "service": "checkout", "host": "db-2"])
        #expect(inh.probableCause(s2)?.fingerprint == other.fingerprint && inh.probableCause(s2)?.via == ["service-on-host"])
        // A service on a healthy host: neither inhibited nor linked.
        let s3 = Labels(["alertname": "CheckoutErrors", "service": "checkout", "host": "db-3"])
        #expect(inh.inhibitedBy(s3) == nil && inh.probableCause(s3) == nil)
    }

    @Test func inhibitRulesAreNotProbableCauses() throws {
        let plain = InhibitRule(sourceMatchers: try MatcherParser().parseList("severity=critical"),
                                targetMatchers: try MatcherParser().parseList("severity=warning"), equal: [])
        let src = firing(["alertname": "A", "severity": "critical"])
        let inh = Inhibitor(rules: [plain], alerts: [src], nowMs: 2_000)
        let target = Labels(["alertname": "B", "severity": "warning"])
        #expect(inh.inhibitedBy(target) == src.fingerprint && inh.probableCause(target) == nil)
    }

    @Test func theFirstMatchingPolicySetsTheTimers() throws {
        let c = try AlertingConfig.parse(yaml: Self.config)
        let base = EscalationPolicy()
        let (db, dbName) = c.escalation(for: Labels(["team": "db", "severity": "page"]), base: base)
        #expect(dbName == "databases" && db.newToEscalatedMs == 120_000 && db.escalatedToCriticalMs == base.escalatedToCriticalMs)
        #expect(db.acknowledgementTimeoutMs == 0 && !db.requireManualResolution)
        let (web, webName) = c.escalation(for: Labels(["team": "web", "severity": "page"]), base: base)
        #expect(webName == "everything-paged" && web.escalatedToCriticalMs == 60_000 && web.requireManualResolution)
        let (none, noName) = c.escalation(for: Labels(["severity": "info"]), base: base)
        #expect(noName == nil && none == base)

        // The lifecycle follows the policy's timers: New → Escalated after 2 minutes.
        var inc = AlertLifecycle(id: "x", policy: db, nowMs: 0)
        #expect(inc.tick(nowMs: 119_999).isEmpty && inc.state == .new)
        #expect(inc.tick(nowMs: 120_000).map(\.to) == [.escalated])
    }

    @Test func badTopologyAndPoliciesAreNamed() {
        func error(_ extra: String) -> String {
            do {
                _ = try AlertingConfig.parse(yaml: "route: {receiver: hook}\nreceivers: [{name: hook}]\n" + extra)
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        #expect(error("dependencies:\n  - name: x\n    downstream_matchers: ['a=b']\n").contains("dependencies[0].upstream_matchers: missing"))
        #expect(error("dependencies:\n  - upstream_matchers: ['a=b']\n    downstream_matchers: ['c=d']\n").contains("dependencies[0].name: missing"))
        #expect(error("dependencies:\n  - {name: x, upstream_matchers: ['a=b'], downstream_matchers: ['c=d']}\n  - {name: x, upstream_matchers: ['a=b'], downstream_matchers: ['c=d']}\n")
            .contains("duplicate dependency name"))
        #expect(error("escalation_policies:\n  - {name: p, matchers: ['a=b'], escalate_after: 0s}\n").contains("escalation_policies[0].escalate_after: must be positive"))
        #expect(error("escalation_policies:\n  - {name: p, escalate_after: 1m}\n").contains("escalation_policies[0].matchers: missing"))
        #expect(error("escalation_policies:\n  - {name: p, matchers: ['a=b'], require_manual_resolution: maybe}\n").contains("expected true or false"))
        #expect(error("escalation_policies:\n  - {name: p, matchers: ['a=b'], paging: yes}\n").contains("paging"))
    }
}
