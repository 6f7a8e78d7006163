import StarlingCore
import StarlingPromQL
import Yams

/// A rule group as written in a Prometheus rule file (docs/alerting.md, "Rules").
public struct RuleGroupSpec: Sendable, Equatable {
    public var name: String
    /// Where the group came from (a file path, or `api`); with `name`, the group's identity.
    public var source: String
    /// Evaluation interval; nil: the node's `rules.evaluation_interval`.
    public var intervalMs: Int64?
    /// Most alerts (or series of a recording rule) one evaluation may produce; 0: no limit.
    public var limit: Int
    public var rules: [RuleSpec]

    public init(name: String, source: String, intervalMs: Int64? = nil, limit: Int = 0, rules: [RuleSpec]) {
        self.name = name
        self.source = source
        self.intervalMs = intervalMs
        self.limit = limit
        self.rules = rules
    }

    /// The key the group is known by cluster-wide: `source` and `name`.
    public var key: String { "\(source);\(name)" }
}

public enum RuleSpec: Sendable, Equatable {
    case alerting(AlertingRuleSpec)
    case recording(RecordingRuleSpec)

    public var name: String {
        switch self {
        case .alerting(let a): a.name
        case .recording(let r): r.record
        }
    }

    public var expr: String {
        switch self {
        case .alerting(let a): a.expr
        case .recording(let r): r.expr
        }
    }
}

public struct AlertingRuleSpec: Sendable, Equatable {
    public var name: String
    public var expr: String
    /// How long the condition must hold before the alert fires (pending until then).
    public var forMs: Int64
    /// How long a firing alert keeps firing after the condition stops holding.
    public var keepFiringForMs: Int64
    public var labels: [(String, AlertTemplate)]
    public var annotations: [(String, AlertTemplate)]

    public init(name: String, expr: String, forMs: Int64 = 0, keepFiringForMs: Int64 = 0,
                labels: [(String, AlertTemplate)] = [], annotations: [(String, AlertTemplate)] = []) {
        self.name = name
        self.expr = expr
        self.forMs = forMs
        self.keepFiringForMs = keepFiringForMs
        self.labels = labels
        self.annotations = annotations
    }

    public static func == (a: AlertingRuleSpec, b: AlertingRuleSpec) -> Bool {
        a.name == b.name && a.expr == b.expr && a.forMs == b.forMs && a.keepFiringForMs == b.keepFiringForMs
            && a.labels.map(\.0) == b.labels.map(\.0) && a.labels.map(\.1) == b.labels.map(\.1)
            && a.annotations.map(\.0) == b.annotations.map(\.0) && a.annotations.map(\.1) == b.annotations.map(\.1)
    }
}

public struct RecordingRuleSpec: Sendable, Equatable {
    public var record: String
    public var expr: String
    public var labels: [(String, String)]

    public init(record: String, expr: String, labels: [(String, String)] = []) {
        self.record = record
        self.expr = expr
        self.labels = labels
    }

    public static func == (a: RecordingRuleSpec, b: RecordingRuleSpec) -> Bool {
        a.record == b.record && a.expr == b.expr && a.labels.map(\.0) == b.labels.map(\.0) && a.labels.map(\.1) == b.labels.map(\.1)
    }
}

/// Limits on a rule file (files come from operators and from the rules API).
public struct RuleFileLimits: Sendable {
    public var maxDocumentBytes = 4 << 20
    public var maxGroups = 1_000
    public var maxRulesPerGroup = 1_000
    public var maxExpressionBytes = 64 << 10
    public var maxTemplateBytes = 16 << 10
    public init() {}
}

public enum RuleFiles {
    /// Parses and validates a Prometheus rule file (`groups:` …). Every expression is parsed
    /// with PromQL's parser and must produce an instant vector or a scalar; every template
    /// must parse. Errors name the key path (`groups[0].rules[2].expr`) and the line.
    public static func parse(yaml text: String, source: String, limits: RuleFileLimits = .init()) throws(ConfigError) -> [RuleGroupSpec] {
        guard let root = try ConfigParser.compose(text, maxBytes: limits.maxDocumentBytes, what: "rule file") else { return [] }
        let p = ConfigParser(limits: .init())
        var groups: [RuleGroupSpec] = []
        for (key, v) in try p.mapping(root, "", allowed: ["groups"]) where key == "groups" {
            let list = try p.sequence(v, "groups")
            if list.count > limits.maxGroups { throw ConfigParser.fail("groups", v, "\(list.count) groups, limit is \(limits.maxGroups)") }
            for (i, g) in list.enumerated() {
                let group = try Self.group(g, "groups[\(i)]", source: source, p, limits)
                if groups.contains(where: { $0.name == group.name }) {
                    throw ConfigParser.fail("groups[\(i)].name", g, "\(quoteLabelValue(group.name)): repeated in the same file")
                }
                groups.append(group)
            }
        }
        return groups
    }

    static func group(_ n: Node, _ path: String, source: String, _ p: ConfigParser, _ limits: RuleFileLimits) throws(ConfigError) -> RuleGroupSpec {
        var name: String?
        var interval: Int64?
        var limit = 0
        var rules: [RuleSpec] = []
        for (k, v) in try p.mapping(n, path, allowed: ["name", "interval", "limit", "rules", "query_offset", "labels"]) {
            let sub = "\(path).\(k)"
            switch k {
            case "name":
                let s = try p.string(v, sub)
                if s.isEmpty { throw ConfigParser.fail(sub, v, "group name must not be empty") }
                name = s
            case "interval":
                let ms = try p.duration(v, sub)
                if ms <= 0 { throw ConfigParser.fail(sub, v, "must be positive") }
                interval = ms
            case "limit":
                guard case .scalar(let s) = v, let l = Int(s.string), l >= 0 else { throw ConfigParser.fail(sub, v, "expected a non-negative integer") }
                limit = l
            case "rules":
                let list = try p.sequence(v, sub)
                if list.count > limits.maxRulesPerGroup { throw ConfigParser.fail(sub, v, "\(list.count) rules, limit is \(limits.maxRulesPerGroup)") }
                for (i, r) in list.enumerated() { rules.append(try rule(r, "\(sub)[\(i)]", p, limits)) }
            case "query_offset", "labels":
                throw ConfigParser.fail(sub, v, "not supported yet")
            default: break
            }
        }
        guard let name else { throw ConfigParser.fail("\(path).name", n, "missing: every group needs a name") }
        return RuleGroupSpec(name: name, source: source, intervalMs: interval, limit: limit, rules: rules)
    }

    static func rule(_ n: Node, _ path: String, _ p: ConfigParser, _ limits: RuleFileLimits) throws(ConfigError) -> RuleSpec {
        var alert: String?
        var record: String?
        var expr: String?
        var exprNode: Node?
        var forMs: Int64 = 0
        var keepFiring: Int64 = 0
        var labels: [(String, String, Node)] = []
        var annotations: [(String, String, Node)] = []
        var sawFor = false
        for (k, v) in try p.mapping(n, path, allowed: ["alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"]) {
            let sub = "\(path).\(k)"
            switch k {
            case "alert": alert = try p.string(v, sub)
            case "record": record = try p.string(v, sub)
            case "expr":
                // A number is a valid PromQL expression too.
                guard case .scalar(let s) = v else { throw ConfigParser.fail(sub, v, "expected a PromQL expression") }
                expr = s.string
                exprNode = v
            case "for":
                forMs = try p.duration(v, sub)
                sawFor = true
            case "keep_firing_for":
                keepFiring = try p.duration(v, sub)
                sawFor = true
            case "labels", "annotations":
                guard let m = v.mapping else { throw ConfigParser.fail(sub, v, "expected a mapping of name to value") }
                for (lk, lv) in m {
                    let lname = try p.labelName(lk, sub)
                    let lsub = "\(sub).\(lname)"
                    if !isValidLabelName(lname) { throw ConfigParser.fail(lsub, lk, "invalid \(k == "labels" ? "label" : "annotation") name \(quoteLabelValue(lname))") }
                    guard case .scalar(let s) = lv else { throw ConfigParser.fail(lsub, lv, "expected a string") }
                    if k == "labels" { labels.append((lname, s.string, lv)) } else { annotations.append((lname, s.string, lv)) }
                }
            default: break
            }
        }
        guard let expr, let exprNode, !expr.isEmpty else { throw ConfigParser.fail("\(path).expr", n, "missing: every rule needs an expr") }
        if expr.utf8.count > limits.maxExpressionBytes {
            throw ConfigParser.fail("\(path).expr", exprNode, "expression is \(expr.utf8.count) bytes, limit is \(limits.maxExpressionBytes)")
        }
        do {
            let parsed = try PromQLParser.parseExpr(expr)
            switch parsed.type {
            case .vector, .scalar: break
            default:
                throw ConfigParser.fail("\(path).expr", exprNode, "expression \(quoteLabelValue(expr)) is a \(parsed.type), a rule needs an instant vector or a scalar")
            }
        } catch let e as ConfigError {
            throw e
        } catch {
            throw ConfigParser.fail("\(path).expr", exprNode, "\(error)")
        }
        switch (alert, record) {
        case (nil, nil): throw ConfigParser.fail(path, n, "one of alert or record is required")
        case (.some, .some): throw ConfigParser.fail(path, n, "only one of alert and record may be set")
        case (let a?, nil):
            if a.isEmpty { throw ConfigParser.fail("\(path).alert", n, "alert name must not be empty") }
            func templates(_ list: [(String, String, Node)], _ what: String) throws(ConfigError) -> [(String, AlertTemplate)] {
                var out: [(String, AlertTemplate)] = []
                for (name, text, node) in list.sorted(by: { $0.0 < $1.0 }) {
                    let sub = "\(path).\(what).\(name)"
                    if text.utf8.count > limits.maxTemplateBytes {
                        throw ConfigParser.fail(sub, node, "\(text.utf8.count) bytes, limit is \(limits.maxTemplateBytes)")
                    }
                    do {
                        out.append((name, try AlertTemplate(text)))
                    } catch {
                        throw ConfigParser.fail(sub, node, "\(error)")
                    }
                }
                return out
            }
            return .alerting(AlertingRuleSpec(
                name: a, expr: expr, forMs: forMs, keepFiringForMs: keepFiring,
                labels: try templates(labels, "labels"), annotations: try templates(annotations, "annotations")))
        case (nil, let r?):
            if !isValidMetricName(r) { throw ConfigParser.fail("\(path).record", n, "invalid recording rule name \(quoteLabelValue(r)): must be a valid metric name") }
            if sawFor { throw ConfigParser.fail(path, n, "for and keep_firing_for only apply to alerting rules") }
            if !annotations.isEmpty { throw ConfigParser.fail("\(path).annotations", n, "annotations only apply to alerting rules") }
            return .recording(RecordingRuleSpec(record: r, expr: expr, labels: labels.sorted { $0.0 < $1.0 }.map { ($0.0, $0.1) }))
        }
    }
}
