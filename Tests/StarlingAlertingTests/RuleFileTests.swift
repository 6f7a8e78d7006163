import StarlingAlerting
import StarlingCore
import Testing

@Suite struct TemplateTests {
    static func render(_ t: String, labels: [String: String] = ["instance": "a:9100", "job": "node"], value: Double = 0.5) throws -> String {
        try AlertTemplate(t).render(.init(labels: labels, value: value, externalLabels: ["dc": "eu"], externalURL: "http://s"))
    }

    @Test func variablesFieldsAndPipelines() throws {
        #expect(try Self.render("{{ $labels.instance }} / {{ .Labels.job }}") == "a:9100 / node")
        #expect(try Self.render("{{ $labels.missing }}|") == "|")
        #expect(try Self.render("{{ $value }}") == "0.5")
        #expect(try Self.render("{{ $value }}", value: 1e6) == "1e+06")
        #expect(try Self.render("{{ .Value | printf \"%.1f\" }} {{ printf \"%s=%q\" \"a\" \"b\" }}") == "0.5 a=\"b\"")
        #expect(try Self.render("{{ $externalLabels.dc }} {{ $externalURL }}") == "eu http://s")
        #expect(try Self.render("{{ $x := \"v\" }}{{ $x }}") == "v")
        #expect(try Self.render("a  {{- \" b \" -}}  c") == "a b c")
        #expect(try Self.render("{{/* note */}}x") == "x")
        #expect(try Self.render("{{ index $labels \"job\" }} {{ toUpper \"x\" }} {{ title \"hello world\" }}") == "node X Hello World")
        #expect(try Self.render("{{ printf \"%d\" $value }}") == "%!d(float64=0.5)")
    }

    @Test func conditionals() throws {
        let t = "{{ if gt $value 1.0 }}big{{ else if eq $labels.job \"node\" }}node{{ else }}small{{ end }}"
        #expect(try Self.render(t, value: 2) == "big")
        #expect(try Self.render(t) == "node")
        #expect(try Self.render(t, labels: [:]) == "small")
        #expect(try Self.render("{{ if and (ne $labels.job \"x\") (not false) }}y{{ end }}") == "y")
    }

    @Test func humanizeMatchesPrometheus() throws {
        #expect(try Self.render("{{ humanize 1500 }} {{ humanize 0.002 }} {{ humanize 0 }} {{ humanize 1234567 }}") == "1.5k 2m 0 1.235M")
        #expect(try Self.render("{{ humanize1024 2048 }} {{ humanize1024 1 }}") == "2ki 1")
        #expect(try Self.render("{{ humanizeDuration 3725 }} {{ humanizeDuration 90000 }} {{ humanizeDuration 0.25 }} {{ humanizeDuration 5 }}") == "1h 2m 5s 1d 1h 0m 0s 250ms 5s")
        #expect(try Self.render("{{ humanizePercentage 0.1234 }}") == "12.34%")
        #expect(try Self.render("{{ humanizeTimestamp 1435065584.128 }}") == "2015-06-23 13:19:44.128 +0000 UTC")
    }

    @Test func errorsNameTheProblem() {
        #expect(throws: TemplateError.self) { try AlertTemplate("{{ $labels.x ") }
        #expect((try? AlertTemplate("{{ range $labels }}x{{ end }}")) == nil)
        #expect((try? AlertTemplate("{{ query \"up\" }}")) == nil)
        #expect((try? AlertTemplate("{{ nosuch 1 }}")) == nil)
        #expect((try? AlertTemplate("{{ if true }}x")) == nil)
        #expect((try? AlertTemplate("{{ end }}")) == nil)
        do {
            _ = try AlertTemplate("ok {{ nosuch 1 }}")
        } catch {
            #expect(error.offset >= 3 && error.message.contains("nosuch"), "\(error)")
        }
        // A rendering error (wrong argument count) is thrown, not printed.
        #expect((try? Self.render("{{ humanize }}")) == nil)
    }
}

@Suite struct RuleFileTests {
    @Test func parsesGroupsAndRules() throws {
        let groups = try RuleFiles.parse(yaml: """
            groups:
              - name: g
                interval: 30s
                limit: 10
                rules:
                  - record: job:up:sum
                    expr: sum by (job) (up)
                    labels: {team: ops}
                  - alert: Down
                    expr: up == 0
                    for: 5m
                    keep_firing_for: 1m
                    labels: {severity: page}
                    annotations: {summary: "{{ $labels.instance }} down"}
            """, source: "a.yml")
        #expect(groups.count == 1)
        let g = groups[0]
        #expect(g.name == "g" && g.intervalMs == 30_000 && g.limit == 10 && g.key == "a.yml;g")
        guard case .recording(let r) = g.rules[0], case .alerting(let a) = g.rules[1] else {
            Issue.record("wrong rule kinds")
            return
        }
        #expect(r.record == "job:up:sum" && r.labels.map(\.0) == ["team"])
        #expect(a.name == "Down" && a.forMs == 300_000 && a.keepFiringForMs == 60_000)
        #expect(a.annotations.first?.0 == "summary")
    }

    static func error(_ yaml: String) -> String {
        do {
            _ = try RuleFiles.parse(yaml: yaml, source: "f.yml")
            return "no error"
        } catch {
            return error.description
        }
    }

    @Test func errorsNameThePathAndLine() {
        #expect(Self.error("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up ==\n")
            .hasPrefix("line 5: groups[0].rules[0].expr:"))
        #expect(Self.error("groups:\n  - name: g\n    rules:\n      - alert: A\n        record: b\n        expr: up\n")
            .contains("only one of alert and record"))
        #expect(Self.error("groups:\n  - name: g\n    rules: []\n  - name: g\n    rules: []\n").contains("repeated in the same file"))
        #expect(Self.error("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        labels: {\"bad-name\": x}\n")
            .contains("invalid label name"))
        #expect(Self.error("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        annotations: {s: \"{{ nosuch }}\"}\n")
            .contains("groups[0].rules[0].annotations.s"))
        #expect(Self.error("groups:\n  - name: g\n    rules:\n      - record: 'bad name'\n        expr: up\n").contains("valid metric name"))
        #expect(Self.error("groups:\n  - name: g\n    rules:\n      - record: r\n        expr: up\n        for: 1m\n").contains("only apply to alerting rules"))
        #expect(Self.error("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: '\"text\"'\n").contains("instant vector or a scalar"))
        #expect(Self.error("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(up[5m])[10m:]\n").contains("instant vector or a scalar"))
        #expect(Self.error("groups:\n  - name: g\n    interval: -1m\n    rules: []\n").contains("interval"))
        #expect(Self.error("groups:\n  - rules: []\n").contains("needs a name"))
        #expect(Self.error("groups:\n  - name: g\n    bogus: 1\n").contains("unknown field"))
    }
}

@Suite struct MaintenanceWindowFileTests {
    @Test func parsesWeeklyAndCronWindows() throws {
        let ws = try MaintenanceWindows.parse(yaml: """
            windows:
              - name: db patching
                matchers: ['service="db"']
                time_zone: Europe/Oslo
                weekly: {days: [sat, sun], start: "22:00", end: "02:00"}
              - name: batch
                matchers: ['job=~"batch.*"']
                cron: "0 2 * * 1-5"
                duration: 90m
            """)
        #expect(ws.map(\.name) == ["db patching", "batch"])
        guard case .weekly(let days, let start, let dur) = ws[0].schedule else { Issue.record("not weekly"); return }
        #expect(days == [0, 6] && start == 22 * 60 && dur == 4 * 3_600_000)
        #expect(ws[0].timeZone.identifier == "Europe/Oslo")
        // Saturday 2026-12-05 23:00 in Oslo (22:00 UTC) is inside the window.
        #expect(ws[0].mutes(Labels(["service": "db"]), atMs: 1_796_508_000_000))
        #expect(!ws[0].mutes(Labels(["service": "web"]), atMs: 1_796_508_000_000))
    }

    @Test func errorsNameTheWindowAndKey() {
        func error(_ y: String) -> String {
            do { _ = try MaintenanceWindows.parse(yaml: y); return "no error" } catch { return error.description }
        }
        #expect(error("windows:\n  - name: a\n    matchers: ['x=\"1\"']\n    cron: '0 2 * * *'\n").contains("needs a duration"))
        #expect(error("windows:\n  - name: a\n    matchers: ['x=\"1\"']\n    cron: '0 25 * * *'\n    duration: 1h\n").contains("windows[0].cron"))
        #expect(error("windows:\n  - name: a\n    matchers: ['x=\"1\"']\n    weekly: {days: [funday], start: '01:00', end: '02:00'}\n").contains("unknown day"))
        #expect(error("windows:\n  - name: a\n    matchers: ['x=\"1\"']\n    time_zone: Mars/Base\n    weekly: {days: [mon], start: '01:00', end: '02:00'}\n").contains("Mars/Base"))
        #expect(error("windows:\n  - matchers: ['x=\"1\"']\n    cron: '0 2 * * *'\n    duration: 1h\n").contains("needs a name"))
        #expect(error("windows:\n  - name: a\n    matchers: ['x=\"1\"']\n").contains("exactly one of weekly or cron"))
    }
}
