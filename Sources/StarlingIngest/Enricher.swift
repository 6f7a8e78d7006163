import StarlingCore

/// Static labels added to every ingested series.
///
/// Precedence, strongest first:
/// 1. `overriding` — per agent token (from the token's configuration). They replace whatever
///    the client sent under the same name, so an agent cannot spoof its identity (`tenant`,
///    `agent`, `env`) by sending the label itself.
/// 2. labels sent by the client.
/// 3. `defaults` — per node (`--config` `ingest.extraLabels`, e.g. `region`, `ingested_by`).
///    They only fill labels the client did not send: a node default must not rewrite identities
///    that clients (or Prometheus relabelling) set on purpose.
///
/// Names are validated when the enricher is built (classic label-name syntax, `__name__` is not
/// allowed — enrichment never renames a metric). An empty value in `overriding` removes the
/// client's label (Prometheus semantics: an empty value is an absent label).
public struct Enricher: Sendable, Equatable {
    /// Sorted by name bytes; values may be empty (removal) only in `overriding`.
    let overridingPairs: [(name: [UInt8], value: [UInt8])]
    let defaultPairs: [(name: [UInt8], value: [UInt8])]

    public static let none = Enricher(validated: [], [])

    public enum ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
        case invalidLabelName(String)
        case invalidLabelValue(name: String)

        public var description: String {
            switch self {
            case .invalidLabelName(let n):
                return "enrichment label name \(quoteLabelValue(n)) must match [a-zA-Z_][a-zA-Z0-9_]* and not be __name__"
            case .invalidLabelValue(let n):
                return "enrichment label \(n) has a value containing a NUL byte"
            }
        }
    }

    /// - Parameters:
    ///   - overriding: per-token labels; they replace client labels of the same name.
    ///   - defaults: per-node labels; they are added only when the client did not send the name.
    public init(overriding: [String: String] = [:], defaults: [String: String] = [:]) throws(ConfigError) {
        func prepare(_ d: [String: String], allowEmpty: Bool) throws(ConfigError) -> [(name: [UInt8], value: [UInt8])] {
            var out: [(name: [UInt8], value: [UInt8])] = []
            for (k, v) in d {
                guard isValidLabelName(k), k != metricNameLabel else { throw .invalidLabelName(k) }
                guard !v.utf8.contains(0) else { throw .invalidLabelValue(name: k) }
                if v.isEmpty && !allowEmpty { continue }
                out.append((Array(k.utf8), Array(v.utf8)))
            }
            return out.sorted { $0.name.lexicographicallyPrecedes($1.name) }
        }
        self.init(validated: try prepare(overriding, allowEmpty: true), try prepare(defaults, allowEmpty: false))
    }

    init(validated overriding: [(name: [UInt8], value: [UInt8])], _ defaults: [(name: [UInt8], value: [UInt8])]) {
        self.overridingPairs = overriding
        self.defaultPairs = defaults
    }

    public var isEmpty: Bool { overridingPairs.isEmpty && defaultPairs.isEmpty }

    /// The same enricher with `more` overriding labels (e.g. node defaults + a token's labels).
    public func addingOverrides(_ more: [String: String]) throws(ConfigError) -> Enricher {
        var merged: [String: String] = [:]
        for p in overridingPairs { merged[String(decoding: p.name, as: UTF8.self)] = String(decoding: p.value, as: UTF8.self) }
        for (k, v) in more { merged[k] = v }
        var defaults: [String: String] = [:]
        for p in defaultPairs { defaults[String(decoding: p.name, as: UTF8.self)] = String(decoding: p.value, as: UTF8.self) }
        return try Enricher(overriding: merged, defaults: defaults)
    }

    public static func == (a: Enricher, b: Enricher) -> Bool {
        a.overridingPairs.elementsEqual(b.overridingPairs) { $0.name == $1.name && $0.value == $1.value }
            && a.defaultPairs.elementsEqual(b.defaultPairs) { $0.name == $1.name && $0.value == $1.value }
    }

    /// Applies the enricher to an already built label set (slow path, for callers outside the
    /// decoders, e.g. StatsD aggregation output).
    public func apply(to labels: Labels) -> Labels {
        if isEmpty { return labels }
        var b = LabelsBuilder(labels)
        for p in defaultPairs where b.get(String(decoding: p.name, as: UTF8.self)) == nil {
            b.set(String(decoding: p.name, as: UTF8.self), String(decoding: p.value, as: UTF8.self))
        }
        for p in overridingPairs {
            b.set(String(decoding: p.name, as: UTF8.self), String(decoding: p.value, as: UTF8.self))
        }
        return b.build()
    }
}
