import StarlingCore
import Synchronization

/// The durable queue of hints for hinted handoff: writes a coordinator keeps for a replica that
/// did not answer, replayed when it is back (docs/cluster.md, "Hinted handoff"). Pure logic over
/// a `KeyValueStore`: it never reads a clock (callers pass `nowMs`) and does I/O only through the
/// store.
///
/// **Layout** (docs/formats/storage.md, prefix `0x09`): one key per hint,
/// `09 | uvarint len ‖ target | seq u64 BE` → `varint stored_at_ms ‖ uvarint sample_count ‖
/// payload`. The payload is an encoded `WriteMessage` body; this store never parses it. One
/// target's hints are contiguous and in sequence order, so replay is a range read and removing
/// acknowledged hints a range delete. `09 | 00` holds the highest sequence number handed out.
///
/// **Sequence numbers** start at 1 and grow by one per stored hint, across all targets, and are
/// never reused: not after delivery, and not after a restart (recovery takes the maximum of the
/// high-water mark and the highest key found). A hint is written under the same lock that hands
/// out its number, so any snapshot of the store holds a gap-free *prefix* of the numbers handed
/// out: a batch read by `next` can never be followed by a hint with a smaller number, and
/// `remove(through:)` after a delivery deletes exactly what was sent and nothing newer.
///
/// **Bounds.** Every hint is counted at its stored size (key + value bytes). `append` refuses a
/// hint that would take the store past `Settings.maxBytes` or its target past
/// `maxBytesPerTarget`: the caller then counts the write as failed for that replica (it never
/// silently drops it). `expire` drops hints older than `maxAgeMs` and says so in its report —
/// that is data the target will only get back through anti-entropy.
///
/// Thread-safe: mutating calls serialize on one lock held across their store write (so the
/// counters always match the store); `next` reads a store snapshot without the lock. Open one
/// `HintStore` per `KeyValueStore`: its in-memory totals assume it is the only writer of `0x09`.
public final class HintStore: Sendable {
    /// Hint store settings (docs/cluster.md, "Hinted handoff"). Not node config keys yet: the
    /// coordinator that owns the store is not built.
    public struct Settings: Sendable, Equatable {
        /// Stored bytes (key + value) of all pending hints together. Default 1 GiB
        /// (1_073_741_824). A hint beyond it is refused (`max_bytes`). Bounds the disk a long
        /// outage can take; a larger value rides out longer outages of more replicas.
        public var maxBytes: Int = 1 << 30
        /// Stored bytes of one target's pending hints. Default 256 MiB (268_435_456): a single
        /// dead replica cannot take the whole budget and starve hints for the others. At a 16 MiB/s
        /// replay rate a full target replays in about 16 s.
        public var maxBytesPerTarget: Int = 256 << 20
        /// Age (ms, from `stored_at_ms`) after which a hint is dropped by `expire`. Default
        /// 10_800_000 (3 h, like Cassandra's `max_hint_window`): a replica down longer than this
        /// is repaired by anti-entropy instead; replaying hours of backlog would only compete
        /// with it. Must exceed the member removal timeout, or hints of a node that is merely
        /// down would expire before it comes back.
        public var maxAgeMs: Int64 = 3 * 3_600_000
        /// Fsync every hint write. Default false, like `storage.sync_writes`: a hint survives
        /// `kill -9` of the process (RocksDB's log is in the page cache), not power loss.
        public var syncWrites = false

        public init() {}

        public init(maxBytes: Int, maxBytesPerTarget: Int, maxAgeMs: Int64, syncWrites: Bool = false) {
            self.maxBytes = maxBytes
            self.maxBytesPerTarget = maxBytesPerTarget
            self.maxAgeMs = maxAgeMs
            self.syncWrites = syncWrites
        }
    }

    /// Longest target node ID, in UTF-8 bytes. Node IDs are 32 hex digits; this only stops a
    /// malformed member entry from making giant keys.
    public static let maxTargetBytes = 255

    public let settings: Settings
    /// What opening the store found.
    public let recovery: HintRecoveryReport

    private let store: any KeyValueStore
    private let state: Mutex<State>

    struct TargetState: Sendable {
        var hints = 0
        var bytes = 0
        var samples = 0
        /// Lowest and highest pending sequence number.
        var firstSeq: UInt64 = 0
        var lastSeq: UInt64 = 0
        /// `stored_at_ms` of the hint numbered `firstSeq` (the head of the queue).
        var headStoredAtMs: Int64 = 0
        /// At least the largest `stored_at_ms` of any pending hint (exact after appends, an upper
        /// bound after removals). When it is expired, every hint of the target is.
        var newestStoredAtMs: Int64 = .min

        mutating func add(seq: UInt64, storedAtMs: Int64, samples n: Int, bytes b: Int) {
            if hints == 0 {
                firstSeq = seq
                headStoredAtMs = storedAtMs
            }
            hints += 1
            bytes += b
            samples += n
            lastSeq = max(lastSeq, seq)
            newestStoredAtMs = max(newestStoredAtMs, storedAtMs)
        }
    }

    struct State: Sendable {
        /// Next sequence number to hand out.
        var nextSeq: UInt64 = 1
        var targets: [String: TargetState] = [:]
        var totalBytes = 0
        var totalHints = 0
        var totalSamples = 0
        var counters = HintStoreCounters()

        mutating func subtract(_ target: String, _ removed: HintCounts) {
            guard var t = targets[target] else { return }
            t.hints -= removed.hints
            t.bytes -= removed.bytes
            t.samples -= removed.samples
            precondition(t.hints >= 0 && t.bytes >= 0 && t.samples >= 0,
                         "hint totals of \(target) went negative removing \(removed)")
            totalHints -= removed.hints
            totalBytes -= removed.bytes
            totalSamples -= removed.samples
            targets[target] = t.hints == 0 ? nil : t
        }
    }

    /// Opens the hint store over `store`, scanning the `0x09` range to recover the sequence
    /// number and the per-target totals. Records that do not decode (which RocksDB's checksums
    /// make a sign of a bug, not of disk damage) are deleted and counted in
    /// `recovery.corruptHintsDropped`; the node logs them loudly.
    public init(store: any KeyValueStore, settings: Settings = .init()) throws(HintStoreError) {
        precondition(settings.maxBytes > 0 && settings.maxBytesPerTarget > 0 && settings.maxAgeMs > 0,
                     "hint store limits must be positive: \(settings)")
        self.store = store
        self.settings = settings
        var s = State()
        var report = HintRecoveryReport()
        var highWater: UInt64 = 0
        var corrupt = KVWriteBatch()
        do {
            let it = try store.makeIterator(lowerBound: [Keyspace.hintPrefix], upperBound: [Keyspace.hintPrefix + 1])
            it.seekToFirst()
            while it.isValid {
                let key = it.key
                let value = it.value
                if key == Keyspace.hintSeqKey {
                    var r = ByteReader(value)
                    if value.count == 8, let v = try? r.readBigEndian(UInt64.self) {
                        highWater = v
                    } else {
                        corrupt.delete(key)
                        report.corruptHintsDropped += 1
                    }
                } else if let (target, seq) = Keyspace.parseHintKey(key), seq >= 1,
                          let header = try? HintValue.decodeHeader(value) {
                    s.targets[target, default: TargetState()].add(
                        seq: seq, storedAtMs: header.storedAtMs, samples: header.sampleCount,
                        bytes: key.count + value.count)
                    highWater = max(highWater, seq)
                } else {
                    corrupt.delete(key)
                    report.corruptHintsDropped += 1
                }
                it.next()
            }
            try it.checkError()
            if !corrupt.isEmpty { try store.write(corrupt, sync: true) }
        } catch {
            throw .store(error)
        }
        for t in s.targets.values {
            s.totalHints += t.hints
            s.totalBytes += t.bytes
            s.totalSamples += t.samples
        }
        s.nextSeq = highWater + 1
        s.counters.corruptHintsDropped = UInt64(report.corruptHintsDropped)
        report.hints = s.totalHints
        report.bytes = s.totalBytes
        report.samples = s.totalSamples
        report.targets = s.targets.count
        report.nextSeq = s.nextSeq
        self.recovery = report
        self.state = Mutex(s)
    }

    // MARK: - Append

    /// Stores a hint for `target`: `payload` is the encoded write body, `sampleCount` the samples
    /// it carries (for the counters; not checked against the payload). Returns the hint's
    /// sequence number, or the limit that refused it (counted in `stats.refused…`). Throws when
    /// the target ID is invalid or the store fails; nothing is counted as stored then.
    public func append(target: String, payload: [UInt8], sampleCount: Int, nowMs: Int64) throws(HintStoreError) -> HintAppendOutcome {
        precondition(sampleCount >= 0, "negative sample count \(sampleCount)")
        try Self.validate(target: target)
        // Everything but the sequence number is built before taking the lock.
        var key = Keyspace.hintTargetPrefix(target)  // capacity for the seq reserved
        var value: [UInt8] = []
        value.reserveCapacity(HintValue.maxHeaderBytes + payload.count)
        HintValue.appendHeader(&value, storedAtMs: nowMs, sampleCount: sampleCount)
        value.append(contentsOf: payload)
        let hintBytes = key.count + 8 + value.count
        return try state.withLock { (s: inout State) throws(HintStoreError) -> HintAppendOutcome in
            let targetBytes = s.targets[target]?.bytes ?? 0
            var refusal: HintRefusal?
            if targetBytes + hintBytes > settings.maxBytesPerTarget {
                refusal = HintRefusal(reason: .maxBytesPerTarget, target: target, limitBytes: settings.maxBytesPerTarget,
                                      pendingBytes: targetBytes, hintBytes: hintBytes)
            } else if s.totalBytes + hintBytes > settings.maxBytes {
                refusal = HintRefusal(reason: .maxBytes, target: target, limitBytes: settings.maxBytes,
                                      pendingBytes: s.totalBytes, hintBytes: hintBytes)
            }
            if let refusal {
                s.counters.refusedHints[refusal.reason, default: 0] += 1
                s.counters.refusedSamples[refusal.reason, default: 0] += UInt64(sampleCount)
                return .refused(refusal)
            }
            let seq = s.nextSeq
            key.appendBigEndian(seq)
            var batch = KVWriteBatch()
            batch.put(key, value)
            do throws(StoreError) { try store.write(batch, sync: settings.syncWrites) } catch { throw .store(error) }
            s.nextSeq = seq + 1
            s.targets[target, default: TargetState()].add(seq: seq, storedAtMs: nowMs, samples: sampleCount, bytes: hintBytes)
            s.totalHints += 1
            s.totalBytes += hintBytes
            s.totalSamples += sampleCount
            s.counters.appendedHints += 1
            s.counters.appendedSamples += UInt64(sampleCount)
            s.counters.appendedBytes += UInt64(hintBytes)
            return .stored(seq: seq)
        }
    }

    // MARK: - Reading

    /// Every target with pending hints, in target order.
    public func targets() -> [HintTargetSummary] {
        state.withLock { s in
            s.targets.map { Self.summary($0.key, $0.value) }.sorted { $0.target.utf8.lexicographicallyPrecedes($1.target.utf8) }
        }
    }

    /// Pending hints for `target` numbered above `after` (0: from the first), in sequence order,
    /// up to `maxBytes` stored bytes — but at least one hint when any is pending, so a hint larger
    /// than `maxBytes` is still delivered rather than blocking its queue forever.
    public func next(for target: String, after seq: UInt64, maxBytes: Int) throws(HintStoreError) -> [Hint] {
        precondition(maxBytes > 0, "maxBytes must be positive, got \(maxBytes)")
        try Self.validate(target: target)
        guard seq < .max else { return [] }
        var out: [Hint] = []
        var bytes = 0
        try forEachHint(target, from: seq + 1) { (hintSeq, key, value) throws(HintStoreError) in
            let hint: Hint
            do {
                hint = try HintValue.decode(value, seq: hintSeq, storedBytes: key.count + value.count)
            } catch {
                throw .corrupt("hint \(hintSeq) of target \(target): \(error)")
            }
            if !out.isEmpty && bytes + hint.storedBytes > maxBytes { return false }
            bytes += hint.storedBytes
            out.append(hint)
            return true
        }
        return out
    }

    // MARK: - Removal

    /// Deletes `target`'s hints numbered up to `seq` (inclusive) after the target acknowledged
    /// them; counted as replayed. Hints already gone (expired, dropped) are simply skipped.
    @discardableResult
    public func remove(target: String, through seq: UInt64) throws(HintStoreError) -> HintCounts {
        try Self.validate(target: target)
        return try state.withLock { (s: inout State) throws(HintStoreError) -> HintCounts in
            guard let t = s.targets[target], seq >= t.firstSeq else { return HintCounts() }
            let removed = try removePrefix(target, t, &s, .throughSeq(seq))
            s.counters.replayedHints += UInt64(removed.hints)
            s.counters.replayedSamples += UInt64(removed.samples)
            s.counters.replayedBytes += UInt64(removed.bytes)
            return removed
        }
    }

    /// Drops every hint older than `settings.maxAgeMs` (`stored_at_ms + maxAgeMs ≤ nowMs`). This
    /// is data loss for the targets until anti-entropy repairs them: the report names each target
    /// and what it lost, and the caller must log it as an error. Each queue expires from its head
    /// in sequence order: a hint behind a younger one (the clock stepped back) waits for it.
    public func expire(nowMs: Int64) throws(HintStoreError) -> ExpiredHintsReport {
        let cutoff = nowMs &- settings.maxAgeMs
        return try state.withLock { (s: inout State) throws(HintStoreError) -> ExpiredHintsReport in
            var report = ExpiredHintsReport(maxAgeMs: settings.maxAgeMs)
            for (target, t) in s.targets.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) })
            where t.headStoredAtMs <= cutoff {
                let oldest = t.headStoredAtMs
                let removed = try removePrefix(target, t, &s, .storedAtOrBefore(cutoff))
                guard removed.hints > 0 else { continue }
                report.targets[target] = ExpiredHintsReport.Loss(
                    hints: removed.hints, samples: removed.samples, bytes: removed.bytes, oldestStoredAtMs: oldest)
                report.hints += removed.hints
                report.samples += removed.samples
                s.counters.expiredHints += UInt64(removed.hints)
                s.counters.expiredSamples += UInt64(removed.samples)
            }
            return report
        }
    }

    /// Deletes every hint for `target` (a node removed from the cluster: its shards are
    /// re-replicated from the surviving replicas, so its hints have no receiver). Counted in
    /// `stats.droppedHints`.
    @discardableResult
    public func drop(target: String) throws(HintStoreError) -> HintCounts {
        try Self.validate(target: target)
        return try state.withLock { (s: inout State) throws(HintStoreError) -> HintCounts in
            guard let t = s.targets[target] else { return HintCounts() }
            let removed = try removeAll(target, t, &s)
            s.counters.droppedHints += UInt64(removed.hints)
            s.counters.droppedSamples += UInt64(removed.samples)
            return removed
        }
    }

    // MARK: - Stats

    /// A consistent snapshot of pending totals and counters, for `/metrics`.
    public var stats: HintStoreStats {
        state.withLock { s in
            var st = HintStoreStats()
            for (target, t) in s.targets { st.targets[target] = Self.summary(target, t) }
            st.pendingHints = s.totalHints
            st.pendingBytes = s.totalBytes
            st.pendingSamples = s.totalSamples
            st.counters = s.counters
            st.nextSeq = s.nextSeq
            return st
        }
    }

    // MARK: - Internals

    private static func validate(target: String) throws(HintStoreError) {
        let n = target.utf8.count
        if n == 0 { throw .invalidTarget(target: target, reason: "empty node ID") }
        if n > maxTargetBytes {
            throw .invalidTarget(target: String(target.prefix(32)) + "…", reason: "node ID of \(n) bytes exceeds \(maxTargetBytes)")
        }
    }

    private static func summary(_ target: String, _ t: TargetState) -> HintTargetSummary {
        HintTargetSummary(target: target, pendingHints: t.hints, pendingBytes: t.bytes, pendingSamples: t.samples,
                          firstSeq: t.firstSeq, lastSeq: t.lastSeq, oldestStoredAtMs: t.headStoredAtMs)
    }

    /// The high-water mark goes into every deleting batch, so deleting the newest hints never
    /// lets a restart hand out their numbers again.
    private func highWaterPut(_ batch: inout KVWriteBatch, _ s: State) {
        var v: [UInt8] = []
        v.appendBigEndian(s.nextSeq - 1)
        batch.put(Keyspace.hintSeqKey, v)
    }

    /// Deletes all of `target`'s hints with one range delete; the totals are known, nothing is read.
    private func removeAll(_ target: String, _ t: TargetState, _ s: inout State) throws(HintStoreError) -> HintCounts {
        let prefix = Keyspace.hintTargetPrefix(target)
        var batch = KVWriteBatch()
        batch.deleteRange(prefix, Keyspace.prefixEnd(prefix))
        highWaterPut(&batch, s)
        do throws(StoreError) { try store.write(batch, sync: settings.syncWrites) } catch { throw .store(error) }
        let removed = HintCounts(hints: t.hints, samples: t.samples, bytes: t.bytes)
        s.subtract(target, removed)
        return removed
    }

    /// Which head of a queue `removePrefix` deletes.
    private enum PrefixBound {
        /// Hints numbered up to this (inclusive): acknowledged ones.
        case throughSeq(UInt64)
        /// Hints stored at or before this time, from the head until the first younger one.
        case storedAtOrBefore(Int64)

        func covers(seq: UInt64, storedAtMs: Int64) -> Bool {
            switch self {
            case .throughSeq(let through): seq <= through
            case .storedAtOrBefore(let cutoff): storedAtMs <= cutoff
            }
        }

        /// Whether the bound covers the whole queue, judged from the totals alone.
        func coversAll(_ t: TargetState) -> Bool {
            switch self {
            case .throughSeq(let through): through >= t.lastSeq
            case .storedAtOrBefore(let cutoff): t.newestStoredAtMs <= cutoff
            }
        }
    }

    /// Deletes the longest head of `target`'s queue that `bound` covers, with one range delete.
    /// Reads the hints it removes (for their sizes and sample counts) and the one after them
    /// (the new head) — unless the totals show the bound covers the whole queue, the usual case
    /// once replay has caught up.
    private func removePrefix(_ target: String, _ t: TargetState, _ s: inout State,
                              _ bound: PrefixBound) throws(HintStoreError) -> HintCounts {
        if bound.coversAll(t) { return try removeAll(target, t, &s) }
        let prefix = Keyspace.hintTargetPrefix(target)
        var removed = HintCounts()
        var newHead: (seq: UInt64, storedAtMs: Int64)?
        try forEachHint(target, from: t.firstSeq) { (seq, key, value) throws(HintStoreError) in
            let header: HintValue.Header
            do { header = try HintValue.decodeHeader(value) } catch {
                throw .corrupt("hint \(seq) of target \(target): \(error)")
            }
            if !bound.covers(seq: seq, storedAtMs: header.storedAtMs) {
                newHead = (seq, header.storedAtMs)
                return false
            }
            removed.hints += 1
            removed.samples += header.sampleCount
            removed.bytes += key.count + value.count
            return true
        }
        guard removed.hints > 0 else { return removed }
        var batch = KVWriteBatch()
        // From the old head, not the target prefix: successive removals leave adjacent range
        // tombstones rather than ever longer overlapping ones.
        batch.deleteRange(Keyspace.hintKey(target: target, seq: t.firstSeq),
                          newHead.map { Keyspace.hintKey(target: target, seq: $0.seq) } ?? Keyspace.prefixEnd(prefix))
        highWaterPut(&batch, s)
        do throws(StoreError) { try store.write(batch, sync: settings.syncWrites) } catch { throw .store(error) }
        s.subtract(target, removed)
        if let newHead {
            precondition(s.targets[target] != nil, "hint \(newHead.seq) of \(target) kept but the totals say none is left")
            s.targets[target]!.firstSeq = newHead.seq
            s.targets[target]!.headStoredAtMs = newHead.storedAtMs
        } else {
            precondition(s.targets[target] == nil,
                         "removed every stored hint of \(target) but the totals still count \(s.targets[target].map { "\($0.hints)" } ?? "")")
        }
        return removed
    }

    /// Visits `target`'s stored hints numbered `seq` and up, in order, until `body` returns
    /// false. Reads a snapshot of the store.
    private func forEachHint(_ target: String, from seq: UInt64,
                             _ body: (_ seq: UInt64, _ key: [UInt8], _ value: [UInt8]) throws(HintStoreError) -> Bool) throws(HintStoreError) {
        let prefix = Keyspace.hintTargetPrefix(target)
        let it: any KVIterator
        do { it = try store.makeIterator(lowerBound: prefix, upperBound: Keyspace.prefixEnd(prefix)) } catch {
            throw .store(error)
        }
        it.seek(Keyspace.hintKey(target: target, seq: seq))
        while it.isValid {
            let key = it.key
            guard let (_, hintSeq) = Keyspace.parseHintKey(key) else {
                throw .corrupt("key \(key.map { String($0, radix: 16) }.joined(separator: " ")) under hint target \(target) does not parse")
            }
            if try !body(hintSeq, key, it.value) { return }
            it.next()
        }
        do { try it.checkError() } catch { throw .store(error) }
    }
}
