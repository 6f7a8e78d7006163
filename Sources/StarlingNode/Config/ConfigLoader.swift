import Foundation
import Yams

/// Merges defaults, the YAML file, `STARLING_*` environment variables and flags into a
/// `NodeConfig`, in that order of precedence. Bad input never crashes: every problem is a
/// `ConfigError` naming the key and where the value came from.
public enum ConfigLoader {
    /// The environment variable naming the config file (the flag is `--config`).
    public static let configFileEnv = "STARLING_CONFIG"

    /// `STARLING_*` variables that are not node settings: the CLI client's and the config path.
    public static let nonSettingEnv: Set<String> = [configFileEnv, "STARLING_URL", "STARLING_TOKEN"]

    /// A value given on the command line for a key (a dedicated flag or `--set key=value`).
    public struct FlagValue: Sendable {
        public var flag: String
        public var key: String
        public var value: String
        public init(flag: String, key: String, value: String) {
            self.flag = flag
            self.key = key
            self.value = value
        }
    }

    public struct Result: Sendable {
        public var config: NodeConfig
        /// The config file used, if any.
        public var file: String?
        /// `STARLING_*` variables that matched no setting (probably typos); logged as warnings.
        public var unknownEnvironment: [String]
    }

    public static func load(configFile flagFile: String?, environment: [String: String], flags: [FlagValue]) throws(ConfigError) -> Result {
        var config = NodeConfig()
        let file = flagFile ?? environment[configFileEnv].flatMap { $0.isEmpty ? nil : $0 }
        if let file {
            let text: String
            do {
                text = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw ConfigError("cannot read config file \(file): \((error as NSError).localizedDescription)")
            }
            try apply(yaml: text, file: file, to: &config)
        }
        var unknown: [String] = []
        let byEnv = Dictionary(uniqueKeysWithValues: ConfigKey.all.map { ($0.env, $0) })
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) where name.hasPrefix("STARLING_") {
            guard let key = byEnv[name] else {
                if !nonSettingEnv.contains(name) { unknown.append(name) }
                continue
            }
            try key.apply(&config, .scalar(value), .environment(name), key)
        }
        for f in flags {
            guard let key = ConfigKey.named(f.key) else {
                throw ConfigError("unknown configuration key \"\(f.key)\" in \(f.flag)\(suggestion(for: f.key))")
            }
            try key.apply(&config, .scalar(f.value), .flag(f.flag), key)
        }
        return Result(config: config, file: file, unknownEnvironment: unknown)
    }

    /// Applies a YAML document (nested maps whose leaves are the documented keys).
    public static func apply(yaml text: String, file: String, to config: inout NodeConfig) throws(ConfigError) {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let e as YamlError {
            throw ConfigError("config file \(file) is not valid YAML: \(e)")
        } catch {
            throw ConfigError("config file \(file) is not valid YAML: \(error)")
        }
        guard let root else { return }  // empty file: all defaults
        guard let mapping = root.mapping else {
            throw ConfigError("config file \(file): the top level must be a map of sections (node, http, storage, …)")
        }
        try walk(mapping, prefix: "", file: file, config: &config)
    }

    private static func walk(_ mapping: Node.Mapping, prefix: String, file: String, config: inout NodeConfig) throws(ConfigError) {
        for (k, v) in mapping {
            guard let name = k.scalar?.string else {
                throw ConfigError("config file \(file): keys must be plain strings (under \"\(prefix.isEmpty ? "top level" : prefix)\")")
            }
            let path = prefix.isEmpty ? name : prefix + "." + name
            if let key = ConfigKey.named(path) {
                let value: ConfigValue
                switch v {
                case .scalar(let s):
                    value = .scalar(s.string)
                case .sequence(let seq):
                    var items: [String] = []
                    for item in seq {
                        guard let s = item.scalar?.string else {
                            throw ConfigError("config file \(file): \(path) must be a list of strings")
                        }
                        items.append(s)
                    }
                    value = .list(items)
                case .mapping(let m):
                    var out: [String: String] = [:]
                    for (mk, mv) in m {
                        guard let ks = mk.scalar?.string, let vs = mv.scalar?.string else {
                            throw ConfigError("config file \(file): \(path) must map strings to strings")
                        }
                        out[ks] = vs
                    }
                    value = .map(out)
                @unknown default:
                    throw ConfigError("config file \(file): unsupported YAML construct at \(path)")
                }
                // A YAML null (`key:` or `key: ~`) means "the default".
                if case .scalar(let s) = v, s.style == .plain, ["", "~", "null", "Null", "NULL"].contains(s.string) { continue }
                try key.apply(&config, value, .file(file), key)
            } else if ConfigKey.all.contains(where: { $0.key.hasPrefix(path + ".") }) {
                // A section: a map of keys, or empty (`auth:` with only comments under it).
                if let m = v.mapping {
                    try walk(m, prefix: path, file: file, config: &config)
                } else if case .scalar(let s) = v, s.style == .plain, ["", "~", "null"].contains(s.string) {
                    continue
                } else {
                    throw ConfigError("config file \(file): \(path) must be a map of settings (e.g. \(path).\(ConfigKey.all.first { $0.key.hasPrefix(path + ".") }!.key.dropFirst(path.count + 1)): …)")
                }
            } else {
                throw ConfigError("config file \(file): unknown key \"\(path)\"\(suggestion(for: path))")
            }
        }
    }

    /// " (did you mean …?)" for a near miss, else "".
    static func suggestion(for key: String) -> String {
        let best = ConfigKey.all.map { ($0.key, editDistance($0.key, key)) }.min { $0.1 < $1.1 }
        guard let best, best.1 <= max(2, key.count / 4) else {
            return "; known keys are listed in docs/configuration.md and by `starling serve --print-config`"
        }
        return " (did you mean \"\(best.0)\"?)"
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8), b = Array(b.utf8)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }

    /// The effective configuration as YAML, secrets redacted (`starling serve --print-config`).
    public static func render(_ config: NodeConfig) -> String {
        var out = "# Effective Starling configuration (defaults < file < environment < flags).\n"
        var section = ""
        for key in ConfigKey.all {
            let parts = key.key.split(separator: ".", maxSplits: 1).map(String.init)
            if parts[0] != section {
                section = parts[0]
                out += "\(section):\n"
            }
            guard let value = key.show(config) else {
                out += "  # \(parts[1]): unset (default: \(key.defaultText))\n"
                continue
            }
            switch value {
            case .scalar(let s): out += "  \(parts[1]): \(yamlScalar(s))\n"
            case .list(let l): out += "  \(parts[1]): [\(l.map(yamlScalar).joined(separator: ", "))]\n"
            case .map(let m):
                if m.isEmpty {
                    out += "  \(parts[1]): {}\n"
                } else {
                    out += "  \(parts[1]):\n"
                    for (k, v) in m.sorted(by: { $0.key < $1.key }) { out += "    \(k): \(yamlScalar(v))\n" }
                }
            }
        }
        return out
    }

    static func yamlScalar(_ s: String) -> String {
        let plainSafe = !s.isEmpty && s.unicodeScalars.allSatisfy { c in
            CharacterSet.alphanumerics.contains(c) || "._/-".unicodeScalars.contains(c)
        } && !["true", "false", "yes", "no", "on", "off", "null", "~"].contains(s.lowercased())
        if plainSafe { return s }
        return "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}

extension ConfigLoader {
    /// The reference table of `docs/configuration.md` (`starling serve --print-config-reference`).
    public static func markdownReference() -> String {
        var out = "| key | environment variable | flag | default | meaning |\n| --- | --- | --- | --- | --- |\n"
        for k in ConfigKey.all {
            let flag = k.flag.map { "`\($0)`" } ?? "`--set \(k.key)=…`"
            out += "| `\(k.key)` | `\(k.env)` | \(flag) | \(k.defaultText.replacingOccurrences(of: "|", with: "\\|")) | \(k.help.replacingOccurrences(of: "|", with: "\\|")) |\n"
        }
        return out
    }
}
