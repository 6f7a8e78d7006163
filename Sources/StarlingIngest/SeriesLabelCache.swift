import StarlingCore
import Synchronization

/// A bounded cache from a series' label bytes *as sent* to the canonical, validated `Labels`
/// the decoder built for them, shared by every request of a node.
///
/// Why: agents resend the same series every scrape, and every request carries one or two samples
/// per series, so parsing, validating, sorting and allocating the label set dominated decoding
/// (VictoriaMetrics keeps the same kind of cache from the raw metric name to its series). A hit
/// costs one XXH64 of the raw bytes, one dictionary probe and one comparison of the raw bytes,
/// and returns the *same* `Labels` buffer every time — which is also the buffer the storage head
/// registered the series with, so the head's label comparison ends at the pointer check.
///
/// **What a key is.** The exact raw bytes the decoder would build from (remote write: the
/// TimeSeries' `labels` fields, tags included; line protocol: the measurement and tag set as
/// written, plus the field key) under a *context*: every input besides those bytes that changes
/// the result — the label limits, the name policy, the enrichment labels (node and token), and
/// protocol settings (Influx naming, `db`). Callers describe the context as bytes
/// (`context(_:)`); contexts are interned exactly (no hash-only identity), so two requests share
/// entries only when their rules are byte-for-byte the same. Building labels is a pure function
/// of (raw bytes, context), which is what makes a hit exact. Only successful builds are cached:
/// a rejected label set is rebuilt (and re-reported) every time.
///
/// **What it is not.** It maps to labels, not to storage series, so storage changes (retention
/// deleting a series, a restart) cannot make an entry stale: the head looks the labels up as for
/// any other request.
///
/// **Bound and eviction.** Two generations (VictoriaMetrics' "working set" idea): inserts and hits
/// go to the current one; when it exceeds half of `Settings.maxBytes` the previous generation is
/// dropped (counted as evictions) and the current one becomes the previous. A series sent at
/// least once per generation stays cached; one that stopped is dropped within two generations.
/// A hash collision (accidental or crafted) only replaces an entry, i.e. costs a miss.
public final class SeriesLabelCache: Sendable {
    public struct Settings: Sendable, Equatable {
        /// Memory bound of the cache, in bytes: raw key bytes + canonical label bytes + a fixed
        /// per-entry overhead (`entryOverheadBytes`). Default 64 MiB, about 150,000 series with
        /// node-exporter-sized label sets (~200 bytes as sent, ~200 canonical): enough for a node
        /// receiving that many active series; beyond it the two-generation scheme keeps the most
        /// recently sent half. Label bytes are shared with the storage head while the series
        /// lives, so the real extra memory is lower. 0 disables the cache.
        public var maxBytes: Int = 64 << 20

        /// Distinct contexts (rule sets: enrichment per token, limits, naming) kept before the whole
        /// cache is cleared. Default 1,024: a node has one context per protocol and agent token
        /// with enrichment labels; a flood of distinct tokens clears the cache rather than growing
        /// it. Bound: inclusive.
        public var maxContexts: Int = 1_024

        public init(maxBytes: Int = 64 << 20, maxContexts: Int = 1_024) {
            self.maxBytes = maxBytes
            self.maxContexts = maxContexts
        }
    }

    /// Bytes counted per entry on top of its key and label bytes (entry object, two array
    /// headers, dictionary slot).
    public static let entryOverheadBytes = 112

    /// Totals since the cache was created (also reported per request in `IngestResult`).
    public struct Statistics: Sendable, Equatable {
        public var hits: UInt64 = 0
        public var misses: UInt64 = 0
        public var evictions: UInt64 = 0
        public var entries: Int = 0
        public var bytes: Int = 0
    }

    /// An interned rule set; valid only with the cache that issued it.
    public struct Context: Sendable, Equatable {
        let id: UInt32
        let epoch: UInt64
    }

    struct EntryHeader {
        let context: UInt32
        let keyCount: Int
        let labels: Labels
        /// `labels.stableHash`, computed once at insert and handed to every hit.
        let labelsHash: UInt64
        let cost: Int
    }

    /// One allocation holding the header and the key bytes, so a hit touches one object (plus
    /// the labels' buffer, which the caller retains anyway) instead of chasing a key array too.
    /// Immutable after `make`.
    final class Entry: ManagedBuffer<EntryHeader, UInt8> {
        static func make(key: UnsafeRawBufferPointer, context: UInt32, labels: Labels) -> Entry {
            let cost = key.count + labels.bytes.count + SeriesLabelCache.entryOverheadBytes
            let e = Entry.create(minimumCapacity: key.count) { _ in
                EntryHeader(context: context, keyCount: key.count, labels: labels, labelsHash: labels.stableHash, cost: cost)
            } as! Entry
            e.withUnsafeMutablePointerToElements { p in
                if let base = key.baseAddress { p.update(from: base.assumingMemoryBound(to: UInt8.self), count: key.count) }
            }
            return e
        }

        var context: UInt32 { header.context }
        var labels: Labels { header.labels }
        var labelsHash: UInt64 { header.labelsHash }
        var cost: Int { header.cost }

        /// Whether the stored key is exactly `b`.
        @inline(__always)
        func keyEquals(_ b: UnsafeRawBufferPointer) -> Bool {
            let n = header.keyCount
            guard n == b.count else { return false }
            return withUnsafeMutablePointerToElements { p in
                let x = UnsafeRawPointer(p)
                var i = 0
                while i + 8 <= n {
                    if x.loadUnaligned(fromByteOffset: i, as: UInt64.self) != b.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
                    i += 8
                }
                while i < n {
                    if x.load(fromByteOffset: i, as: UInt8.self) != b[i] { return false }
                    i += 1
                }
                return true
            }
        }
    }

    /// `@unchecked Sendable`: only reached through the mutex; entries are immutable after
    /// `Entry.make` (the checker does not take a `ManagedBuffer` subclass as Sendable).
    struct State: @unchecked Sendable {
        var current: [UInt64: Entry] = [:]
        var previous: [UInt64: Entry] = [:]
        var currentBytes = 0
        var previousBytes = 0
        var contexts: [[UInt8]: UInt32] = [:]
        /// Bumped when contexts are cleared, so a `Context` issued before is never matched again.
        var epoch: UInt64 = 0
        var stats = Statistics()
    }

    public let settings: Settings
    private let state = Mutex(State())

    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    public var isEnabled: Bool { settings.maxBytes > 0 }

    public var statistics: Statistics {
        state.withLock { s in
            var st = s.stats
            st.entries = s.current.count + s.previous.count
            st.bytes = s.currentBytes + s.previousBytes
            return st
        }
    }

    /// Interns the rule set described by `descriptor` (once per request).
    func context(_ descriptor: [UInt8]) -> (Context, evicted: Int) {
        state.withLock { s in
            if let id = s.contexts[descriptor] { return (Context(id: id, epoch: s.epoch), 0) }
            var evicted = 0
            if s.contexts.count >= settings.maxContexts {
                evicted = s.current.count + s.previous.count
                s.current = [:]
                s.previous = [:]
                s.currentBytes = 0
                s.previousBytes = 0
                s.contexts = [:]
                s.epoch &+= 1
                s.stats.evictions += UInt64(evicted)
            }
            let id = UInt32(s.contexts.count)
            s.contexts[descriptor] = id
            return (Context(id: id, epoch: s.epoch), evicted)
        }
    }

    /// The key hash for `key` under `context` (computed outside the lock).
    @inline(__always)
    static func hash(_ key: UnsafeRawBufferPointer, _ context: Context) -> UInt64 {
        XXH64.hash(key, seed: UInt64(context.id) &+ (context.epoch << 32))
    }

    /// A hit: the labels and their `stableHash`.
    struct Hit {
        let labels: Labels
        let labelsHash: UInt64
    }

    /// The labels cached for exactly `key` under `context`, or nil (a miss, counted); `evicted`
    /// grows by the entries dropped when a hit promoted from the previous generation.
    func lookup(_ key: UnsafeRawBufferPointer, hash: UInt64, context: Context, evicted: inout Int) -> Hit? {
        state.withLock { s -> Hit? in
            if context.epoch == s.epoch {
                if let e = s.current[hash], e.context == context.id, e.keyEquals(key) {
                    s.stats.hits += 1
                    return Hit(labels: e.labels, labelsHash: e.labelsHash)
                }
                if let e = s.previous[hash], e.context == context.id, e.keyEquals(key) {
                    // Promote, so a series still being sent survives the next rotation.
                    s.previous[hash] = nil
                    s.previousBytes -= e.cost
                    evicted += Self.put(e, hash: hash, into: &s, maxBytes: settings.maxBytes)
                    s.stats.hits += 1
                    return Hit(labels: e.labels, labelsHash: e.labelsHash)
                }
            }
            s.stats.misses += 1
            return nil
        }
    }

    /// Caches `labels` as the result of building `key` under `context`; returns how many entries
    /// were evicted to make room, and the labels' `stableHash` (computed here once).
    @discardableResult
    func insert(_ key: UnsafeRawBufferPointer, hash: UInt64, context: Context, labels: Labels) -> (evicted: Int, labelsHash: UInt64) {
        let e = Entry.make(key: key, context: context.id, labels: labels)
        let labelsHash = e.labelsHash
        if e.cost > settings.maxBytes / 2 { return (0, labelsHash) }
        let evicted = state.withLock { s in
            guard context.epoch == s.epoch else { return 0 }
            return Self.put(e, hash: hash, into: &s, maxBytes: settings.maxBytes)
        }
        return (evicted, labelsHash)
    }

    private static func put(_ e: Entry, hash: UInt64, into s: inout State, maxBytes: Int) -> Int {
        var evicted = 0
        if s.currentBytes + e.cost > maxBytes / 2 {
            evicted = s.previous.count
            s.stats.evictions += UInt64(evicted)
            s.previous = s.current
            s.previousBytes = s.currentBytes
            s.current = [:]
            s.current.reserveCapacity(s.previous.count)
            s.currentBytes = 0
        }
        if let old = s.current.updateValue(e, forKey: hash) {
            s.currentBytes -= old.cost
            s.stats.evictions += 1
            evicted += 1
        }
        s.currentBytes += e.cost
        return evicted
    }
}

/// Serializes a decoder's rule set into a cache context descriptor.
struct ContextDescriptor {
    var bytes: [UInt8] = []

    init(protocol tag: UInt8, rules: LabelRules) {
        bytes.reserveCapacity(64)
        bytes.append(tag)
        append(rules.limits.maxLabelsPerSeries)
        append(rules.limits.maxLabelNameBytes)
        append(rules.limits.maxLabelValueBytes)
        append(rules.namePolicy.rawValue)
        append(rules.enricher.overridingPairs.count)
        for p in rules.enricher.overridingPairs {
            append(p.name)
            append(p.value)
        }
        append(rules.enricher.defaultPairs.count)
        for p in rules.enricher.defaultPairs {
            append(p.name)
            append(p.value)
        }
    }

    mutating func append(_ n: Int) { bytes.appendUVarint(UInt64(bitPattern: Int64(n))) }

    mutating func append(_ b: [UInt8]) {
        append(b.count)
        bytes.append(contentsOf: b)
    }

    mutating func append(_ s: String) { append(Array(s.utf8)) }

    mutating func append(_ flag: Bool) { bytes.append(flag ? 1 : 0) }

    mutating func append(optional b: [UInt8]?) {
        if let b {
            bytes.append(1)
            append(b)
        } else {
            bytes.append(0)
        }
    }
}
