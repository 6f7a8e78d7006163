import Foundation
import Logging
import StarlingCluster
import StarlingCore
import StarlingMembership

/// Where a configuration value came from; named in every error so the user knows what to fix.
public enum ConfigSource: Sendable, Equatable, CustomStringConvertible {
    case file(String)
    case environment(String)
    case flag(String)

    public var description: String {
        switch self {
        case .file(let path): return "config file \(path)"
        case .environment(let name): return "environment variable \(name)"
        case .flag(let name): return "flag \(name)"
        }
    }
}

/// A raw value before typing: YAML gives scalars, lists and maps; environment variables and
/// flags give scalars, which list and map keys split (`a,b` and `k=v,k2=v2`).
public enum ConfigValue: Sendable, Equatable {
    case scalar(String)
    case list([String])
    case map([String: String])
}

public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    static func invalid(_ key: ConfigKey, _ source: ConfigSource, _ value: ConfigValue, _ expected: String) -> ConfigError {
        let shown: String
        switch value {
        case .scalar(let s): shown = key.isSecret ? "<redacted>" : "\"\(s)\""
        case .list(let l): shown = "[\(l.joined(separator: ", "))]"
        case .map: shown = "a map"
        }
        return ConfigError("invalid value \(shown) for \(key.key) (from \(source)): expected \(expected)")
    }
}

/// One configuration setting: its YAML key (dotted path), environment variable, optional
/// dedicated flag, default, meaning, and how to set and show it.
public struct ConfigKey: Sendable {
    public let key: String
    public let env: String
    public let flag: String?
    public let defaultText: String
    public let help: String
    public let isSecret: Bool
    let apply: @Sendable (inout NodeConfig, ConfigValue, ConfigSource, ConfigKey) throws(ConfigError) -> Void
    let show: @Sendable (NodeConfig) -> ConfigValue?

    init(
        _ key: String, env: String? = nil, flag: String? = nil, default defaultText: String, secret: Bool = false,
        _ help: String,
        apply: @escaping @Sendable (inout NodeConfig, ConfigValue, ConfigSource, ConfigKey) throws(ConfigError) -> Void,
        show: @escaping @Sendable (NodeConfig) -> ConfigValue?
    ) {
        self.key = key
        self.env = env ?? "STARLING_" + key.uppercased().replacingOccurrences(of: ".", with: "_")
        self.flag = flag
        self.defaultText = defaultText
        self.help = help
        self.isSecret = secret
        self.apply = apply
        self.show = show
    }
}

// MARK: typed helpers

private func scalar(_ v: ConfigValue, _ k: ConfigKey, _ s: ConfigSource, _ expected: String) throws(ConfigError) -> String {
    guard case .scalar(let x) = v else { throw ConfigError.invalid(k, s, v, expected) }
    return x
}

private func string(_ path: any WritableKeyPath<NodeConfig, String> & Sendable) -> @Sendable (inout NodeConfig, ConfigValue, ConfigSource, ConfigKey) throws(ConfigError) -> Void {
    { (c: inout NodeConfig, v: ConfigValue, s: ConfigSource, k: ConfigKey) throws(ConfigError) in c[keyPath: path] = try scalar(v, k, s, "a string") }
}

/// A list value's non-empty items, trimmed: a YAML list, or one comma-separated string
/// (environment variables and flags).
private func listItems(_ v: ConfigValue, _ k: ConfigKey, _ s: ConfigSource, _ expected: String) throws(ConfigError) -> [String] {
    let items: [String]
    switch v {
    case .list(let l): items = l
    case .scalar(let t): items = t.split(separator: ",").map { String($0) }
    case .map: throw ConfigError.invalid(k, s, v, expected)
    }
    return items.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
}

private func positiveInt(_ path: any WritableKeyPath<NodeConfig, Int> & Sendable, _ range: ClosedRange<Int>) -> @Sendable (inout NodeConfig, ConfigValue, ConfigSource, ConfigKey) throws(ConfigError) -> Void {
    { (c: inout NodeConfig, v: ConfigValue, s: ConfigSource, k: ConfigKey) throws(ConfigError) in
        let t = try scalar(v, k, s, "an integer in \(range.lowerBound)...\(range.upperBound)")
        guard let n = Int(t.trimmingCharacters(in: .whitespaces)), range.contains(n) else {
            throw ConfigError.invalid(k, s, v, "an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        c[keyPath: path] = n
    }
}

private func byteSize(_ path: any WritableKeyPath<NodeConfig, Int> & Sendable, min: Int) -> @Sendable (inout NodeConfig, ConfigValue, ConfigSource, ConfigKey) throws(ConfigError) -> Void {
    { (c: inout NodeConfig, v: ConfigValue, s: ConfigSource, k: ConfigKey) throws(ConfigError) in
        let expected = "a byte size of at least \(min) (e.g. 32MiB, 1048576)"
        let t = try scalar(v, k, s, expected)
        guard let n = ConfigSyntax.bytes(t), n >= min else { throw ConfigError.invalid(k, s, v, expected) }
        c[keyPath: path] = n
    }
}

private func duration(_ path: any WritableKeyPath<NodeConfig, Duration> & Sendable, min: Duration) -> @Sendable (inout NodeConfig, ConfigValue, ConfigSource, ConfigKey) throws(ConfigError) -> Void {
    { (c: inout NodeConfig, v: ConfigValue, s: ConfigSource, k: ConfigKey) throws(ConfigError) in
        let expected = "a duration of at least \(ConfigSyntax.format(min)) (e.g. 30d, 1h30m, 10s)"
        let t = try scalar(v, k, s, expected)
        guard let d = ConfigSyntax.duration(t), d >= min else { throw ConfigError.invalid(k, s, v, expected) }
        c[keyPath: path] = d
    }
}

private func boolean(_ path: any WritableKeyPath<NodeConfig, Bool> & Sendable) -> @Sendable (inout NodeConfig, ConfigValue, ConfigSource, ConfigKey) throws(ConfigError) -> Void {
    { (c, v, s, k) throws(ConfigError) in
        switch try scalar(v, k, s, "true or false").trimmingCharacters(in: .whitespaces).lowercased() {
        case "true", "yes", "on", "1": c[keyPath: path] = true
        case "false", "no", "off", "0": c[keyPath: path] = false
        default: throw ConfigError.invalid(k, s, v, "true or false")
        }
    }
}

private func consistency(_ path: any WritableKeyPath<NodeConfig, Consistency> & Sendable) -> @Sendable (inout NodeConfig, ConfigValue, ConfigSource, ConfigKey) throws(ConfigError) -> Void {
    { c, v, s, k throws(ConfigError) in
        let t = try scalar(v, k, s, "one, quorum or all").trimmingCharacters(in: .whitespaces)
        guard let level = Consistency(parsing: t) else { throw ConfigError.invalid(k, s, v, "one, quorum or all") }
        c[keyPath: path] = level
    }
}

private func hostPort(_ path: any WritableKeyPath<NodeConfig, HostPort> & Sendable) -> @Sendable (inout NodeConfig, ConfigValue, ConfigSource, ConfigKey) throws(ConfigError) -> Void {
    { (c: inout NodeConfig, v: ConfigValue, s: ConfigSource, k: ConfigKey) throws(ConfigError) in
        let expected = "HOST:PORT (e.g. 0.0.0.0:9470, :9470, [::1]:9470)"
        let t = try scalar(v, k, s, expected)
        guard let hp = HostPort(parsing: t) else { throw ConfigError.invalid(k, s, v, expected) }
        c[keyPath: path] = hp
    }
}

private func labelMap(_ path: any WritableKeyPath<NodeConfig, [String: String]> & Sendable) -> @Sendable (inout NodeConfig, ConfigValue, ConfigSource, ConfigKey) throws(ConfigError) -> Void {
    { (c: inout NodeConfig, v: ConfigValue, s: ConfigSource, k: ConfigKey) throws(ConfigError) in
        let expected = "labels as a YAML map or name=value,name=value with names matching [a-zA-Z_][a-zA-Z0-9_]* (not starting with __)"
        var pairs: [(String, String)]
        switch v {
        case .map(let m): pairs = m.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        case .scalar(let t):
            guard let p = ConfigSyntax.pairs(t) else { throw ConfigError.invalid(k, s, v, expected) }
            pairs = p
        case .list: throw ConfigError.invalid(k, s, v, expected)
        }
        var out: [String: String] = [:]
        for (n, val) in pairs {
            guard isValidLabelName(n), !n.hasPrefix("__") else {
                throw ConfigError("invalid label name \"\(n)\" in \(k.key) (from \(s)): expected \(expected)")
            }
            guard !val.isEmpty else { throw ConfigError("empty value for label \"\(n)\" in \(k.key) (from \(s))") }
            out[n] = val
        }
        c[keyPath: path] = out
    }
}

/// Whether `host` is an IPv4 or IPv6 literal (advertised addresses must be: peers send
/// datagrams to them without resolving names).
func isIPLiteral(_ host: String) -> Bool {
    var v4 = in_addr()
    var v6 = in6_addr()
    return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
}

private func showMap(_ m: [String: String]) -> ConfigValue { .map(m) }

extension ConfigKey {
    /// Every setting, in documentation order. `docs/configuration.md` mirrors this table and a
    /// test checks that each key appears there.
    public static let all: [ConfigKey] = [
        ConfigKey("node.name", env: "STARLING_NODE_NAME", flag: "--node-name", default: "the host name",
                  "Name of this node in the cluster and in logs; unique per cluster.",
                  apply: { (c, v, s, k) throws(ConfigError) in
                      let t = try scalar(v, k, s, "a name")
                      guard !t.isEmpty, t.utf8.count <= 128, t.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
                          throw ConfigError.invalid(k, s, v, "1 to 128 printable ASCII characters without spaces")
                      }
                      c.nodeName = t
                  },
                  show: { .scalar($0.nodeName) }),
        ConfigKey("node.zone", env: "STARLING_ZONE", flag: "--zone", default: "\"\" (no zone)",
                  "Failure domain (rack, availability zone), announced to the cluster in this node's metadata; replicas of a shard are spread across zones.",
                  apply: string(\.zone), show: { .scalar($0.zone) }),
        ConfigKey("node.data_dir", env: "STARLING_DATA_DIR", flag: "--data-dir", default: "./starling-data",
                  "Directory holding this node's RocksDB data, its node ID (file node-id, created on first start) and the generated admin token. Created if missing. A fresh directory is a new cluster member.",
                  apply: { (c, v, s, k) throws(ConfigError) in
                      let t = try scalar(v, k, s, "a directory path")
                      guard !t.isEmpty else { throw ConfigError.invalid(k, s, v, "a non-empty directory path") }
                      c.dataDir = t
                  },
                  show: { .scalar($0.dataDir) }),
        ConfigKey("node.labels", default: "{} (none)",
                  "Static labels added to every series ingested through this node (enrichment). They fill in labels the sender did not set; per-token labels replace the sender's.",
                  apply: labelMap(\.nodeLabels), show: { showMap($0.nodeLabels) }),

        ConfigKey("http.listen", env: "STARLING_HTTP", flag: "--http", default: "0.0.0.0:9470",
                  "HTTP listen address (API, ingest, /metrics, /healthz). Port 0 picks a free port, logged at start.",
                  apply: hostPort(\.httpListen), show: { .scalar($0.httpListen.description) }),
        ConfigKey("http.max_body_bytes", default: "32MiB",
                  "Largest request body accepted as sent (compressed); larger requests get 413.",
                  apply: byteSize(\.maxBodyBytes, min: 1024), show: { .scalar(ConfigSyntax.formatBytes($0.maxBodyBytes)) }),
        ConfigKey("http.single_event_loop", default: "true",
                  "Accept and serve every HTTP connection on one event loop. Handlers hand storage, query and decoding work to the blocking pool, so the loop only parses and writes; keeping accept, connection and handler on one thread saves two thread wake-ups per new connection (~100 µs of CPU on a 2-core VM). false spreads connections over one event loop per core, for machines where socket I/O itself needs more than a core.",
                  apply: boolean(\.httpSingleEventLoop), show: { .scalar($0.httpSingleEventLoop ? "true" : "false") }),

        ConfigKey("cluster.gossip", env: "STARLING_GOSSIP", flag: "--gossip", default: "0.0.0.0:9471",
                  "Gossip (SWIM membership) listen address, UDP and TCP on the same port. Port 0 picks a free port, logged at start.",
                  apply: hostPort(\.gossipListen), show: { .scalar($0.gossipListen.description) }),
        ConfigKey("cluster.advertise", default: "the listen address; for a wildcard, the first non-loopback IPv4",
                  "Gossip address peers reach this node at (IP:PORT; port 0 = the bound port). Set it in containers whose wildcard interface is not the one peers route to. Also the host announced for the HTTP and peer-RPC addresses when those listen on a wildcard.",
                  apply: { (c, v, s, k) throws(ConfigError) in
                      let t = try scalar(v, k, s, "IP:PORT").trimmingCharacters(in: .whitespaces)
                      if t.isEmpty { c.gossipAdvertise = nil; return }
                      guard let hp = HostPort(parsing: t), isIPLiteral(hp.host), hp.host != "0.0.0.0", hp.host != "::" else {
                          throw ConfigError.invalid(k, s, v, "IP:PORT with a non-wildcard IP address (e.g. 10.0.0.5:9471, [fd00::5]:9471)")
                      }
                      c.gossipAdvertise = hp
                  },
                  show: { $0.gossipAdvertise.map { .scalar($0.description) } }),
        ConfigKey("cluster.join", env: "STARLING_JOIN", flag: "--join", default: "[] (start a new cluster)",
                  "Gossip addresses of peers to join at start (list, or HOST:PORT,HOST:PORT). Host names are re-resolved on every attempt and every address is tried (Compose service names, Kubernetes headless services); attempts are retried with backoff until one succeeds.",
                  apply: { (c, v, s, k) throws(ConfigError) in
                      var out: [HostPort] = []
                      for i in try listItems(v, k, s, "a list of HOST:PORT") {
                          guard let hp = HostPort(parsing: i), hp.port != 0 else {
                              throw ConfigError("invalid peer address \"\(i)\" in cluster.join (from \(s)): expected HOST:PORT with a non-zero port")
                          }
                          out.append(hp)
                      }
                      c.join = out
                  },
                  show: { .list($0.join.map(\.description)) }),
        ConfigKey("cluster.id", default: "starling",
                  "Cluster name (1 to 128 bytes). Gossip from another cluster is dropped, so clusters whose seed lists overlap never merge.",
                  apply: { (c, v, s, k) throws(ConfigError) in
                      let t = try scalar(v, k, s, "a name").trimmingCharacters(in: .whitespaces)
                      guard !t.isEmpty, t.utf8.count <= 128 else { throw ConfigError.invalid(k, s, v, "1 to 128 bytes") }
                      c.clusterID = t
                  },
                  show: { .scalar($0.clusterID) }),
        ConfigKey("cluster.keys", default: "[] (plaintext gossip)", secret: true,
                  "Gossip encryption keyring (list, or KEY,KEY): base64 keys of 16, 24 or 32 bytes for AES-GCM. The first seals, all open, so keys rotate without downtime. Every node needs a key the others seal with.",
                  apply: { (c, v, s, k) throws(ConfigError) in
                      let keys = try listItems(v, k, s, "a list of base64 keys")
                      do {
                          _ = try Keyring(base64Keys: keys)
                      } catch {
                          throw ConfigError("invalid key in cluster.keys (from \(s)): \(error)")
                      }
                      c.clusterKeys = keys
                  },
                  show: { $0.clusterKeys.isEmpty ? nil : .list($0.clusterKeys.map { _ in "<redacted>" }) }),
        ConfigKey("cluster.keys_file", default: "unset",
                  "File of gossip keys, one base64 key per line (# starts a comment), read at start and appended after cluster.keys. Keeps keys out of the config file and environment.",
                  apply: { (c, v, s, k) throws(ConfigError) in
                      let t = try scalar(v, k, s, "a file path").trimmingCharacters(in: .whitespaces)
                      c.clusterKeysFile = t.isEmpty ? nil : t
                  },
                  show: { $0.clusterKeysFile.map { .scalar($0) } }),
        ConfigKey("cluster.profile", default: "lan",
                  "Membership timing: lan (1s probes, 500ms probe timeout, 3 indirect probes, 4s minimum suspicion at up to 10 nodes, 30s push-pull) or local-test (200ms probes; processes on one machine only).",
                  apply: { (c, v, s, k) throws(ConfigError) in
                      let t = try scalar(v, k, s, "a profile").trimmingCharacters(in: .whitespaces)
                      guard SWIMSettings.profile(named: t) != nil else {
                          throw ConfigError.invalid(k, s, v, "one of \(SWIMSettings.profileNames.joined(separator: ", "))")
                      }
                      c.clusterProfile = t
                  },
                  show: { .scalar($0.clusterProfile) }),
        ConfigKey("cluster.peer_listen", flag: "--peer", default: "0.0.0.0:9472",
                  "Peer-RPC (replication, query fan-out) listen address, announced to the cluster in this node's metadata; port 0 picks a free port. Frames are encrypted and authenticated with cluster.keys.",
                  apply: hostPort(\.peerListen), show: { .scalar($0.peerListen.description) }),
        ConfigKey("cluster.replication_factor", env: "STARLING_REPLICATION_FACTOR", flag: "--replication-factor", default: "3",
                  "Replicas per shard, capped at the cluster size (a single node keeps one copy). Every node must use the same value: it is part of the placement version.",
                  apply: positiveInt(\.replicationFactor, 1...16), show: { .scalar(String($0.replicationFactor)) }),
        ConfigKey("cluster.write_consistency", env: "STARLING_WRITE_CONSISTENCY", default: "quorum",
                  "Replicas of each shard that must take a write before the client gets 204: one, quorum (⌊RF/2⌋+1) or all. A batch that cannot reach it gets 503 naming the shards; a retry is safe.",
                  apply: consistency(\.writeConsistency), show: { .scalar($0.writeConsistency.description) }),
        ConfigKey("cluster.read_consistency", env: "STARLING_READ_CONSISTENCY", default: "quorum",
                  "Replicas of each shard a query reads and merges: one, quorum or all. Quorum with quorum writes sees every acknowledged sample even while a replica catches up.",
                  apply: consistency(\.readConsistency), show: { .scalar($0.readConsistency.description) }),
        ConfigKey("cluster.write_timeout", default: "5s",
                  "Deadline of one replica's part of a write; a replica slower than this gets a hint instead.",
                  apply: duration(\.writeTimeout, min: .milliseconds(10)), show: { .scalar(ConfigSyntax.format($0.writeTimeout)) }),
        ConfigKey("cluster.read_timeout", default: "10s",
                  "Deadline of one node's part of a query; then its shards are read from other replicas.",
                  apply: duration(\.readTimeout, min: .milliseconds(10)), show: { .scalar(ConfigSyntax.format($0.readTimeout)) }),
        ConfigKey("cluster.anti_entropy_interval", default: "10s",
                  "Pause between anti-entropy rounds; each compares 64 of this node's shards with another replica (block digests) and pulls series that differ, at most 8 MiB/s. A member coming back triggers a full pass.",
                  apply: duration(\.antiEntropyInterval, min: .milliseconds(100)), show: { .scalar(ConfigSyntax.format($0.antiEntropyInterval)) }),
        ConfigKey("cluster.hint_max_bytes", default: "1GiB",
                  "Stored bytes of all pending hints (writes kept for unreachable replicas). Beyond it a hint is refused and counted: that replica misses the write until anti-entropy repairs it.",
                  apply: byteSize(\.hintMaxBytes, min: 1 << 20), show: { .scalar(ConfigSyntax.formatBytes($0.hintMaxBytes)) }),
        ConfigKey("cluster.hint_max_bytes_per_target", default: "256MiB",
                  "Stored bytes of one replica's pending hints, so one dead replica cannot use the whole budget.",
                  apply: byteSize(\.hintMaxBytesPerTarget, min: 1 << 20), show: { .scalar(ConfigSyntax.formatBytes($0.hintMaxBytesPerTarget)) }),
        ConfigKey("cluster.hint_max_age", default: "3h",
                  "A hint older than this is dropped and logged as an error (the replica was gone too long; anti-entropy repairs it). Keep it well above cluster.removal_timeout.",
                  apply: duration(\.hintMaxAge, min: .seconds(1)), show: { .scalar(ConfigSyntax.format($0.hintMaxAge)) }),
        ConfigKey("cluster.anti_entropy_settle", default: "60s",
                  "Anti-entropy compares samples older than this only: newer ones may still be on their way to a replica, and would look like a difference every round.",
                  apply: duration(\.antiEntropySettle, min: .milliseconds(0)), show: { .scalar(ConfigSyntax.format($0.antiEntropySettle)) }),
        ConfigKey("cluster.handoff_grace", default: "10m",
                  "How long a shard stays on a node after placement moved it elsewhere; then the node pushes whatever its owners lack to them and deletes its copy. Until then queries may still be served from it by peers with an older view.",
                  apply: duration(\.handoffGrace, min: .milliseconds(0)), show: { .scalar(ConfigSyntax.format($0.handoffGrace)) }),
        ConfigKey("cluster.handover_timeout", default: "10m",
                  "Longest a new node waits for the other new owners of its shards to finish pulling them before it turns active anyway, and a leaving node waits for its shards' new owners before it goes anyway (logged as a warning).",
                  apply: duration(\.handoverTimeout, min: .seconds(1)), show: { .scalar(ConfigSyntax.format($0.handoverTimeout)) }),
        ConfigKey("cluster.leave_on_shutdown", env: "STARLING_LEAVE_ON_SHUTDOWN", default: "false",
                  "true: SIGTERM first hands this node's shards to their new owners and leaves placement for good (scale-down; node.shutdown_timeout is extended by cluster.handover_timeout). false: SIGTERM stops the node as a member that comes back (restart); peers keep hints for it and re-replicate only after cluster.removal_timeout. `starling leave` always hands over.",
                  apply: boolean(\.leaveOnShutdown), show: { .scalar($0.leaveOnShutdown ? "true" : "false") }),
        ConfigKey("cluster.removal_timeout", env: "STARLING_REMOVAL_TIMEOUT", default: "2m",
                  "How long a member may be dead before placement drops it and its shards are re-replicated on the others. Every node should use the same value.",
                  apply: duration(\.removalTimeout, min: .seconds(1)), show: { .scalar(ConfigSyntax.format($0.removalTimeout)) }),

        ConfigKey("rules.files", env: "STARLING_RULE_FILES", default: "[] (no rules)",
                  "Prometheus rule files (list, or PATH,PATH); a file name may contain * wildcards (rules/*.yml). Loaded and validated at start: a bad file stops the node with the file, line and key named. Each group is evaluated by one node, the leader of the shard its name hashes to.",
                  apply: { (c, v, s, k) throws(ConfigError) in
                      c.ruleFiles = try listItems(v, k, s, "a list of file paths").filter { !$0.isEmpty }
                  },
                  show: { .list($0.ruleFiles) }),
        ConfigKey("rules.evaluation_interval", default: "1m",
                  "Evaluation interval of rule groups that set no interval of their own.",
                  apply: duration(\.ruleEvaluationInterval, min: .seconds(1)), show: { .scalar(ConfigSyntax.format($0.ruleEvaluationInterval)) }),
        ConfigKey("rules.catalog_sync_interval", default: "5s",
                  "How often a node compares its copy of the rule catalog (groups managed through /config/v1/rules) with the coordinator's and takes the newer. Changes are also pushed to every live node when made.",
                  apply: duration(\.ruleCatalogSyncInterval, min: .milliseconds(100)), show: { .scalar(ConfigSyntax.format($0.ruleCatalogSyncInterval)) }),
        ConfigKey("rules.external_labels", default: "{} (none)",
                  "Labels rule templates see as $externalLabels.",
                  apply: labelMap(\.ruleExternalLabels), show: { showMap($0.ruleExternalLabels) }),
        ConfigKey("rules.external_url", default: "\"\"",
                  "URL rule templates see as $externalURL (e.g. the dashboard's address).",
                  apply: string(\.ruleExternalURL), show: { .scalar($0.ruleExternalURL) }),

        ConfigKey("alerting.config_file", env: "STARLING_ALERTING_CONFIG_FILE", default: "unset (alerts are grouped, nobody is notified)",
                  "Alertmanager configuration file (route, receivers with webhook_configs, inhibit_rules), read at start; a bad file stops the node with the key and line named. One node at a time runs the alertmanager (the leader of the shard of \"starling/alertmanager\").",
                  apply: { (c, v, s, k) throws(ConfigError) in
                      let t = try scalar(v, k, s, "a file path").trimmingCharacters(in: .whitespaces)
                      c.alertingConfigFile = t.isEmpty ? nil : t
                  },
                  show: { $0.alertingConfigFile.map { .scalar($0) } }),

        ConfigKey("alerting.maintenance_windows_file", default: "unset (no maintenance windows)",
                  "Recurring maintenance windows (weekly or cron, with an IANA time zone) during which matching alerts are not notified; read at start, a bad file stops the node naming the key and line.",
                  apply: { (c, v, s, k) throws(ConfigError) in
                      let t = try scalar(v, k, s, "a file path").trimmingCharacters(in: .whitespaces)
                      c.maintenanceWindowsFile = t.isEmpty ? nil : t
                  },
                  show: { $0.maintenanceWindowsFile.map { .scalar($0) } }),
        ConfigKey("alerting.escalate_after", default: "15m",
                  "An incident (a firing alert's lifecycle) still New after this escalates to Escalated (severity high).",
                  apply: duration(\.escalateAfter, min: .seconds(1)), show: { .scalar(ConfigSyntax.format($0.escalateAfter)) }),
        ConfigKey("alerting.critical_after", default: "5m",
                  "An incident Escalated for this long becomes Critical.",
                  apply: duration(\.criticalAfter, min: .seconds(1)), show: { .scalar(ConfigSyntax.format($0.criticalAfter)) }),
        ConfigKey("alerting.acknowledgement_timeout", default: "1h",
                  "How long an acknowledgement lasts; then the incident escalates one level above where it was acknowledged. 0 means forever.",
                  apply: { (c, v, s, k) throws(ConfigError) in
                      let t = try scalar(v, k, s, "a duration").trimmingCharacters(in: .whitespaces)
                      if t == "0" || t == "0s" { c.acknowledgementTimeout = nil; return }
                      guard let d = ConfigSyntax.duration(t), d >= .seconds(1) else { throw ConfigError.invalid(k, s, v, "a duration of at least 1s, or 0") }
                      c.acknowledgementTimeout = d
                  },
                  show: { .scalar($0.acknowledgementTimeout.map { ConfigSyntax.format($0) } ?? "0") }),
        ConfigKey("alerting.require_manual_resolution", default: "false",
                  "true: an incident stays open (and keeps escalating) after its alert resolves, until someone resolves it.",
                  apply: boolean(\.requireManualResolution), show: { .scalar($0.requireManualResolution ? "true" : "false") }),

        ConfigKey("auth.admin_token", env: "STARLING_ADMIN_TOKEN", default: "unset (generate one)", secret: true,
                  "Bootstrap admin bearer token (at least 16 characters). When unset, the first start generates one into auth.admin_token_file.",
                  apply: { (c, v, s, k) throws(ConfigError) in
                      let t = try scalar(v, k, s, "a token").trimmingCharacters(in: .whitespaces)
                      if t.isEmpty { c.adminToken = nil; return }
                      guard t.count >= 16, !t.contains(where: { $0.isWhitespace }) else {
                          throw ConfigError.invalid(k, s, v, "at least 16 characters without whitespace")
                      }
                      c.adminToken = t
                  },
                  show: { $0.adminToken == nil ? nil : .scalar("<redacted>") }),
        ConfigKey("auth.admin_token_file", default: "<data_dir>/admin-token",
                  "File holding the generated bootstrap admin token (mode 0600). Read at start when auth.admin_token is unset; created if missing.",
                  apply: { (c, v, s, k) throws(ConfigError) in
                      let t = try scalar(v, k, s, "a file path")
                      c.adminTokenFile = t.isEmpty ? nil : t
                  },
                  show: { $0.adminTokenFile.map { .scalar($0) } }),

        ConfigKey("storage.retention", env: "STARLING_RETENTION", flag: "--retention", default: "30d",
                  "How long samples are kept; older data is deleted by maintenance.",
                  apply: duration(\.retention, min: .seconds(3600)), show: { .scalar(ConfigSyntax.format($0.retention)) }),
        ConfigKey("storage.max_series", default: "unlimited",
                  "Most series this node stores; writes of new series beyond it are rejected (reason series_limit). 0 or empty: unlimited.",
                  apply: { (c, v, s, k) throws(ConfigError) in
                      let t = try scalar(v, k, s, "a non-negative integer").trimmingCharacters(in: .whitespaces)
                      if t.isEmpty || t == "0" || t == "unlimited" { c.maxSeries = nil; return }
                      guard let n = Int(t), n > 0 else { throw ConfigError.invalid(k, s, v, "a non-negative integer") }
                      c.maxSeries = n
                  },
                  show: { .scalar($0.maxSeries.map(String.init) ?? "unlimited") }),
        ConfigKey("storage.shard_count", default: "1024",
                  "Shards per data directory (and cluster); fixed when the data directory is created.",
                  apply: positiveInt(\.shardCount, 1...65_536), show: { .scalar(String($0.shardCount)) }),
        ConfigKey("storage.maintenance_interval", default: "10s",
                  "Period of storage maintenance (WAL checkpoint, compaction, retention).",
                  apply: duration(\.maintenanceInterval, min: .seconds(1)), show: { .scalar(ConfigSyntax.format($0.maintenanceInterval)) }),
        ConfigKey("storage.query_read_ahead", default: "8MiB",
                  "Encoded chunk bytes one query selection reads ahead in storage order before returning its first series (saves a seek per series); at most this much per running query, times query.max_concurrency. 0: read each series in its turn.",
                  apply: byteSize(\.queryReadAheadBytes, min: 0), show: { .scalar(ConfigSyntax.formatBytes($0.queryReadAheadBytes)) }),
        ConfigKey("storage.labels_cache_entries", default: "100000",
                  "Label sets of series no longer in memory that queries keep cached (two generations of this many, ~200 bytes each); saves a lookup per series and query. 0 disables it.",
                  apply: positiveInt(\.storedLabelsCacheEntries, 0...100_000_000), show: { .scalar(String($0.storedLabelsCacheEntries)) }),
        ConfigKey("storage.chunk_cache", default: "64MiB",
                  "Stored chunks of the two newest days that queries read, kept in memory by series: a repeated query (dashboards, rules) over recent data then costs no storage seek per series. Entries are dropped when their chunks are rewritten. Chunk bytes plus ~64 bytes per chunk. 0 disables it.",
                  apply: byteSize(\.chunkCacheBytes, min: 0), show: { .scalar(ConfigSyntax.formatBytes($0.chunkCacheBytes)) }),
        ConfigKey("storage.postings_cache", default: "32MiB",
                  "Postings lists (the series of one label pair in one day) that queries read, kept in memory: selectors are then evaluated without reading the index from storage. A day's lists are re-read after a new series appears in it. Lists of more than 8,192 series are not kept. 0 disables it.",
                  apply: byteSize(\.postingsCacheBytes, min: 0), show: { .scalar(ConfigSyntax.formatBytes($0.postingsCacheBytes)) }),
        ConfigKey("storage.samples_per_chunk", default: "240",
                  "Samples the head puts in one chunk before cutting it. Larger chunks spread the per-chunk key and header (~29 bytes) over more samples — on a day of node-exporter data, 480 samples take 1.21 bytes/sample of chunk data against 1.25 (starling-bench chunks) — but a query decodes whole chunks, so short queries near the present decode more. Block compaction re-chunks at 480 samples, or at this when larger.",
                  apply: positiveInt(\.samplesPerChunk, 16...4096), show: { .scalar(String($0.samplesPerChunk)) }),

        ConfigKey("ingest.max_labels_per_series", default: "30",
                  "Most labels (including __name__ and enrichment labels) one series may carry; offending series are rejected (reason too_many_labels).",
                  apply: positiveInt(\.maxLabelsPerSeries, 1...10_000), show: { .scalar(String($0.maxLabelsPerSeries)) }),
        ConfigKey("ingest.max_label_name_bytes", default: "256",
                  "Longest label name in bytes (reason label_name_too_long).",
                  apply: positiveInt(\.maxLabelNameBytes, 1...65_536), show: { .scalar(String($0.maxLabelNameBytes)) }),
        ConfigKey("ingest.max_label_value_bytes", default: "4096",
                  "Longest label value in bytes (reason label_value_too_long).",
                  apply: positiveInt(\.maxLabelValueBytes, 1...1 << 20), show: { .scalar(String($0.maxLabelValueBytes)) }),
        ConfigKey("ingest.max_decoded_body_bytes", default: "64MiB",
                  "Largest body after snappy/gzip/deflate decompression; bounds what a small compressed body can expand to (413, reason body_too_large).",
                  apply: byteSize(\.maxDecodedBodyBytes, min: 1024), show: { .scalar(ConfigSyntax.formatBytes($0.maxDecodedBodyBytes)) }),
        ConfigKey("ingest.max_sample_age", default: "5y",
                  "Samples older than now minus this are rejected (reason timestamp_too_old); catches seconds sent as milliseconds. Retention bounds what is kept.",
                  apply: duration(\.maxSampleAge, min: .seconds(60)), show: { .scalar(ConfigSyntax.format($0.maxSampleAge)) }),
        ConfigKey("ingest.max_future_skew", default: "1h",
                  "Samples newer than now plus this are rejected (reason timestamp_too_new).",
                  apply: duration(\.maxFutureSkew, min: .seconds(1)), show: { .scalar(ConfigSyntax.format($0.maxFutureSkew)) }),

        ConfigKey("query.timeout", default: "2m",
                  "Longest a PromQL query may run; then it fails with 503 (errorType timeout). A request's timeout parameter can only lower it.",
                  apply: duration(\.queryTimeout, min: .milliseconds(1)), show: { .scalar(ConfigSyntax.format($0.queryTimeout)) }),
        ConfigKey("query.max_samples", default: "50000000",
                  "Most samples one query may hold in memory at once; beyond it the query fails with 422 (counted in starling_query_limit_hits_total{limit=\"max_samples\"}).",
                  apply: positiveInt(\.queryMaxSamples, 1...Int(Int32.max)), show: { .scalar(String($0.queryMaxSamples)) }),
        ConfigKey("query.lookback_delta", default: "5m",
                  "How far back an instant selector looks for the latest sample of a series.",
                  apply: duration(\.queryLookbackDelta, min: .milliseconds(1)), show: { .scalar(ConfigSyntax.format($0.queryLookbackDelta)) }),
        ConfigKey("query.max_concurrency", default: "20",
                  "PromQL queries evaluated at once; later ones wait their turn.",
                  apply: positiveInt(\.queryMaxConcurrency, 1...10_000), show: { .scalar(String($0.queryMaxConcurrency)) }),
        ConfigKey("query.inline_budget", default: "1ms",
                  "A query whose previous evaluation took at most this long is evaluated on the event loop serving its request instead of the blocking pool, saving two thread hand-offs; 0 keeps every query on the pool.",
                  apply: duration(\.queryInlineBudget, min: .zero), show: { .scalar(ConfigSyntax.format($0.queryInlineBudget)) }),

        ConfigKey("log.level", env: "STARLING_LOG_LEVEL", flag: "--log-level", default: "info",
                  "Minimum log level: trace, debug (adds one line per HTTP request), info, notice, warning, error, critical.",
                  apply: { (c, v, s, k) throws(ConfigError) in
                      let t = try scalar(v, k, s, "a log level").lowercased()
                      guard let l = Logger.Level(rawValue: t == "warn" ? "warning" : t) else {
                          throw ConfigError.invalid(k, s, v, "one of trace, debug, info, notice, warning, error, critical")
                      }
                      c.logLevel = l
                  },
                  show: { .scalar($0.logLevel.rawValue) }),
        ConfigKey("log.format", env: "STARLING_LOG_FORMAT", flag: "--log-format", default: "logfmt",
                  "Log line format on stderr: logfmt or json.",
                  apply: { (c, v, s, k) throws(ConfigError) in
                      let t = try scalar(v, k, s, "logfmt or json").lowercased()
                      guard let f = LogFormat(rawValue: t) else { throw ConfigError.invalid(k, s, v, "logfmt or json") }
                      c.logFormat = f
                  },
                  show: { .scalar($0.logFormat.rawValue) }),

        ConfigKey("shutdown.timeout", default: "30s",
                  "Longest graceful shutdown (SIGTERM/SIGINT): in-flight requests finish and storage flushes within it; then remaining work is cancelled.",
                  apply: duration(\.shutdownTimeout, min: .seconds(1)), show: { .scalar(ConfigSyntax.format($0.shutdownTimeout)) }),
    ]

    public static func named(_ key: String) -> ConfigKey? { all.first { $0.key == key } }
}
