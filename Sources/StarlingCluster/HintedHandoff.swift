import Logging
import StarlingCore
import StarlingPeerWire
import StarlingStorage
import Synchronization

/// Hinted handoff (docs/cluster.md): the coordinator keeps writes for replicas that did not take
/// them in the durable `HintStore` and replays them, in order, once the replica is reachable
/// again — throttled and with backoff by `HintReplayScheduler`. A replica that leaves the
/// placement has its hints dropped (anti-entropy gives its shards' new owners the data).
public final class HintedHandoff: HintSink, Sendable {
    public let localNodeID: String
    let topology: ClusterTopology
    let transport: any PeerTransport
    let timeoutMs: UInt32
    let logger: Logger
    private let store = Mutex<HintStore?>(nil)
    private let scheduler: Mutex<HintReplayScheduler>
    private let rng = Mutex(SplitMix(seed: 0x5EED))
    private let wakeup = Wakeup()
    private let counters = Mutex(HintReplayCounters())

    public init(localNodeID: String, topology: ClusterTopology, transport: any PeerTransport, timeoutMs: UInt32 = 10_000,
                scheduler: HintReplayScheduler.Settings = .init(), nowMs: Int64, logger: Logger) {
        self.localNodeID = localNodeID
        self.topology = topology
        self.transport = transport
        self.timeoutMs = timeoutMs
        self.logger = logger
        self.scheduler = Mutex(HintReplayScheduler(settings: scheduler, nowMs: nowMs))
    }

    /// Opens the hint store (recovering what a previous run left); until then hints are refused.
    public func open(_ hints: HintStore) {
        store.withLock { $0 = hints }
        scheduler.withLock { s in
            for t in hints.targets() { s.onHintsStored(target: t.target, throughSeq: t.lastSeq) }
        }
        let pending = hints.targets()
        if !pending.isEmpty {
            logger.info("hints recovered", metadata: [
                "targets": .stringConvertible(pending.count),
                "hints": .stringConvertible(pending.reduce(0) { $0 + $1.pendingHints }),
                "samples": .stringConvertible(pending.reduce(0) { $0 + $1.pendingSamples }),
            ])
        }
        wakeup.signal()
    }

    public var stats: (store: HintStoreStats?, replay: HintReplayCounters) {
        (store.withLock { $0?.stats }, counters.withLock { $0 })
    }

    // MARK: HintSink

    public func storeHint(target: String, write: WriteMessage, nowMs: Int64) -> String? {
        guard let hints = store.withLock({ $0 }) else { return "the hint store is not open yet" }
        do {
            switch try hints.append(target: target, payload: write.encoded(), sampleCount: write.sampleCount, nowMs: nowMs) {
            case .stored(let seq):
                scheduler.withLock { $0.onHintsStored(target: target, throughSeq: seq) }
                wakeup.signal()
                return nil
            case .refused(let refusal):
                logger.warning("hint refused: the replica will miss these samples until anti-entropy repairs it",
                               metadata: ["target": .string(target), "refusal": .string("\(refusal)")])
                return "\(refusal)"
            }
        } catch {
            logger.error("cannot store hint", metadata: ["target": .string(target), "error": .string("\(error)")])
            return "\(error)"
        }
    }

    // MARK: Replay

    /// Replays hints until cancelled: follows membership (alive, down, removed), sends batches as
    /// the scheduler decides, expires hints past their maximum age once a minute.
    public func run(nowMs: @escaping @Sendable () -> Int64) async {
        var nextExpiry: Int64 = 0
        while !Task.isCancelled {
            guard let hints = store.withLock({ $0 }) else {
                await sleep(untilWake: 1_000)
                continue
            }
            let now = nowMs()
            followMembership(hints, nowMs: now)
            if now >= nextExpiry {
                nextExpiry = now + 60_000
                expire(hints, nowMs: now)
            }
            switch scheduler.withLock({ $0.nextBatch(nowMs: now) }) {
            case let .send(target, after, maxBytes):
                await replay(hints, target: target, after: after, maxBytes: maxBytes, nowMs: nowMs)
            case let .wait(untilMs):
                await sleep(untilWake: min(max(untilMs - now, 1), 1_000))
            case .idle:
                await sleep(untilWake: 1_000)
            }
        }
    }

    private func sleep(untilWake ms: Int64) async {
        await wakeup.wait(ms: ms)
    }

    func followMembership(_ hints: HintStore, nowMs: Int64) {
        let snapshot = topology.current
        let targets = hints.targets().map(\.target)
        var dropped: [String] = []
        scheduler.withLock { s in
            for t in targets {
                if snapshot.placement.member(t) == nil {
                    s.onTargetRemoved(t)
                    dropped.append(t)
                } else if snapshot.isReachable(t) {
                    s.onTargetAlive(t, nowMs: nowMs)
                } else {
                    s.onTargetDown(t)
                }
            }
        }
        for t in dropped {
            if let counts = try? hints.drop(target: t) {
                logger.notice("hints dropped for a member no longer in the placement; its shards' new owners get the data through anti-entropy",
                              metadata: ["target": .string(t), "hints": .string("\(counts)")])
            }
        }
    }

    func expire(_ hints: HintStore, nowMs: Int64) {
        guard let report = try? hints.expire(nowMs: nowMs), report.hints > 0 else { return }
        counters.withLock { $0.expiredSamples += report.samples }
        logger.error("hints expired before their replica came back: those samples are missing from it until anti-entropy repairs it",
                     metadata: ["report": .string(report.description)])
    }

    func replay(_ hints: HintStore, target: String, after: UInt64, maxBytes: Int, nowMs: @Sendable () -> Int64) async {
        let batch: [Hint]
        do {
            batch = try hints.next(for: target, after: after, maxBytes: maxBytes)
        } catch {
            failed(target, nowMs: nowMs(), error)
            return
        }
        guard let last = batch.last else {
            scheduler.withLock { $0.onNothingPending(target: target) }
            return
        }
        let bytes = batch.reduce(0) { $0 + $1.storedBytes }
        scheduler.withLock { $0.onBatchRead(target: target, through: last.seq, bytes: bytes, nowMs: nowMs()) }
        var delivered: UInt64?
        for hint in batch {
            let write: WriteMessage
            do {
                write = try WriteMessage.decode(hint.payload)
            } catch {
                // A hint that does not decode can never be delivered: drop it loudly rather
                // than block the queue behind it.
                logger.error("undecodable hint dropped", metadata: ["target": .string(target), "seq": .stringConvertible(hint.seq), "error": .string("\(error)")])
                counters.withLock { $0.corruptHints += 1 }
                delivered = hint.seq
                continue
            }
            do {
                let delivery = HintDeliveryMessage(originNodeID: localNodeID, sequence: hint.seq, storedAtMs: hint.storedAtMs, write: write)
                let ack = try await transport.call(target, delivery, timeoutMs: timeoutMs, expecting: WriteAckMessage.self)
                if let bad = ack.results.first(where: { $0.status != .ok }) {
                    throw PeerAnswerError(nodeID: target, message: "shard \(bad.shard): \(bad.status)")
                }
                counters.withLock {
                    $0.replayedHints += 1
                    $0.replayedSamples += hint.sampleCount
                }
                delivered = hint.seq
            } catch {
                // Hints acknowledged before this one are removed; the rest is resent later
                // (the store drops duplicates, so a resent hint that did arrive is harmless).
                if let delivered { _ = try? hints.remove(target: target, through: delivered) }
                failed(target, nowMs: nowMs(), error)
                return
            }
        }
        _ = try? hints.remove(target: target, through: last.seq)
        scheduler.withLock { _ = $0.onDelivered(target: target, through: last.seq, nowMs: nowMs()) }
        logger.debug("hints delivered", metadata: ["target": .string(target), "through": .stringConvertible(last.seq), "hints": .stringConvertible(batch.count)])
    }

    private func failed(_ target: String, nowMs: Int64, _ error: any Error) {
        let delay = rng.withLock { r in scheduler.withLock { $0.onFailed(target: target, nowMs: nowMs, rng: &r) } }
        counters.withLock { $0.failedBatches += 1 }
        logger.debug("hint replay failed", metadata: ["target": .string(target), "error": .string("\(error)"), "retry_in_ms": .string(delay.map(String.init) ?? "-")])
    }
}

/// Replay counters for `/metrics`.
public struct HintReplayCounters: Sendable, Equatable {
    public var replayedHints = 0
    public var replayedSamples = 0
    public var failedBatches = 0
    public var expiredSamples = 0
    public var corruptHints = 0
    public init() {}
}

/// A small seeded generator for replay jitter (no system randomness in this target).
struct SplitMix: RandomNumberGenerator, Sendable {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
