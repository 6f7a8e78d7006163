import StarlingCore

/// A silence: alerts matching all `matchers` are muted while `startsAtMs <= now < endsAtMs`.
public struct Silence: Sendable, Equatable {
    public enum State: String, Sendable, Equatable {
        case pending, active, expired
    }

    public var id: String
    public var matchers: [LabelMatcher]
    public var startsAtMs: Int64
    public var endsAtMs: Int64
    public var createdBy: String
    public var comment: String
    public var updatedAtMs: Int64

    public init(
        id: String = "", matchers: [LabelMatcher], startsAtMs: Int64, endsAtMs: Int64, createdBy: String, comment: String,
        updatedAtMs: Int64 = 0
    ) {
        self.id = id
        self.matchers = matchers
        self.startsAtMs = startsAtMs
        self.endsAtMs = endsAtMs
        self.createdBy = createdBy
        self.comment = comment
        self.updatedAtMs = updatedAtMs
    }

    public func state(atMs nowMs: Int64) -> State {
        if nowMs < startsAtMs { return .pending }
        if nowMs < endsAtMs { return .active }
        return .expired
    }

    public func mutes(_ labels: Labels, atMs nowMs: Int64) -> Bool {
        state(atMs: nowMs) == .active && matchers.matches(labels)
    }
}

public enum SilenceError: Error, Sendable, Equatable, CustomStringConvertible {
    case noMatchers
    /// Every matcher matches the empty string, so the silence would mute nearly everything.
    case matchesEverything
    case tooManyMatchers(count: Int, limit: Int)
    case endBeforeStart
    case endInPast
    case missingCreator
    case missingComment
    case notFound(String)
    case alreadyExpired(String)
    case tooManySilences(limit: Int)
    case fieldTooLong(field: String, limit: Int)

    public var description: String {
        switch self {
        case .noMatchers: return "silence has no matchers"
        case .matchesEverything: return "at least one matcher must not match the empty string"
        case .tooManyMatchers(let c, let l): return "silence has \(c) matchers, limit is \(l)"
        case .endBeforeStart: return "silence ends before it starts"
        case .endInPast: return "silence end time is in the past"
        case .missingCreator: return "silence has no creator (createdBy)"
        case .missingComment: return "silence has no comment"
        case .notFound(let id): return "silence \(id) not found"
        case .alreadyExpired(let id): return "silence \(id) is already expired"
        case .tooManySilences(let l): return "too many silences (limit \(l))"
        case .fieldTooLong(let f, let l): return "\(f) is longer than \(l) bytes"
        }
    }
}

public struct SilenceSettings: Sendable {
    /// Most silences kept (all states); Alertmanager 0.28 has `--silences.max-silences`.
    public var maxSilences: Int = 10_000
    /// Most matchers per silence.
    public var maxMatchers: Int = 64
    /// Longest comment / creator, in bytes.
    public var maxTextBytes: Int = 4_096
    /// How long expired silences are kept (shown as expired) before garbage collection.
    /// Alertmanager keeps them for `--data.retention` (120 h).
    public var expiredRetentionMs: Int64 = 120 * 3_600_000

    public init() {}
}

/// The silence store: create, update, expire, query, and the muting decision.
/// IDs are random UUIDs drawn from the caller's generator (seeded in tests).
public struct Silences: Sendable {
    public let settings: SilenceSettings
    public private(set) var byID: [String: Silence] = [:]

    public init(settings: SilenceSettings = .init()) { self.settings = settings }

    /// Creates a silence (empty `id`) or updates one, following Alertmanager: an update happens
    /// in place when the matchers are unchanged and, for an active silence, the start is
    /// unchanged, or, for a pending one, the new start is not in the past. Otherwise the old
    /// silence is expired (if it was not already) and a new silence with a new ID is created.
    /// Returns the ID that now holds the silence.
    public mutating func upsert(
        _ s: Silence, nowMs: Int64, using rng: inout some RandomNumberGenerator
    ) throws(SilenceError) -> String {
        var s = s
        try validate(s, nowMs: nowMs)
        s.updatedAtMs = nowMs
        if !s.id.isEmpty {
            guard let old = byID[s.id] else { throw .notFound(s.id) }
            let state = old.state(atMs: nowMs)
            let inPlace: Bool
            switch state {
            case .active: inPlace = old.matchers == s.matchers && old.startsAtMs == s.startsAtMs
            case .pending: inPlace = old.matchers == s.matchers && s.startsAtMs >= nowMs
            case .expired: inPlace = false  // an expired silence is never revived
            }
            if inPlace {
                byID[s.id] = s
                return s.id
            }
            if state != .expired {
                var expired = old
                if state == .pending { expired.startsAtMs = nowMs }
                expired.endsAtMs = nowMs
                expired.updatedAtMs = nowMs
                byID[old.id] = expired
            }
        }
        if byID.count >= settings.maxSilences { throw .tooManySilences(limit: settings.maxSilences) }
        // A new active silence starts no earlier than now.
        if s.startsAtMs < nowMs { s.startsAtMs = nowMs }
        s.id = makeUUID(&rng)
        byID[s.id] = s
        return s.id
    }

    func validate(_ s: Silence, nowMs: Int64) throws(SilenceError) {
        if s.matchers.isEmpty { throw .noMatchers }
        if s.matchers.count > settings.maxMatchers { throw .tooManyMatchers(count: s.matchers.count, limit: settings.maxMatchers) }
        if s.matchers.allSatisfy(\.matchesEmpty) { throw .matchesEverything }
        if s.endsAtMs < s.startsAtMs { throw .endBeforeStart }
        if s.endsAtMs <= nowMs { throw .endInPast }
        if s.createdBy.isEmpty { throw .missingCreator }
        if s.comment.isEmpty { throw .missingComment }
        if s.createdBy.utf8.count > settings.maxTextBytes { throw .fieldTooLong(field: "createdBy", limit: settings.maxTextBytes) }
        if s.comment.utf8.count > settings.maxTextBytes { throw .fieldTooLong(field: "comment", limit: settings.maxTextBytes) }
    }

    /// Expires a silence now: a pending one gets start = end = now, an active one end = now.
    public mutating func expire(id: String, nowMs: Int64) throws(SilenceError) {
        guard var s = byID[id] else { throw .notFound(id) }
        switch s.state(atMs: nowMs) {
        case .expired: throw .alreadyExpired(id)
        case .pending: s.startsAtMs = nowMs; s.endsAtMs = nowMs
        case .active: s.endsAtMs = nowMs
        }
        s.updatedAtMs = nowMs
        byID[id] = s
    }

    /// Adopts a silence as another node stored it (read back from the replicated record): the
    /// newer update of an ID wins.
    public mutating func adopt(_ s: Silence) {
        if (byID[s.id]?.updatedAtMs ?? .min) < s.updatedAtMs { byID[s.id] = s }
    }

    /// IDs of the active silences muting `labels`, sorted.
    public func silencedBy(_ labels: Labels, nowMs: Int64) -> [String] {
        byID.values.filter { $0.mutes(labels, atMs: nowMs) }.map(\.id).sorted()
    }

    /// Silences in the given states (all when nil), newest update first, then by ID.
    public func list(states: Set<Silence.State>? = nil, nowMs: Int64) -> [Silence] {
        byID.values.filter { states?.contains($0.state(atMs: nowMs)) ?? true }.sorted {
            $0.updatedAtMs != $1.updatedAtMs ? $0.updatedAtMs > $1.updatedAtMs : $0.id < $1.id
        }
    }

    /// Drops silences expired for longer than the retention.
    public mutating func collectGarbage(nowMs: Int64) {
        byID = byID.filter { $0.value.endsAtMs + settings.expiredRetentionMs > nowMs }
    }
}

/// A random (version 4) UUID in its canonical lowercase text form, from `rng`.
func makeUUID(_ rng: inout some RandomNumberGenerator) -> String {
    var bytes = [UInt8](repeating: 0, count: 16)
    let a = rng.next()
    let b = rng.next()
    for i in 0..<8 {
        bytes[i] = UInt8(truncatingIfNeeded: a >> (8 * UInt64(i)))
        bytes[8 + i] = UInt8(truncatingIfNeeded: b >> (8 * UInt64(i)))
    }
    bytes[6] = (bytes[6] & 0x0F) | 0x40
    bytes[8] = (bytes[8] & 0x3F) | 0x80
    let hex = bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }
    return hex[0..<4].joined() + "-" + hex[4..<6].joined() + "-" + hex[6..<8].joined() + "-" + hex[8..<10].joined() + "-"
        + hex[10..<16].joined()
}
