import StarlingCore
import Yams

/// The rule groups managed through the rules API (docs/alerting.md, "Managing rules through the
/// API"): cluster-wide metadata that every node keeps a copy of. Each change bumps `version`;
/// between two copies the one with the higher `(version, digest)` wins, so copies that diverged
/// (two coordinators during a partition) converge on one of them everywhere.
///
/// Groups live in namespaces (as in Mimir's ruler API); a group's identity is its namespace and
/// name, and it is evaluated like a group of a rule file whose path is the namespace.
public struct RuleCatalog: Sendable, Equatable, Codable {
    public struct Group: Sendable, Equatable, Codable {
        public var namespace: String
        public var name: String
        /// The group as submitted, normalised (re-serialised YAML of the one group).
        public var yaml: String
        /// The catalog version of the change that last set this group.
        public var version: UInt64
        public var updatedAtMs: Int64
        public var updatedBy: String
    }

    /// One entry of the change history.
    public struct Change: Sendable, Equatable, Codable {
        public enum Action: String, Sendable, Codable { case set, delete }
        public var version: UInt64
        public var atMs: Int64
        public var by: String
        public var action: Action
        public var namespace: String
        public var group: String
    }

    /// Number of changes kept in `history`.
    public static let historyLimit = 200

    public private(set) var version: UInt64 = 0
    /// Groups sorted by namespace, then name.
    public private(set) var groups: [Group] = []
    /// The latest changes, oldest first.
    public private(set) var history: [Change] = []

    public init() {}

    /// Content hash breaking ties between copies of the same version.
    public var digest: UInt64 {
        var bytes: [UInt8] = []
        for g in groups {
            bytes += Array(g.namespace.utf8) + [0] + Array(g.name.utf8) + [0] + Array(g.yaml.utf8) + [0]
        }
        return XXH64.hash(bytes, seed: version)
    }

    /// Whether this copy should replace `other`.
    public func supersedes(_ other: RuleCatalog) -> Bool {
        (version, digest) > (other.version, other.digest)
    }

    public func group(_ namespace: String, _ name: String) -> Group? {
        groups.first { $0.namespace == namespace && $0.name == name }
    }

    public var namespaces: [String] {
        var seen: [String] = []
        for g in groups where seen.last != g.namespace { seen.append(g.namespace) }
        return seen
    }

    /// Creates or replaces a group. Returns false (and changes nothing) when the group exists
    /// with the same text.
    @discardableResult
    public mutating func set(namespace: String, name: String, yaml: String, by: String, atMs: Int64) -> Bool {
        if let i = groups.firstIndex(where: { $0.namespace == namespace && $0.name == name }) {
            guard groups[i].yaml != yaml else { return false }
            version += 1
            groups[i] = Group(namespace: namespace, name: name, yaml: yaml, version: version, updatedAtMs: atMs, updatedBy: by)
        } else {
            version += 1
            groups.append(Group(namespace: namespace, name: name, yaml: yaml, version: version, updatedAtMs: atMs, updatedBy: by))
            groups.sort { ($0.namespace, $0.name) < ($1.namespace, $1.name) }
        }
        record(Change(version: version, atMs: atMs, by: by, action: .set, namespace: namespace, group: name))
        return true
    }

    /// Deletes one group, or every group of the namespace when `name` is nil. Returns the
    /// number deleted; each deletion is one version.
    @discardableResult
    public mutating func delete(namespace: String, name: String?, by: String, atMs: Int64) -> Int {
        let doomed = groups.filter { $0.namespace == namespace && (name == nil || $0.name == name) }
        for g in doomed {
            version += 1
            groups.removeAll { $0.namespace == g.namespace && $0.name == g.name }
            record(Change(version: version, atMs: atMs, by: by, action: .delete, namespace: namespace, group: g.name))
        }
        return doomed.count
    }

    private mutating func record(_ c: Change) {
        history.append(c)
        if history.count > Self.historyLimit { history.removeFirst(history.count - Self.historyLimit) }
    }

    /// Every group parsed into specs (`source` = namespace). A group that no longer parses
    /// (a node of an older version reading a newer catalog) is reported, not dropped silently.
    public func specs(limits: RuleFileLimits = .init()) -> (groups: [RuleGroupSpec], errors: [String]) {
        var out: [RuleGroupSpec] = []
        var errors: [String] = []
        for g in groups {
            do {
                out.append(try RuleFiles.parseGroup(yaml: g.yaml, namespace: g.namespace, limits: limits))
            } catch {
                errors.append("rule group \(quoteLabelValue(g.name)) of namespace \(quoteLabelValue(g.namespace)): \(error)")
            }
        }
        return (out, errors)
    }

    /// The groups of `namespace` (every namespace when nil) as YAML, a mapping of namespace to
    /// its list of groups (the shape of Mimir's ruler API). Empty mapping: `{}`.
    public func yaml(namespace: String? = nil) -> String {
        var pairs: [(Node, Node)] = []
        for ns in namespaces where namespace == nil || ns == namespace {
            let list = groups.filter { $0.namespace == ns }.compactMap { try? Yams.compose(yaml: $0.yaml) ?? nil }
            pairs.append((Node(ns), Node.sequence(Node.Sequence(list))))
        }
        guard !pairs.isEmpty else { return "{}\n" }
        return (try? Yams.serialize(node: Node.mapping(Node.Mapping(pairs)))) ?? "{}\n"
    }

    /// Namespaces and group names the API accepts: non-empty, printable, no `/` (they appear
    /// in URL paths) and at most 256 bytes.
    public static func validateName(_ s: String, what: String) throws(ConfigError) {
        if s.isEmpty { throw ConfigError(path: "", line: 0, message: "\(what) must not be empty") }
        if s.utf8.count > 256 { throw ConfigError(path: "", line: 0, message: "\(what) is \(s.utf8.count) bytes, limit is 256") }
        if s.contains("/") || s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            throw ConfigError(path: "", line: 0, message: "\(what) \(quoteLabelValue(s)) must not contain '/' or control characters")
        }
    }
}

extension RuleFiles {
    /// Parses one rule group (the body of the rules API: `name:`, `interval:`, `rules:` …),
    /// validated as in a rule file. Returns the spec and the group re-serialised as YAML.
    public static func parseGroupDocument(yaml text: String, namespace: String, limits: RuleFileLimits = .init()) throws(ConfigError) -> (RuleGroupSpec, String) {
        guard let node = try ConfigParser.compose(text, maxBytes: limits.maxDocumentBytes, what: "rule group") else {
            throw ConfigError(path: "", line: 0, message: "empty body: expected a rule group (name, interval, rules)")
        }
        guard node.mapping != nil else {
            throw ConfigParser.fail("", node, "expected a rule group: a mapping with name, interval and rules")
        }
        let spec = try group(node, "group", source: namespace, ConfigParser(limits: .init()), limits)
        let normalised: String
        do {
            normalised = try Yams.serialize(node: node)
        } catch {
            throw ConfigError(path: "", line: 0, message: "cannot serialise the group: \(error)")
        }
        return (spec, normalised)
    }

    /// Parses a group stored by the catalog.
    public static func parseGroup(yaml text: String, namespace: String, limits: RuleFileLimits = .init()) throws(ConfigError) -> RuleGroupSpec {
        try parseGroupDocument(yaml: text, namespace: namespace, limits: limits).0
    }
}
