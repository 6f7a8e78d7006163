import StarlingCore
import Testing

@testable import StarlingAlerting

let sampleConfig = """
    global:
      resolve_timeout: 2m
      smtp_smarthost: 'mail:25'
    route:
      receiver: default
      group_by: [alertname, cluster]
      group_wait: 10s
      routes:
        - matchers: ['team="db"', 'severity=~"critical|page"']
          receiver: db-pager
          group_interval: 1m
          continue: true
          routes:
            - match: {env: staging}
              receiver: db-staging
              group_by: ['...']
        - match_re:
            team: "db|web"
          receiver: web
          repeat_interval: 1h
        - matchers: ['{team="ops", region!="eu"}']
          receiver: ops
    receivers:
      - name: default
        webhook_configs:
          - url: http://hooks.local/default
      - name: db-pager
        webhook_configs:
          - url: https://pager.local/x
            max_alerts: 10
            send_resolved: false
      - name: db-staging
      - name: web
      - name: ops
    inhibit_rules:
      - source_matchers: [severity="critical"]
        target_matchers: [severity="warning"]
        equal: [alertname, cluster]
      - source_match: {a: b}
        target_match_re: {c: "d.*"}
    """

@Suite struct RoutingConfigTests {
    @Test func parsesAndInheritsSettings() throws {
        let c = try AlertingConfig.parse(yaml: sampleConfig)
        #expect(c.resolveTimeoutMs == 120_000)
        #expect(c.ignoredKeys == ["global.smtp_smarthost"])
        let t = c.tree
        #expect(t.routes.count == 5)
        let root = t.root
        #expect(root.receiver == "default" && root.groupWaitMs == 10_000)
        #expect(root.groupIntervalMs == AlertingConfig.defaultGroupIntervalMs)
        #expect(root.repeatIntervalMs == AlertingConfig.defaultRepeatIntervalMs)
        let db = t.routes[1]
        #expect(db.receiver == "db-pager" && db.continueMatching)
        #expect(db.groupBy == .labels(["alertname", "cluster"]))  // inherited
        #expect(db.groupWaitMs == 10_000 && db.groupIntervalMs == 60_000)
        let staging = t.routes[2]
        #expect(staging.parent == 1)
        #expect(staging.groupBy == .all)
        #expect(staging.groupIntervalMs == 60_000)  // from its parent, not the root
        #expect(t.routes[3].repeatIntervalMs == 3_600_000)
        #expect(c.receiver(named: "db-pager")?.webhooks == [WebhookConfig(url: "https://pager.local/x", maxAlerts: 10, sendResolved: false)])
        #expect(c.receiver(named: "default")?.webhooks.first?.sendResolved == true)
        #expect(c.inhibitRules.count == 2)
        #expect(c.inhibitRules[0].equal == ["alertname", "cluster"])
        #expect(c.inhibitRules[1].targetMatchers.first?.kind == .regexMatch)
    }

    @Test func routeKeysFollowAlertmanager() throws {
        let t = try AlertingConfig.parse(yaml: sampleConfig).tree
        #expect(t.root.key == "{}")
        // Sorted by name, then value; no spaces.
        #expect(t.routes[1].key == #"{}/{severity=~"critical|page",team="db"}"#)
        #expect(t.routes[2].key == #"{}/{severity=~"critical|page",team="db"}/{env="staging"}"#)
        #expect(t.routes[4].key == #"{}/{region!="eu",team="ops"}"#)
    }

    @Test func matchingFollowsContinueAndFallback() throws {
        let t = try AlertingConfig.parse(yaml: sampleConfig).tree
        func receivers(_ l: [String: String]) -> [String] { t.match(Labels(l)).map(\.receiver) }
        // Matches db (continue) → its staging child, then also web.
        #expect(receivers(["team": "db", "severity": "page", "env": "staging"]) == ["db-staging", "web"])
        // db matches but no child: db itself; continue → web.
        #expect(receivers(["team": "db", "severity": "critical"]) == ["db-pager", "web"])
        // db's matchers fail; web matches and stops.
        #expect(receivers(["team": "db", "severity": "warning"]) == ["web"])
        // ops requires region != eu; an absent region is "" which is != "eu".
        #expect(receivers(["team": "ops"]) == ["ops"])
        #expect(receivers(["team": "ops", "region": "eu"]) == ["default"])
        #expect(receivers([:]) == ["default"])
    }

    @Test func firstMatchingChildStopsWithoutContinue() throws {
        let t = try AlertingConfig.parse(
            yaml: """
                route:
                  receiver: r
                  routes:
                    - {matchers: [a=1], receiver: x}
                    - {matchers: [a=~".+"], receiver: y}
                    - {matchers: [a=~".+"], receiver: z, continue: true}
                    - {matchers: [b=2], receiver: w}
                receivers: [{name: r}, {name: x}, {name: y}, {name: z}, {name: w}]
                """
        ).tree
        #expect(t.match(Labels(["a": "1", "b": "2"])).map(\.receiver) == ["x"])
        #expect(t.match(Labels(["a": "2", "b": "2"])).map(\.receiver) == ["y"])
        #expect(t.match(Labels(["b": "2"])).map(\.receiver) == ["w"])
    }

    private func error(_ yaml: String) -> ConfigError? {
        do {
            _ = try AlertingConfig.parse(yaml: yaml)
            return nil
        } catch { return error }
    }

    @Test func validationErrorsNameTheKeyPath() {
        let base = "receivers: [{name: r}]\n"
        var e = error(base + "route: {receiver: r, matchers: [a=b]}")
        #expect(e?.path == "route" && e?.message.contains("must not have matchers") == true)
        e = error(base + "route: {group_by: [a]}")
        #expect(e?.path == "route.receiver")
        e = error(base + "route: {receiver: nope}")
        #expect(e?.path == "route.receiver" && e?.message.contains("undefined receiver") == true)
        e = error(base + "route: {receiver: r, routes: [{receiver: r}, {receiver: q}]}")
        #expect(e?.path == "route.routes[1].receiver")
        e = error(base + "route: {receiver: r, routes: [{group_by: [a, '...']}]}")
        #expect(e?.path == "route.routes[0].group_by")
        e = error(base + "route: {receiver: r, routes: [{group_by: [a, a]}]}")
        #expect(e?.path == "route.routes[0].group_by[1]")
        e = error(base + "route: {receiver: r, routes: [{group_wait: 5x}]}")
        #expect(e?.path == "route.routes[0].group_wait" && e?.message.contains("invalid duration") == true)
        e = error(base + "route: {receiver: r, repeat_interval: 0s}")
        #expect(e?.path == "route.repeat_interval")
        e = error(base + "route: {receiver: r, routes: [{matchers: ['a=\"b']}]}")
        #expect(e?.path == "route.routes[0].matchers[0]" && e?.message.contains("unterminated") == true)
        e = error(base + "route: {receiver: r, recevier: x}")
        #expect(e?.path == "route.recevier" && e?.message == "unknown field")
        e = error("route: {receiver: r}\nreceivers: [{name: r}, {name: r}]")
        #expect(e?.path == "receivers[1].name")
        e = error("route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url: 'ftp://x'}]}]")
        #expect(e?.path == "receivers[0].webhook_configs[0].url")
        e = error("route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{max_alerts: 3}]}]")
        #expect(e?.path == "receivers[0].webhook_configs[0].url")
        e = error("route: {receiver: r}\nreceivers: [{name: r, slack_configs: [{}]}]")
        #expect(e?.path == "receivers[0].slack_configs" && e?.message.contains("not supported") == true)
        e = error(base + "route: {receiver: r, continue: true}")
        #expect(e?.path == "route.continue")
        e = error(base)
        #expect(e?.path == "route")
        e = error(base + "route: {receiver: r, routes: [{match_re: {a: '('}}]}")
        #expect(e?.path == "route.routes[0].match_re.a")
        e = error(base + "route: {receiver: r, routes: [{mute_time_intervals: [x]}]}")
        #expect(e?.path == "route.routes[0].mute_time_intervals")
        e = error("route: [")
        #expect(e?.message.hasPrefix("invalid YAML") == true)
        #expect(error(base + "route:\n  receiver: r\n  bogus: 1")?.line == 4)
    }

    @Test func routeLimitsAreEnforced() {
        var limits = AlertingConfigLimits()
        limits.maxRoutes = 2
        #expect(throws: ConfigError.self) {
            try AlertingConfig.parse(yaml: "receivers: [{name: r}]\nroute: {receiver: r, routes: [{}, {}]}", limits: limits)
        }
        limits.maxRoutes = 100
        limits.maxRouteDepth = 1
        #expect(throws: ConfigError.self) {
            try AlertingConfig.parse(yaml: "receivers: [{name: r}]\nroute: {receiver: r, routes: [{routes: [{}]}]}", limits: limits)
        }
    }

    @Test func durations() {
        #expect(parsePrometheusDurationMs("1h30m") == 5_400_000)
        #expect(parsePrometheusDurationMs("250ms") == 250)
        #expect(parsePrometheusDurationMs("1d") == 86_400_000)
        #expect(parsePrometheusDurationMs("0") == 0)
        #expect(parsePrometheusDurationMs("1m1h") == nil)  // out of order
        #expect(parsePrometheusDurationMs("5") == nil)
        #expect(parsePrometheusDurationMs("") == nil)
        #expect(parsePrometheusDurationMs("99999999999999999999s") == nil)
        #expect(formatPrometheusDuration(5_400_000) == "1h30m")
        #expect(formatPrometheusDuration(0) == "0s")
    }
}
