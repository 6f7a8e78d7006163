/// Decides when and to whom stored hints are replayed: a pure state machine (no clock, no
/// sockets, randomness passed in), driven by the shell that owns a `HintStore` and the peer
/// connections (docs/cluster.md, "Hinted handoff").
///
/// The shell's loop:
/// 1. reports what it learns: `onHintsStored` after each stored hint (and for every target of
///    `HintStore.targets()` at start), `onTargetAlive` / `onTargetDown` from membership,
///    `onTargetRemoved` when a member leaves the placement (then `HintStore.drop`);
/// 2. calls `nextBatch(nowMs:)` until it answers `.wait` or `.idle`. Each `.send` names a target,
///    the sequence number to read after and a byte budget: the shell reads
///    `HintStore.next(for:after:maxBytes:)` and reports `onBatchRead` (then sends the hints) or
///    `onNothingPending` (the read came back empty);
/// 3. reports the outcome: `onDelivered(through:)` when every hint of the batch was acknowledged
///    (then `HintStore.remove(through:)`), `onFailed` on any error, timeout or a replica
///    answering `overloaded`;
/// 4. sleeps until the `.wait` time or the next event, then goes to 2.
///
/// Rules: a target gets batches only while alive, at most one batch at a time (reading or in
/// flight), resent from the last acknowledged hint after a failure; consecutive failures back
/// off exponentially with jitter (the `rng` argument), reset by a delivery or by the target
/// coming back alive; targets take turns (round robin); every batch is charged to one token
/// bucket shared by all targets, so replay stays at `bytesPerSecond` and never starves ingest.
public struct HintReplayScheduler: Sendable {
    public struct Settings: Sendable, Equatable {
        /// Stored bytes per batch (one `HintStore.next` read, acknowledged as a whole). Default
        /// 1_048_576 (1 MiB): big enough to amortise a round trip, small enough that a failure
        /// resends little and the throttle stays smooth. A single hint larger than this is sent
        /// alone.
        public var maxBatchBytes = 1 << 20
        /// Replay rate over all targets together, stored bytes per second. Default 16_777_216
        /// (16 MiB/s, roughly 1.5M samples/s of write bodies): a full 256 MiB target catches up in
        /// ~16 s while ingest keeps most of the disk and network. Higher drains backlogs faster at
        /// the cost of ingest latency during catch-up.
        public var bytesPerSecond = 16 << 20
        /// Token bucket depth, bytes: how much may go out at once after an idle period. Default
        /// 4_194_304 (4 MiB, a quarter second at the default rate). A batch is started whenever
        /// the bucket is not in debt and charged its real size, so one batch may overdraw it; the
        /// long-run rate is `bytesPerSecond` exactly.
        public var burstBytes = 4 << 20
        /// Delay before the first retry after a failed batch, ms. Default 1_000.
        public var initialBackoffMs: Int64 = 1_000
        /// Cap of the retry delay, ms. Default 60_000: a replica that keeps failing is retried
        /// every minute at most; coming back alive (`onTargetAlive`) retries at once anyway.
        public var maxBackoffMs: Int64 = 60_000
        /// Jitter, per mille of the delay: the delay after `n` consecutive failures is drawn
        /// uniformly from `[d·(1 − j/1000), d]` with `d = min(initialBackoffMs · 2ⁿ⁻¹,
        /// maxBackoffMs)`. Default 200 (up to 20 % shorter), so coordinators that lost the same
        /// replica do not retry in lockstep. The cap is never exceeded.
        public var jitterPermille = 200

        public init() {}
    }

    /// What the shell should do next.
    public enum Decision: Sendable, Equatable {
        /// Read up to `maxBytes` of `target`'s hints numbered above `afterSeq` and send them.
        case send(target: String, afterSeq: UInt64, maxBytes: Int)
        /// Nothing to do before `untilMs` (a retry is due or the throttle refills); events may
        /// make work sooner.
        case wait(untilMs: Int64)
        /// Nothing to do until an event.
        case idle
    }

    /// Counters since creation (metrics).
    public struct Stats: Sendable, Equatable {
        public var batchesStarted: UInt64 = 0
        public var batchesDelivered: UInt64 = 0
        public var batchesFailed: UInt64 = 0
        /// Stored bytes of the batches read and sent (charged to the throttle).
        public var bytesSent: UInt64 = 0
        /// `nextBatch` calls that had a target ready but waited for the throttle.
        public var throttledWaits: UInt64 = 0
    }

    enum Flight: Sendable, Equatable {
        case none
        /// Asked to read; `storedThrough` as it was when the batch was started.
        case reading(storedThrough: UInt64)
        /// Sent, awaiting acknowledgement of every hint up to `through`.
        case sending(through: UInt64, bytes: Int)
    }

    struct Target: Sendable, Equatable {
        var alive = false
        /// Highest sequence number known stored for the target.
        var storedThrough: UInt64 = 0
        /// Every hint numbered up to this is delivered or gone: batches read after it.
        var deliveredThrough: UInt64 = 0
        var flight = Flight.none
        var consecutiveFailures = 0
        /// No batch before this time (backoff).
        var retryAtMs: Int64 = .min

        var hasPending: Bool { storedThrough > deliveredThrough }
    }

    public let settings: Settings
    public private(set) var stats = Stats()
    private(set) var targets: [String: Target] = [:]
    /// Token bucket, in thousandths of a byte so refills are exact integers (bytes/s × ms).
    private var tokensMilli: Int64
    private var refilledAtMs: Int64
    private var lastServed: String?

    public init(settings: Settings = .init(), nowMs: Int64) {
        precondition(settings.maxBatchBytes > 0 && settings.bytesPerSecond > 0 && settings.burstBytes > 0,
                     "hint replay sizes and rate must be positive: \(settings)")
        precondition(settings.initialBackoffMs > 0 && settings.maxBackoffMs >= settings.initialBackoffMs,
                     "hint replay backoff must satisfy 0 < initial ≤ max: \(settings)")
        precondition((0...1000).contains(settings.jitterPermille), "jitterPermille outside 0...1000: \(settings.jitterPermille)")
        self.settings = settings
        tokensMilli = Int64(settings.burstBytes) * 1000
        refilledAtMs = nowMs
    }

    // MARK: - Events

    /// A hint numbered `seq` was stored for `target`.
    public mutating func onHintsStored(target: String, throughSeq seq: UInt64) {
        var t = targets[target] ?? Target()
        t.storedThrough = max(t.storedThrough, seq)
        targets[target] = t
    }

    /// Membership reports `target` alive. A target that was down (or unknown) is eligible at
    /// once, whatever its backoff: it just came back. Repeated reports change nothing, so a
    /// replica that is alive but failing keeps backing off.
    public mutating func onTargetAlive(_ target: String, nowMs: Int64) {
        var t = targets[target] ?? Target()
        if !t.alive {
            t.alive = true
            t.consecutiveFailures = 0
            t.retryAtMs = .min
        }
        targets[target] = t
    }

    /// Membership reports `target` suspect or dead: no new batch for it. A batch in flight stays
    /// until its outcome is reported.
    public mutating func onTargetDown(_ target: String) {
        targets[target]?.alive = false
    }

    /// `target` left the placement: forget it (the shell drops its hints). Outcomes of a batch
    /// still in flight are ignored.
    public mutating func onTargetRemoved(_ target: String) {
        targets[target] = nil
        if lastServed == target { lastServed = nil }
    }

    /// The batch started for `target` was read: its hints run through `through` and occupy
    /// `bytes` stored bytes, charged to the throttle now.
    public mutating func onBatchRead(target: String, through: UInt64, bytes: Int, nowMs: Int64) {
        guard var t = targets[target], case .reading = t.flight else { return }
        precondition(through > t.deliveredThrough,
                     "batch for \(target) through \(through) does not go past the delivered \(t.deliveredThrough)")
        refill(nowMs: nowMs)
        tokensMilli -= Int64(bytes) * 1000
        t.flight = .sending(through: through, bytes: bytes)
        t.storedThrough = max(t.storedThrough, through)
        targets[target] = t
        stats.bytesSent += UInt64(bytes)
    }

    /// The read for `target` found no hint (they expired or were dropped): the target is idle
    /// until a newer hint is stored.
    public mutating func onNothingPending(target: String) {
        guard var t = targets[target], case .reading(let storedThrough) = t.flight else { return }
        t.deliveredThrough = max(t.deliveredThrough, storedThrough)
        t.flight = .none
        targets[target] = t
    }

    /// Every hint of `target`'s batch through `seq` was acknowledged. Resets the backoff.
    /// Returns false (and changes nothing) when that is not the batch in flight — a late answer
    /// after a failure was already reported; removing the acknowledged hints is still right.
    @discardableResult
    public mutating func onDelivered(target: String, through seq: UInt64, nowMs: Int64) -> Bool {
        guard var t = targets[target], case .sending(let through, _) = t.flight, through == seq else { return false }
        t.deliveredThrough = max(t.deliveredThrough, seq)
        t.flight = .none
        t.consecutiveFailures = 0
        t.retryAtMs = .min
        targets[target] = t
        stats.batchesDelivered += 1
        return true
    }

    /// The batch in flight for `target` failed (error, timeout, `overloaded`, or its read
    /// failed). It will be resent from the last acknowledged hint after a backoff. Returns the
    /// delay chosen (nil when no batch was in flight).
    @discardableResult
    public mutating func onFailed<R: RandomNumberGenerator>(target: String, nowMs: Int64, rng: inout R) -> Int64? {
        guard var t = targets[target], t.flight != .none else { return nil }
        t.flight = .none
        t.consecutiveFailures += 1
        let delay = backoffMs(failures: t.consecutiveFailures, rng: &rng)
        t.retryAtMs = nowMs &+ delay
        targets[target] = t
        stats.batchesFailed += 1
        return delay
    }

    // MARK: - Decisions

    /// The next batch to start, or how long to wait. Starting a batch marks the target busy
    /// until `onBatchRead`/`onNothingPending` and then `onDelivered`/`onFailed`.
    public mutating func nextBatch(nowMs: Int64) -> Decision {
        refill(nowMs: nowMs)
        var ready: String?
        var wakeMs: Int64?
        let order = targets.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        // Round robin: start after the target served last.
        let start = lastServed.map { last in order.firstIndex { last.utf8.lexicographicallyPrecedes($0.utf8) } ?? 0 } ?? 0
        for i in 0..<order.count {
            let name = order[(start + i) % order.count]
            let t = targets[name]!
            guard t.alive, t.flight == .none, t.hasPending else { continue }
            if t.retryAtMs > nowMs {
                wakeMs = min(wakeMs ?? .max, t.retryAtMs)
                continue
            }
            ready = name
            break
        }
        guard let name = ready else { return wakeMs.map { .wait(untilMs: $0) } ?? .idle }
        if tokensMilli <= 0 {
            stats.throttledWaits += 1
            // The bucket is positive again after (−tokens / rate) ms, rounded up past zero.
            let rate = Int64(settings.bytesPerSecond)
            return .wait(untilMs: nowMs + (-tokensMilli) / rate + 1)
        }
        var t = targets[name]!
        t.flight = .reading(storedThrough: t.storedThrough)
        targets[name] = t
        lastServed = name
        stats.batchesStarted += 1
        return .send(target: name, afterSeq: t.deliveredThrough, maxBytes: settings.maxBatchBytes)
    }

    /// Whether a batch is being read or is in flight for `target`.
    public func isBusy(_ target: String) -> Bool { (targets[target]?.flight ?? .none) != .none }

    /// Consecutive failed batches of `target` (0 after a delivery).
    public func consecutiveFailures(_ target: String) -> Int { targets[target]?.consecutiveFailures ?? 0 }

    /// Bytes in the throttle's bucket now (negative: in debt after a batch overdrew it).
    public func availableBytes() -> Int64 { tokensMilli / 1000 }

    // MARK: - Internals

    private mutating func refill(nowMs: Int64) {
        guard nowMs > refilledAtMs else { return }
        let capacity = Int64(settings.burstBytes) * 1000
        let missing = capacity - tokensMilli
        let elapsed = nowMs - refilledAtMs
        let rate = Int64(settings.bytesPerSecond)
        // Compare before multiplying, so a long idle period cannot overflow.
        tokensMilli = elapsed >= missing / rate + 1 ? capacity : tokensMilli + elapsed * rate
        tokensMilli = min(tokensMilli, capacity)
        refilledAtMs = nowMs
    }

    private func backoffMs<R: RandomNumberGenerator>(failures: Int, rng: inout R) -> Int64 {
        let doublings = min(failures - 1, 62)
        let base: Int64
        if settings.initialBackoffMs > settings.maxBackoffMs >> Int64(doublings) {
            base = settings.maxBackoffMs
        } else {
            base = min(settings.maxBackoffMs, settings.initialBackoffMs << Int64(doublings))
        }
        let maxJitter = base * Int64(settings.jitterPermille) / 1000
        let jitter = maxJitter > 0 ? Int64.random(in: 0...maxJitter, using: &rng) : 0
        return max(1, base - jitter)
    }
}
