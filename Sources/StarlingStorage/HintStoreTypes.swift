import StarlingCore

/// One stored hint, as `HintStore.next` returns it.
public struct Hint: Sendable, Equatable {
    /// Sequence number, unique in this store (≥ 1); `HintDeliveryMessage.sequence`.
    public var seq: UInt64
    /// The coordinator's clock when the hint was stored (ms).
    public var storedAtMs: Int64
    /// Samples in the payload, as given to `append`.
    public var sampleCount: Int
    /// The encoded write body, as given to `append`.
    public var payload: [UInt8]
    /// Bytes the hint occupies in the store (key + value): the unit of every hint byte limit,
    /// counter and replay throttle.
    public var storedBytes: Int

    public init(seq: UInt64, storedAtMs: Int64, sampleCount: Int, payload: [UInt8], storedBytes: Int) {
        self.seq = seq
        self.storedAtMs = storedAtMs
        self.sampleCount = sampleCount
        self.payload = payload
        self.storedBytes = storedBytes
    }
}

/// The value of a hint key: `varint stored_at_ms ‖ uvarint sample_count ‖ payload`.
enum HintValue {
    struct Header {
        var storedAtMs: Int64
        var sampleCount: Int
        /// Offset of the payload in the value.
        var payloadOffset: Int
    }

    /// Two 64-bit varints at most.
    static let maxHeaderBytes = 20

    static func appendHeader(_ out: inout [UInt8], storedAtMs: Int64, sampleCount: Int) {
        out.appendVarint(storedAtMs)
        out.appendUVarint(UInt64(sampleCount))
    }

    static func decodeHeader(_ value: [UInt8]) throws(DecodeError) -> Header {
        var r = ByteReader(value)
        let storedAtMs = try r.readVarint("hint stored_at_ms")
        let samples = try r.readUVarint("hint sample_count")
        guard samples <= UInt64(Int32.max) else {
            throw .malformed(context: "hint sample_count \(samples) exceeds \(Int32.max)")
        }
        return Header(storedAtMs: storedAtMs, sampleCount: Int(samples), payloadOffset: r.offset)
    }

    static func decode(_ value: [UInt8], seq: UInt64, storedBytes: Int) throws(DecodeError) -> Hint {
        let h = try decodeHeader(value)
        return Hint(seq: seq, storedAtMs: h.storedAtMs, sampleCount: h.sampleCount,
                    payload: Array(value[h.payloadOffset...]), storedBytes: storedBytes)
    }
}

/// What `HintStore.append` did.
public enum HintAppendOutcome: Sendable, Equatable {
    /// Stored durably under this sequence number.
    case stored(seq: UInt64)
    /// Not stored: a limit was reached. The write counts as failed for that replica.
    case refused(HintRefusal)
}

/// A hint refused by a limit, naming it.
public struct HintRefusal: Sendable, Equatable, CustomStringConvertible {
    /// The limit that refused a hint, **append only** (metric label values).
    public enum Reason: String, Sendable, Equatable, Hashable, CaseIterable {
        /// `HintStore.Settings.maxBytes`: the whole store is full.
        case maxBytes = "max_bytes"
        /// `HintStore.Settings.maxBytesPerTarget`: this target's queue is full.
        case maxBytesPerTarget = "max_bytes_per_target"
    }

    public var reason: Reason
    public var target: String
    /// The limit's value, bytes.
    public var limitBytes: Int
    /// Bytes pending under that limit (the store's or the target's) before this hint.
    public var pendingBytes: Int
    /// Stored size the hint would have had.
    public var hintBytes: Int

    public var description: String {
        "hint for \(target) refused by \(reason.rawValue): \(pendingBytes) bytes pending + \(hintBytes) > limit \(limitBytes)"
    }
}

/// Hints, samples and stored bytes.
public struct HintCounts: Sendable, Equatable, CustomStringConvertible {
    public var hints = 0
    public var samples = 0
    public var bytes = 0

    public init(hints: Int = 0, samples: Int = 0, bytes: Int = 0) {
        self.hints = hints
        self.samples = samples
        self.bytes = bytes
    }

    public var description: String { "\(hints) hints, \(samples) samples, \(bytes) bytes" }
}

/// One target's pending hints.
public struct HintTargetSummary: Sendable, Equatable {
    public var target: String
    public var pendingHints: Int
    public var pendingBytes: Int
    public var pendingSamples: Int
    /// Lowest and highest pending sequence numbers.
    public var firstSeq: UInt64
    public var lastSeq: UInt64
    /// `stored_at_ms` of the first hint in sequence order (the hint-age metric).
    public var oldestStoredAtMs: Int64
}

/// Monotonic counters since the store was opened (the `…_total` metrics).
public struct HintStoreCounters: Sendable, Equatable {
    public var appendedHints: UInt64 = 0
    public var appendedSamples: UInt64 = 0
    public var appendedBytes: UInt64 = 0
    /// Removed after the target acknowledged them.
    public var replayedHints: UInt64 = 0
    public var replayedSamples: UInt64 = 0
    public var replayedBytes: UInt64 = 0
    /// Not stored because of a limit, by limit.
    public var refusedHints: [HintRefusal.Reason: UInt64] = [:]
    public var refusedSamples: [HintRefusal.Reason: UInt64] = [:]
    /// Dropped by `expire` (older than `maxAgeMs`): lost for the target until anti-entropy.
    public var expiredHints: UInt64 = 0
    public var expiredSamples: UInt64 = 0
    /// Dropped by `drop(target:)` (target removed from the cluster).
    public var droppedHints: UInt64 = 0
    public var droppedSamples: UInt64 = 0
    /// Undecodable records deleted when the store opened.
    public var corruptHintsDropped: UInt64 = 0

    public init() {}
}

/// A snapshot of `HintStore` for `/metrics` and the cluster API.
public struct HintStoreStats: Sendable, Equatable {
    /// Targets with pending hints.
    public var targets: [String: HintTargetSummary] = [:]
    public var pendingHints = 0
    public var pendingBytes = 0
    public var pendingSamples = 0
    public var counters = HintStoreCounters()
    /// The sequence number the next stored hint gets.
    public var nextSeq: UInt64 = 1

    public init() {}
}

/// What `HintStore.expire` dropped. Not empty means writes are missing on those targets until
/// anti-entropy repairs them: the caller logs `description` as an error.
public struct ExpiredHintsReport: Sendable, Equatable, CustomStringConvertible {
    public struct Loss: Sendable, Equatable {
        public var hints: Int
        public var samples: Int
        public var bytes: Int
        /// `stored_at_ms` of the oldest hint dropped.
        public var oldestStoredAtMs: Int64
    }

    public var maxAgeMs: Int64
    public var targets: [String: Loss] = [:]
    public var hints = 0
    public var samples = 0

    public init(maxAgeMs: Int64) { self.maxAgeMs = maxAgeMs }

    public var isEmpty: Bool { hints == 0 }

    public var description: String {
        if isEmpty { return "no hints expired" }
        let parts = targets.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value.hints) hints, \($0.value.samples) samples" }
        return "hinted handoff dropped \(hints) hints (\(samples) samples) older than \(maxAgeMs) ms — "
            + "these writes are missing on their replicas until anti-entropy repairs them: "
            + parts.joined(separator: "; ")
    }
}

/// What opening a `HintStore` found.
public struct HintRecoveryReport: Sendable, Equatable {
    public var hints = 0
    public var samples = 0
    public var bytes = 0
    public var targets = 0
    /// Records under `0x09` that did not decode and were deleted (should be zero).
    public var corruptHintsDropped = 0
    public var nextSeq: UInt64 = 1
}

public enum HintStoreError: Error, Sendable, CustomStringConvertible {
    /// The target node ID cannot be a key (empty, or longer than `HintStore.maxTargetBytes`).
    case invalidTarget(target: String, reason: String)
    /// The underlying store failed; nothing was changed or counted.
    case store(StoreError)
    /// A stored hint contradicts the format.
    case corrupt(String)

    public var description: String {
        switch self {
        case .invalidTarget(let t, let r): "invalid hint target \"\(t)\": \(r)"
        case .store(let e): "hint store: \(e)"
        case .corrupt(let m): "hint store corrupt: \(m)"
        }
    }
}
