import StarlingCore
import Yams

/// An error in an alerting configuration file, naming the key path (`route.routes[1].group_by`)
/// and, when known, the line, so an operator can fix the file without guessing.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Dotted key path from the document root, with `[i]` for list positions.
    public let path: String
    /// 1-based line of the offending node, 0 when unknown.
    public let line: Int
    public let message: String

    public var description: String {
        (line > 0 ? "line \(line): " : "") + (path.isEmpty ? "" : "\(path): ") + message
    }
}

/// How alerts are grouped on a route: by a list of label names, or by all labels (`...`).
public enum GroupBy: Sendable, Equatable {
    case labels([String])
    /// `group_by: ['...']`: every distinct label set is its own group.
    case all

    /// The group labels of an alert under this grouping.
    public func groupLabels(of labels: Labels) -> Labels {
        switch self {
        case .all: return labels
        case .labels(let names): return labels.keeping(Set(names))
        }
    }
}

/// A webhook receiver endpoint (`webhook_configs` entry).
public struct WebhookConfig: Sendable, Equatable {
    public var url: String
    /// Most alerts per notification; 0 means all. Alertmanager truncates and reports the number
    /// of truncated alerts in the payload's `truncatedAlerts`.
    public var maxAlerts: Int
    /// Whether resolved alerts are notified. Alertmanager's default for webhooks is true.
    public var sendResolved: Bool

    public init(url: String, maxAlerts: Int = 0, sendResolved: Bool = true) {
        self.url = url
        self.maxAlerts = maxAlerts
        self.sendResolved = sendResolved
    }
}

/// A named receiver. Only webhooks exist so far; other integrations are rejected at load time
/// rather than silently ignored.
public struct Receiver: Sendable, Equatable {
    public var name: String
    public var webhooks: [WebhookConfig]

    public init(name: String, webhooks: [WebhookConfig] = []) {
        self.name = name
        self.webhooks = webhooks
    }

    /// Whether any integration of this receiver wants resolved alerts.
    public var sendResolved: Bool { webhooks.contains { $0.sendResolved } }
}

/// An inhibition rule: while an alert matching `sourceMatchers` fires, alerts matching
/// `targetMatchers` that have the same values for every `equal` label are muted.
public struct InhibitRule: Sendable, Equatable {
    public var sourceMatchers: [LabelMatcher]
    public var targetMatchers: [LabelMatcher]
    public var equal: [String]
    /// Set for an edge of the dependency topology (`dependencies:`): its name. The source
    /// alert is then the target's probable cause.
    public var dependency: String?

    public init(sourceMatchers: [LabelMatcher], targetMatchers: [LabelMatcher], equal: [String], dependency: String? = nil) {
        self.sourceMatchers = sourceMatchers
        self.targetMatchers = targetMatchers
        self.equal = equal
        self.dependency = dependency
    }
}

/// Lifecycle timers for the incidents of the alerts a policy matches (`escalation_policies:`);
/// a timer the policy does not set comes from the node's `alerting.*` settings. The first
/// policy whose matchers all match an alert applies.
public struct EscalationPolicyRule: Sendable, Equatable {
    public var name: String
    public var matchers: [LabelMatcher]
    public var escalateAfterMs: Int64?
    public var criticalAfterMs: Int64?
    public var acknowledgementTimeoutMs: Int64?
    public var requireManualResolution: Bool?

    /// `base` with this policy's timers.
    public func applied(to base: EscalationPolicy) -> EscalationPolicy {
        var p = base
        if let v = escalateAfterMs { p.newToEscalatedMs = v }
        if let v = criticalAfterMs { p.escalatedToCriticalMs = v }
        if let v = acknowledgementTimeoutMs { p.acknowledgementTimeoutMs = v }
        if let v = requireManualResolution { p.requireManualResolution = v }
        return p
    }
}

/// Limits on what a configuration may declare; the file comes from operators or the API.
public struct AlertingConfigLimits: Sendable {
    /// Most routes in the whole tree. Routing visits routes per alert: this bounds that work.
    public var maxRoutes: Int = 10_000
    /// Deepest route nesting; bounds recursion.
    public var maxRouteDepth: Int = 64
    /// Most receivers.
    public var maxReceivers: Int = 10_000
    /// Most inhibition rules; each is checked against every alert being notified.
    public var maxInhibitRules: Int = 1_000
    /// Largest configuration document, in bytes.
    public var maxDocumentBytes: Int = 4 * 1024 * 1024

    public init() {}
}

/// The Alertmanager-compatible part of an alerting configuration: `global.resolve_timeout`,
/// `route`, `receivers`, `inhibit_rules`. Loaded with `AlertingConfig.parse(yaml:)`.
public struct AlertingConfig: Sendable {
    /// Alertmanager's defaults for a route that does not set (or inherit) them.
    public static let defaultGroupWaitMs: Int64 = 30_000
    public static let defaultGroupIntervalMs: Int64 = 5 * 60_000
    public static let defaultRepeatIntervalMs: Int64 = 4 * 3_600_000
    /// `global.resolve_timeout` default: an alert posted without `endsAt` is considered
    /// resolved this long after its last update.
    public static let defaultResolveTimeoutMs: Int64 = 5 * 60_000

    public var resolveTimeoutMs: Int64
    public var tree: RoutingTree
    public var receivers: [Receiver]
    public var inhibitRules: [InhibitRule]
    /// The dependency topology (`dependencies:`, Starling's): inhibition with probable causes.
    public var dependencies: [InhibitRule] = []
    /// Per-alert lifecycle timers (`escalation_policies:`, Starling's).
    public var escalationPolicies: [EscalationPolicyRule] = []
    /// Keys that were accepted but have no effect in Starling (e.g. `global.smtp_smarthost`,
    /// `templates`), so a loader can log them.
    public var ignoredKeys: [String]

    public func receiver(named name: String) -> Receiver? { receivers.first { $0.name == name } }

    /// The lifecycle timers for an alert with `labels`: the first matching escalation policy
    /// over `base`, and that policy's name.
    public func escalation(for labels: Labels, base: EscalationPolicy) -> (EscalationPolicy, String?) {
        guard let rule = escalationPolicies.first(where: { $0.matchers.matches(labels) }) else { return (base, nil) }
        return (rule.applied(to: base), rule.name)
    }
}

extension AlertingConfig {
    /// Parses and validates an Alertmanager configuration document.
    public static func parse(yaml text: String, limits: AlertingConfigLimits = .init()) throws(ConfigError) -> AlertingConfig {
        guard let root = try ConfigParser.compose(text, maxBytes: limits.maxDocumentBytes, what: "document") else {
            throw ConfigError(path: "", line: 0, message: "empty document: a `route` and `receivers` are required")
        }
        var p = ConfigParser(limits: limits)
        return try p.document(root)
    }
}

/// Walks the YAML node tree, keeping the key path for errors.
struct ConfigParser {
    let limits: AlertingConfigLimits
    var ignored: [String] = []
    var routeCount = 0
    let matcherParser = MatcherParser()

    init(limits: AlertingConfigLimits) { self.limits = limits }

    /// Composes a YAML document (nil when empty); errors name the size limit or the YAML
    /// problem.
    static func compose(_ text: String, maxBytes: Int, what: String) throws(ConfigError) -> Node? {
        if text.utf8.count > maxBytes {
            throw ConfigError(path: "", line: 0, message: "\(what) is \(text.utf8.count) bytes, limit is \(maxBytes)")
        }
        do {
            return try Yams.compose(yaml: text)
        } catch {
            throw ConfigError(path: "", line: 0, message: "invalid YAML: \(error)")
        }
    }

    static func fail(_ path: String, _ node: Node?, _ message: String) -> ConfigError {
        ConfigError(path: path, line: node?.mark.map { $0.line } ?? 0, message: message)
    }

    func mapping(_ n: Node, _ path: String, allowed: Set<String>) throws(ConfigError) -> [(String, Node)] {
        guard let m = n.mapping else { throw Self.fail(path, n, "expected a mapping") }
        var out: [(String, Node)] = []
        var seen: Set<String> = []
        for (k, v) in m {
            guard let key = k.string else { throw Self.fail(path, k, "mapping keys must be strings") }
            let sub = path.isEmpty ? key : "\(path).\(key)"
            if !allowed.contains(key) { throw Self.fail(sub, k, "unknown field") }
            if !seen.insert(key).inserted { throw Self.fail(sub, k, "duplicate field") }
            out.append((key, v))
        }
        return out
    }

    func string(_ n: Node, _ path: String) throws(ConfigError) -> String {
        guard case .scalar(let s) = n else { throw Self.fail(path, n, "expected a string") }
        return s.string
    }

    func bool(_ n: Node, _ path: String) throws(ConfigError) -> Bool {
        guard case .scalar = n, let b = n.bool else { throw Self.fail(path, n, "expected true or false") }
        return b
    }

    func duration(_ n: Node, _ path: String) throws(ConfigError) -> Int64 {
        let s = try string(n, path)
        guard let ms = parsePrometheusDurationMs(s) else {
            throw Self.fail(path, n, "invalid duration \(quoteLabelValue(s)) (expected e.g. 30s, 5m, 1h30m)")
        }
        return ms
    }

    func sequence(_ n: Node, _ path: String) throws(ConfigError) -> [Node] {
        if n.null != nil { return [] }
        guard case .sequence(let seq) = n else { throw Self.fail(path, n, "expected a list") }
        return Array(seq)
    }

    func labelName(_ n: Node, _ path: String) throws(ConfigError) -> String {
        let s = try string(n, path)
        if s.isEmpty { throw Self.fail(path, n, "empty label name") }
        return s
    }

    /// A `matchers:` list: each entry is one matcher or a braced list in Alertmanager syntax.
    func matchers(_ n: Node, _ path: String) throws(ConfigError) -> [LabelMatcher] {
        var out: [LabelMatcher] = []
        for (i, e) in try sequence(n, path).enumerated() {
            let s = try string(e, "\(path)[\(i)]")
            do {
                out += try matcherParser.parseList(s)
            } catch {
                throw Self.fail("\(path)[\(i)]", e, "\(error)")
            }
        }
        return out
    }

    /// Legacy `match` (equality) / `match_re` (anchored regex) maps of label name to value.
    func legacyMatchers(_ n: Node, _ path: String, regex: Bool) throws(ConfigError) -> [LabelMatcher] {
        guard let m = n.mapping else { throw Self.fail(path, n, "expected a mapping of label name to value") }
        var out: [LabelMatcher] = []
        for (k, v) in m {
            let name = try labelName(k, path)
            let sub = "\(path).\(name)"
            if !isValidMetricName(name) { throw Self.fail(sub, k, "invalid label name \(quoteLabelValue(name))") }
            let value = try string(v, sub)
            do {
                out.append(try LabelMatcher(regex ? .regexMatch : .equal, name, value))
            } catch {
                throw Self.fail(sub, v, "\(error)")
            }
        }
        // YAML mappings are unordered: sort so the route key does not depend on file order.
        return out.sorted { utf8Less($0.name, $1.name) }
    }

    mutating func document(_ root: Node) throws(ConfigError) -> AlertingConfig {
        let fields = try mapping(
            root, "",
            allowed: [
                "global", "route", "receivers", "inhibit_rules", "templates", "time_intervals", "mute_time_intervals",
                "dependencies", "escalation_policies",
            ])
        var resolveTimeoutMs = AlertingConfig.defaultResolveTimeoutMs
        var routeNode: Node? = nil
        var receivers: [Receiver] = []
        var inhibit: [InhibitRule] = []
        var dependencies: [InhibitRule] = []
        var policies: [EscalationPolicyRule] = []
        for (key, v) in fields {
            switch key {
            case "global":
                guard let m = v.mapping else { throw Self.fail("global", v, "expected a mapping") }
                for (k, gv) in m {
                    let name = k.string ?? "?"
                    if name == "resolve_timeout" {
                        resolveTimeoutMs = try duration(gv, "global.resolve_timeout")
                        if resolveTimeoutMs <= 0 { throw Self.fail("global.resolve_timeout", gv, "must be positive") }
                    } else {
                        ignored.append("global.\(name)")
                    }
                }
            case "templates": ignored.append("templates")
            case "time_intervals", "mute_time_intervals":
                // Rejected rather than ignored: silently dropping a mute window would page people.
                throw Self.fail(key, v, "not supported; use Starling maintenance windows")
            case "route": routeNode = v
            case "receivers":
                let list = try sequence(v, "receivers")
                if list.count > limits.maxReceivers {
                    throw Self.fail("receivers", v, "\(list.count) receivers, limit is \(limits.maxReceivers)")
                }
                for (i, r) in list.enumerated() {
                    let rec = try receiver(r, "receivers[\(i)]")
                    if receivers.contains(where: { $0.name == rec.name }) {
                        throw Self.fail("receivers[\(i)].name", r, "duplicate receiver name \(quoteLabelValue(rec.name))")
                    }
                    receivers.append(rec)
                }
            case "inhibit_rules":
                let list = try sequence(v, "inhibit_rules")
                if list.count > limits.maxInhibitRules {
                    throw Self.fail("inhibit_rules", v, "\(list.count) rules, limit is \(limits.maxInhibitRules)")
                }
                for (i, r) in list.enumerated() { inhibit.append(try inhibitRule(r, "inhibit_rules[\(i)]")) }
            case "dependencies":
                let list = try sequence(v, "dependencies")
                if list.count > limits.maxInhibitRules {
                    throw Self.fail("dependencies", v, "\(list.count) dependencies, limit is \(limits.maxInhibitRules)")
                }
                for (i, r) in list.enumerated() {
                    let d = try dependency(r, "dependencies[\(i)]")
                    if dependencies.contains(where: { $0.dependency == d.dependency }) {
                        throw Self.fail("dependencies[\(i)].name", r, "duplicate dependency name \(quoteLabelValue(d.dependency ?? ""))")
                    }
                    dependencies.append(d)
                }
            case "escalation_policies":
                let list = try sequence(v, "escalation_policies")
                if list.count > limits.maxInhibitRules {
                    throw Self.fail("escalation_policies", v, "\(list.count) policies, limit is \(limits.maxInhibitRules)")
                }
                for (i, r) in list.enumerated() { policies.append(try escalationPolicy(r, "escalation_policies[\(i)]")) }
            default: break
            }
        }
        guard let routeNode else { throw Self.fail("route", root, "missing: a root route is required") }
        let tree = try rootRoute(routeNode)
        let names = Set(receivers.map(\.name))
        for r in tree.routes where !names.contains(r.receiver) {
            throw Self.fail(r.configPath + ".receiver", nil, "undefined receiver \(quoteLabelValue(r.receiver))")
        }
        return AlertingConfig(
            resolveTimeoutMs: resolveTimeoutMs, tree: tree, receivers: receivers, inhibitRules: inhibit,
            dependencies: dependencies, escalationPolicies: policies, ignoredKeys: ignored)
    }

    /// A dependency: `name`, `upstream_matchers` (the failure depended upon, e.g. a host down),
    /// `downstream_matchers` (what depends on it), `equal` (labels both must share, e.g. host).
    func dependency(_ n: Node, _ path: String) throws(ConfigError) -> InhibitRule {
        let fields = try mapping(n, path, allowed: ["name", "upstream_matchers", "downstream_matchers", "equal"])
        var name: String?
        var up: [LabelMatcher] = [], down: [LabelMatcher] = [], equal: [String] = []
        for (k, v) in fields {
            let sub = "\(path).\(k)"
            switch k {
            case "name":
                let s = try string(v, sub)
                if s.isEmpty { throw Self.fail(sub, v, "must not be empty") }
                name = s
            case "upstream_matchers": up = try matchers(v, sub)
            case "downstream_matchers": down = try matchers(v, sub)
            default:
                for (i, e) in try sequence(v, sub).enumerated() { equal.append(try labelName(e, "\(sub)[\(i)]")) }
            }
        }
        guard let name else { throw Self.fail("\(path).name", n, "missing: every dependency needs a name") }
        if up.isEmpty { throw Self.fail("\(path).upstream_matchers", n, "missing: which alerts mean the upstream is down") }
        if down.isEmpty { throw Self.fail("\(path).downstream_matchers", n, "missing: which alerts depend on the upstream") }
        return InhibitRule(sourceMatchers: up, targetMatchers: down, equal: equal, dependency: name)
    }

    /// An escalation policy: `name`, `matchers`, and any of `escalate_after`, `critical_after`,
    /// `acknowledgement_timeout` (`0s`: never expires), `require_manual_resolution`.
    func escalationPolicy(_ n: Node, _ path: String) throws(ConfigError) -> EscalationPolicyRule {
        let fields = try mapping(n, path, allowed: ["name", "matchers", "escalate_after", "critical_after", "acknowledgement_timeout",
                                                    "require_manual_resolution"])
        var rule = EscalationPolicyRule(name: "", matchers: [])
        var named = false
        for (k, v) in fields {
            let sub = "\(path).\(k)"
            switch k {
            case "name":
                rule.name = try string(v, sub)
                named = !rule.name.isEmpty
            case "matchers": rule.matchers = try matchers(v, sub)
            case "escalate_after", "critical_after":
                let ms = try duration(v, sub)
                if ms <= 0 { throw Self.fail(sub, v, "must be positive") }
                if k == "escalate_after" { rule.escalateAfterMs = ms } else { rule.criticalAfterMs = ms }
            case "acknowledgement_timeout":
                let ms = try duration(v, sub)
                if ms < 0 { throw Self.fail(sub, v, "must not be negative") }
                rule.acknowledgementTimeoutMs = ms
            default:
                guard case .scalar(let s) = v, let b = Bool(s.string) else { throw Self.fail(sub, v, "expected true or false") }
                rule.requireManualResolution = b
            }
        }
        if !named { throw Self.fail("\(path).name", n, "missing: every escalation policy needs a name") }
        if rule.matchers.isEmpty { throw Self.fail("\(path).matchers", n, "missing: which alerts the policy applies to") }
        return rule
    }

    static let integrationKeys: Set<String> = [
        "email_configs", "pagerduty_configs", "slack_configs", "opsgenie_configs", "pushover_configs", "victorops_configs",
        "wechat_configs", "sns_configs", "telegram_configs", "webex_configs", "discord_configs", "msteams_configs",
        "msteamsv2_configs", "jira_configs", "rocketchat_configs",
    ]

    func receiver(_ n: Node, _ path: String) throws(ConfigError) -> Receiver {
        let fields = try mapping(n, path, allowed: Self.integrationKeys.union(["name", "webhook_configs"]))
        var name: String? = nil
        var hooks: [WebhookConfig] = []
        for (k, v) in fields {
            switch k {
            case "name": name = try string(v, "\(path).name")
            case "webhook_configs":
                for (i, w) in try sequence(v, "\(path).webhook_configs").enumerated() {
                    hooks.append(try webhook(w, "\(path).webhook_configs[\(i)]"))
                }
            default:
                throw Self.fail("\(path).\(k)", v, "not supported yet (Starling delivers webhook_configs only)")
            }
        }
        guard let name, !name.isEmpty else { throw Self.fail("\(path).name", n, "missing receiver name") }
        return Receiver(name: name, webhooks: hooks)
    }

    func webhook(_ n: Node, _ path: String) throws(ConfigError) -> WebhookConfig {
        let fields = try mapping(n, path, allowed: ["url", "max_alerts", "send_resolved", "http_config", "url_file", "timeout"])
        var url: String? = nil
        var w = WebhookConfig(url: "")
        for (k, v) in fields {
            let sub = "\(path).\(k)"
            switch k {
            case "url":
                let u = try string(v, sub)
                guard u.hasPrefix("http://") || u.hasPrefix("https://"), u.utf8.count > 8 else {
                    throw Self.fail(sub, v, "expected an absolute http:// or https:// URL, got \(quoteLabelValue(u))")
                }
                url = u
            case "max_alerts":
                guard case .scalar = v, let i = v.int, i >= 0 else { throw Self.fail(sub, v, "expected a non-negative integer") }
                w.maxAlerts = i
            case "send_resolved": w.sendResolved = try bool(v, sub)
            default:
                throw Self.fail(sub, v, "not supported yet")
            }
        }
        guard let url else { throw Self.fail("\(path).url", n, "missing: a webhook needs a url") }
        w.url = url
        return w
    }

    func inhibitRule(_ n: Node, _ path: String) throws(ConfigError) -> InhibitRule {
        let fields = try mapping(
            n, path,
            allowed: ["source_matchers", "target_matchers", "source_match", "source_match_re", "target_match", "target_match_re", "equal"])
        var source: [LabelMatcher] = []
        var target: [LabelMatcher] = []
        var equal: [String] = []
        for (k, v) in fields {
            let sub = "\(path).\(k)"
            switch k {
            case "source_matchers": source += try matchers(v, sub)
            case "target_matchers": target += try matchers(v, sub)
            case "source_match": source += try legacyMatchers(v, sub, regex: false)
            case "source_match_re": source += try legacyMatchers(v, sub, regex: true)
            case "target_match": target += try legacyMatchers(v, sub, regex: false)
            case "target_match_re": target += try legacyMatchers(v, sub, regex: true)
            default:
                for (i, e) in try sequence(v, sub).enumerated() { equal.append(try labelName(e, "\(sub)[\(i)]")) }
            }
        }
        return InhibitRule(sourceMatchers: source, targetMatchers: target, equal: equal)
    }

    /// Fields a route may set; nil means "inherit from the parent".
    struct RouteFields {
        var receiver: String?
        var matchers: [LabelMatcher] = []
        var groupBy: GroupBy?
        var groupWaitMs: Int64?
        var groupIntervalMs: Int64?
        var repeatIntervalMs: Int64?
        var continueMatching = false
        var children: [(Node, String)] = []
        var hasMatchers = false
    }

    func routeFields(_ n: Node, _ path: String) throws(ConfigError) -> RouteFields {
        let fields = try mapping(
            n, path,
            allowed: [
                "receiver", "matchers", "match", "match_re", "group_by", "group_wait", "group_interval", "repeat_interval",
                "continue", "routes", "mute_time_intervals", "active_time_intervals",
            ])
        var f = RouteFields()
        var legacy: [LabelMatcher] = []
        for (k, v) in fields {
            let sub = "\(path).\(k)"
            switch k {
            case "receiver": f.receiver = try string(v, sub)
            case "matchers":
                f.matchers += try matchers(v, sub)
                f.hasMatchers = true
            case "match":
                legacy += try legacyMatchers(v, sub, regex: false)
                f.hasMatchers = true
            case "match_re":
                legacy += try legacyMatchers(v, sub, regex: true)
                f.hasMatchers = true
            case "group_by":
                var names: [String] = []
                for (i, e) in try sequence(v, sub).enumerated() {
                    let name = try labelName(e, "\(sub)[\(i)]")
                    if names.contains(name) { throw Self.fail("\(sub)[\(i)]", e, "duplicate label \(quoteLabelValue(name))") }
                    names.append(name)
                }
                if names.contains("...") {
                    if names.count > 1 { throw Self.fail(sub, v, "'...' (group by all labels) cannot be combined with other labels") }
                    f.groupBy = .all
                } else {
                    f.groupBy = .labels(names)
                }
            case "group_wait": f.groupWaitMs = try duration(v, sub)
            case "group_interval":
                let d = try duration(v, sub)
                if d == 0 { throw Self.fail(sub, v, "group_interval cannot be zero") }
                f.groupIntervalMs = d
            case "repeat_interval":
                let d = try duration(v, sub)
                if d == 0 { throw Self.fail(sub, v, "repeat_interval cannot be zero") }
                f.repeatIntervalMs = d
            case "continue": f.continueMatching = try bool(v, sub)
            case "routes":
                for (i, c) in try sequence(v, sub).enumerated() { f.children.append((c, "\(sub)[\(i)]")) }
            default:
                throw Self.fail(sub, v, "not supported; use Starling maintenance windows")
            }
        }
        // Alertmanager builds a route's matchers from match, match_re and matchers together.
        f.matchers = legacy + f.matchers
        return f
    }

    mutating func rootRoute(_ n: Node) throws(ConfigError) -> RoutingTree {
        let f = try routeFields(n, "route")
        guard let receiver = f.receiver, !receiver.isEmpty else {
            throw Self.fail("route.receiver", n, "the root route must name a default receiver")
        }
        if f.hasMatchers { throw Self.fail("route", n, "the root route must not have matchers") }
        if f.continueMatching { throw Self.fail("route.continue", n, "the root route cannot have continue") }
        var routes: [Route] = []
        let root = Route(
            index: 0, parent: nil, depth: 0, configPath: "route", receiver: receiver, matchers: [],
            groupBy: f.groupBy ?? .labels([]), groupWaitMs: f.groupWaitMs ?? AlertingConfig.defaultGroupWaitMs,
            groupIntervalMs: f.groupIntervalMs ?? AlertingConfig.defaultGroupIntervalMs,
            repeatIntervalMs: f.repeatIntervalMs ?? AlertingConfig.defaultRepeatIntervalMs, continueMatching: false,
            children: [], key: "{}")
        routes.append(root)
        routeCount = 1
        routes[0].children = try childRoutes(f.children, parent: 0, routes: &routes)
        return RoutingTree(routes: routes)
    }

    mutating func childRoutes(_ nodes: [(Node, String)], parent: Int, routes: inout [Route]) throws(ConfigError) -> [Int] {
        var out: [Int] = []
        for (n, path) in nodes {
            let p = routes[parent]
            if p.depth + 1 > limits.maxRouteDepth {
                throw Self.fail(path, n, "routes nested deeper than \(limits.maxRouteDepth)")
            }
            routeCount += 1
            if routeCount > limits.maxRoutes { throw Self.fail(path, n, "more than \(limits.maxRoutes) routes") }
            let f = try routeFields(n, path)
            let sorted = f.matchers.sorted(by: amMatcherOrder)
            let r = Route(
                index: routes.count, parent: parent, depth: p.depth + 1, configPath: path,
                receiver: f.receiver.flatMap { $0.isEmpty ? nil : $0 } ?? p.receiver, matchers: f.matchers,
                groupBy: f.groupBy ?? p.groupBy, groupWaitMs: f.groupWaitMs ?? p.groupWaitMs,
                groupIntervalMs: f.groupIntervalMs ?? p.groupIntervalMs, repeatIntervalMs: f.repeatIntervalMs ?? p.repeatIntervalMs,
                continueMatching: f.continueMatching, children: [],
                key: p.key + "/" + "{" + sorted.map(formatMatcher).joined(separator: ",") + "}")
            routes.append(r)
            let idx = r.index
            routes[idx].children = try childRoutes(f.children, parent: idx, routes: &routes)
            out.append(idx)
        }
        return out
    }
}

/// Alertmanager's matcher order for a route key: by name, then value, then operator
/// (`=`, `!=`, `=~`, `!~`).
func amMatcherOrder(_ a: LabelMatcher, _ b: LabelMatcher) -> Bool {
    if a.name != b.name { return utf8Less(a.name, b.name) }
    if a.value != b.value { return utf8Less(a.value, b.value) }
    let order = LabelMatcher.Kind.allCases
    return order.firstIndex(of: a.kind)! < order.firstIndex(of: b.kind)!
}
