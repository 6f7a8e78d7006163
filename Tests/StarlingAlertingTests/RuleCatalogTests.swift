import Foundation
import StarlingAlerting
import Testing

@Suite struct RuleCatalogTests {
    static let group = """
        name: api
        interval: 30s
        rules:
          - alert: High
            expr: up == 0   # a comment is not kept
            for: 1m
            labels: {severity: page}
        """

    @Test func aSubmittedGroupIsValidatedAndNormalised() throws {
        let (spec, yaml) = try RuleFiles.parseGroupDocument(yaml: Self.group, namespace: "team-a")
        #expect(spec.name == "api" && spec.source == "team-a" && spec.intervalMs == 30_000 && spec.rules.count == 1)
        #expect(!yaml.contains("comment") && yaml.contains("alert: High"))
        // The normalised text parses to the same group.
        #expect(try RuleFiles.parseGroup(yaml: yaml, namespace: "team-a") == spec)
    }

    @Test func badGroupsAreRejectedWithTheirPlace() {
        func error(_ text: String) -> String {
            do {
                _ = try RuleFiles.parseGroupDocument(yaml: text, namespace: "n")
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        #expect(error("name: g\nrules:\n  - alert: A\n    expr: rate(x[5m]\n").contains("group.rules[0].expr"))
        #expect(error("rules: []\n").contains("group.name: missing"))
        #expect(error("").contains("empty body"))
        #expect(error("- a\n- b\n").contains("expected a rule group"))
        #expect(error("name: g\nrules: [\n").contains("invalid YAML"))
        #expect(error("name: g\nbogus: 1\n").contains("bogus"))
    }

    @Test func everyChangeIsAVersionWithHistory() throws {
        var c = RuleCatalog()
        let (_, yaml) = try RuleFiles.parseGroupDocument(yaml: Self.group, namespace: "a")
        let first = c.set(namespace: "a", name: "api", yaml: yaml, by: "alice", atMs: 1)
        let again = c.set(namespace: "a", name: "api", yaml: yaml, by: "alice", atMs: 2)
        #expect(first && !again, "same text: no new version")
        #expect(c.version == 1)
        c.set(namespace: "b", name: "x", yaml: yaml.replacingOccurrences(of: "api", with: "x"), by: "bob", atMs: 3)
        c.set(namespace: "a", name: "api", yaml: yaml.replacingOccurrences(of: "30s", with: "1m"), by: "carol", atMs: 4)
        #expect(c.version == 3 && c.group("a", "api")?.version == 3 && c.group("a", "api")?.updatedBy == "carol")
        #expect(c.namespaces == ["a", "b"])
        let none = c.delete(namespace: "a", name: "nope", by: "d", atMs: 5)
        #expect(none == 0 && c.version == 3)
        let deleted = c.delete(namespace: "b", name: nil, by: "d", atMs: 6)
        #expect(deleted == 1)
        #expect(c.version == 4 && c.namespaces == ["a"])
        #expect(c.history.map(\.version) == [1, 2, 3, 4] && c.history.last?.action == .delete && c.history.last?.group == "x")
        let (specs, errors) = c.specs()
        #expect(errors.isEmpty && specs.map(\.key) == ["a;api"] && specs[0].intervalMs == 60_000)
    }

    @Test func theNewerCopyWinsAndTiesBreakByContent() throws {
        var base = RuleCatalog()
        base.set(namespace: "a", name: "g", yaml: "name: g\nrules: []\n", by: "x", atMs: 1)
        var left = base, right = base
        left.set(namespace: "a", name: "l", yaml: "name: l\nrules: []\n", by: "x", atMs: 2)
        right.set(namespace: "a", name: "r", yaml: "name: r\nrules: []\n", by: "y", atMs: 2)
        #expect(left.supersedes(base) && !base.supersedes(left))
        // Same version, different content (two coordinators during a partition): exactly one wins.
        #expect(left.version == right.version && left.supersedes(right) != right.supersedes(left))
        #expect(!left.supersedes(left))
    }

    @Test func theCatalogRoundTripsAsJSONAndRendersYAML() throws {
        var c = RuleCatalog()
        let (_, yaml) = try RuleFiles.parseGroupDocument(yaml: Self.group, namespace: "team-a")
        c.set(namespace: "team-a", name: "api", yaml: yaml, by: "alice", atMs: 1_700_000_000_000)
        let back = try JSONDecoder().decode(RuleCatalog.self, from: JSONEncoder().encode(c))
        #expect(back == c && back.digest == c.digest)
        let all = c.yaml()
        #expect(all.hasPrefix("team-a:\n") && all.contains("name: api"), "\(all)")
        #expect(RuleCatalog().yaml() == "{}\n")
    }

    @Test func namesUsableInPaths() {
        #expect(throws: ConfigError.self) { try RuleCatalog.validateName("a/b", what: "namespace") }
        #expect(throws: ConfigError.self) { try RuleCatalog.validateName("", what: "namespace") }
        #expect(throws: ConfigError.self) { try RuleCatalog.validateName("a\nb", what: "namespace") }
        #expect(throws: Never.self) { try RuleCatalog.validateName("team-a.rules", what: "namespace") }
    }
}
