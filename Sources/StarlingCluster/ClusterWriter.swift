import StarlingCore
import StarlingPeerWire
import StarlingPlacement
import StarlingStorage
import Synchronization

/// This node's own store as a replica. Appends run on `appendRunner`: one thread, so that
/// concurrent writes queue there instead of parking the blocking pool's threads on the store's
/// head lock (which serialises appends anyway) while other requests wait to be decoded or read.
/// Everything else blocking (digests, reads, peer queries) runs on `runner`.
public struct LocalReplica: Sendable {
    public let database: @Sendable () throws -> TimeSeriesDB
    public let runner: any BlockingRunner
    public let appendRunner: any BlockingRunner

    public init(database: @escaping @Sendable () throws -> TimeSeriesDB, runner: any BlockingRunner, appendRunner: (any BlockingRunner)? = nil) {
        self.database = database
        self.runner = runner
        self.appendRunner = appendRunner ?? runner
    }

    public func append(_ series: [SeriesSamples], nowMs: Int64) async throws -> AppendReport {
        let db = try database()
        return try await appendRunner.run { try db.append(series, nowMs: nowMs) }
    }

    /// Stores whole chunks (repair, handover, anti-entropy); see `TimeSeriesDB.append(chunks:nowMs:)`.
    /// They are decoded on `runner`, so a large push does not hold the append thread meanwhile.
    public func append(chunks: [SeriesChunks], nowMs: Int64) async throws -> AppendReport {
        let db = try database()
        let batch = try await runner.run { try TimeSeriesDB.samples(of: chunks) }
        return try await appendRunner.run { try db.append(batch, nowMs: nowMs) }
    }
}

/// Where the coordinator keeps writes for replicas that did not take them (hinted handoff).
public protocol HintSink: Sendable {
    /// Stores `write` durably for `target`; returns nil when stored, else why it was refused
    /// (a limit). A refused hint is data the target will miss until anti-entropy repairs it.
    func storeHint(target: String, write: WriteMessage, nowMs: Int64) -> String?
}

/// A shard whose write did not reach the consistency level.
public struct ShardWriteFailure: Sendable, Hashable, CustomStringConvertible {
    public var shard: ShardID
    public var acknowledged: Int
    public var required: Int
    /// Why each replica that failed did, "node: reason".
    public var reasons: [String]

    public var description: String {
        "shard \(shard): \(acknowledged) of \(required) required replicas acknowledged (\(reasons.joined(separator: "; ")))"
    }
}

/// The outcome of one coordinated write.
public struct ClusterWriteReport: Sendable {
    /// This node's append, when it replicates any shard of the batch (rejections by limit are
    /// reported from here; remote replicas only count them).
    public var local: AppendReport?
    /// Samples in the batch.
    public var samples = 0
    /// Samples sent to other nodes (each replica counted).
    public var forwardedSamples = 0
    /// Shards that did not reach the consistency level: the client gets a 503 naming them.
    public var failures: [ShardWriteFailure] = []

    public var succeeded: Bool { failures.isEmpty }
}

/// A write that did not reach the consistency level for some shards. Everything that reached a
/// replica stays stored; a retry is safe (duplicates are dropped).
public struct WriteConsistencyError: Error, Sendable, CustomStringConvertible {
    public var consistency: Consistency
    public var report: ClusterWriteReport

    public var description: String {
        let failures = report.failures
        let shown = failures.prefix(5).map(\.description).joined(separator: "; ")
        let more = failures.count > 5 ? "; and \(failures.count - 5) more shards" : ""
        return "write consistency \(consistency) not reached for \(failures.count) shard(s): \(shown)\(more). "
            + "Samples that reached a replica are stored and a retry is safe."
    }
}

/// Counters for `/metrics`.
public struct ClusterWriterStats: Sendable, Equatable {
    public var writes = 0
    public var failedWrites = 0
    public var forwardedSamples = 0
    /// Replica sends by outcome: ok, unreachable (known dead, not tried), error (failed or timed out).
    public var replicaOK = 0
    public var replicaUnreachable = 0
    public var replicaErrors = 0
    public var hintsStored = 0
    public var hintedSamples = 0
    public var hintsRefused = 0

    public init() {}
}

/// The write coordinator (docs/cluster.md, "Write path"): splits a batch by shard, sends each
/// replica of the write set its part (all its shards in one message, in parallel), and returns
/// as soon as every shard reached the consistency level — replicas still answering keep going
/// in the background and a replica that fails gets a hint. A cluster of one appends directly.
public final class ClusterWriter: Sendable {
    public struct Settings: Sendable, Hashable {
        /// Replicas of each shard that must take a write before the client is answered. Default
        /// quorum (⌊RF/2⌋+1): with RF 3, one replica may be down or slow without failing or
        /// slowing writes, and quorum reads still see every acknowledged sample.
        /// `cluster.write_consistency`.
        public var consistency: Consistency
        /// Deadline of one replica's write, in ms. Default 5,000: a replica slower than this
        /// gets a hint instead (clients' remote-write timeout is 30 s, so a retry still fits).
        /// `cluster.write_timeout`.
        public var timeoutMs: UInt32

        public init(consistency: Consistency = .quorum, timeoutMs: UInt32 = 5_000) {
            self.consistency = consistency
            self.timeoutMs = timeoutMs
        }
    }

    public let settings: Settings
    let topology: ClusterTopology
    let transport: any PeerTransport
    let local: LocalReplica
    let hints: (any HintSink)?
    let nowMs: @Sendable () -> Int64
    private let counters = Mutex(ClusterWriterStats())

    public init(topology: ClusterTopology, transport: any PeerTransport, local: LocalReplica, hints: (any HintSink)?,
                settings: Settings = Settings(), nowMs: @escaping @Sendable () -> Int64) {
        self.topology = topology
        self.transport = transport
        self.local = local
        self.hints = hints
        self.settings = settings
        self.nowMs = nowMs
    }

    public var stats: ClusterWriterStats { counters.withLock { $0 } }

    /// Writes `batch`; throws `WriteConsistencyError` when a shard did not reach the
    /// consistency level, storage errors of this node as they are.
    public func write(_ batch: [SeriesSamples], nowMs: Int64) async throws -> ClusterWriteReport {
        var report = ClusterWriteReport()
        report.samples = batch.reduce(0) { $0 + $1.sampleCount }
        let snapshot = topology.current
        if snapshot.isSingleNode {
            report.local = try await local.append(batch, nowMs: nowMs)
            counters.withLock { $0.writes += 1 }
            return report
        }
        // Grouping thousands of series by shard and replica is not work for the event loop a
        // write request runs on.
        let placement = snapshot.placement, consistency = settings.consistency
        let plan = try await local.runner.run { WritePlan(batch, placement: placement, consistency: consistency) }
        guard !plan.byNode.isEmpty || !plan.required.isEmpty else { return report }

        // One task per replica node, unstructured: once every shard has its acknowledgements the
        // client is answered, and stragglers finish (or leave a hint) on their own.
        let (results, sink) = AsyncStream.makeStream(of: ReplicaOutcome.self)
        var expected = 0
        var unreachable: [(node: String, write: WriteMessage, outcome: ReplicaOutcome)] = []
        for (node, shards) in plan.byNode {
            expected += 1
            if node == snapshot.localNodeID {
                let series = shards.flatMap(\.series)
                let local = self.local
                Task {
                    do {
                        let r = try await local.append(series, nowMs: nowMs)
                        sink.yield(ReplicaOutcome(node: node, acked: shards.map(\.shard), failed: [], reason: nil, localReport: r))
                    } catch {
                        sink.yield(ReplicaOutcome(node: node, acked: [], failed: shards.map(\.shard), reason: "\(error)", localError: error))
                    }
                }
                continue
            }
            let write = WriteMessage(shards: shards)
            report.forwardedSamples += write.sampleCount
            guard snapshot.isReachable(node) else {
                let why = "node \(node) is \(snapshot.members[node]?.liveness.description ?? "unknown")"
                unreachable.append((node, write, ReplicaOutcome(node: node, acked: [], failed: shards.map(\.shard), reason: why)))
                continue
            }
            Task { sink.yield(await self.send(write, to: node)) }
        }
        // Hints for unreachable replicas are RocksDB writes on the pool: stored once every send
        // has started, and before the write is answered (a 2xx means the hint is stored).
        for (node, write, outcome) in unreachable {
            await keepHint(node, write)
            counters.withLock { $0.replicaUnreachable += 1 }
            sink.yield(outcome)
        }

        var acks: [ShardID: Int] = [:]
        var reasons: [ShardID: [String]] = [:]
        var localPending = plan.byNode[snapshot.localNodeID] != nil
        var localError: (any Error)?
        var received = 0
        var satisfied = 0
        let shardCount = plan.required.count
        for await outcome in results {
            received += 1
            if outcome.node == snapshot.localNodeID {
                localPending = false
                report.local = outcome.localReport
                localError = outcome.localError
            }
            for shard in outcome.acked where plan.counts(outcome.node, for: shard) {
                acks[shard, default: 0] += 1
                if acks[shard] == plan.required[shard] { satisfied += 1 }
            }
            if let reason = outcome.reason {
                for shard in outcome.failed { reasons[shard, default: []].append("\(outcome.node): \(reason)") }
            }
            if (satisfied == shardCount && !localPending) || received == expected { break }
        }
        sink.finish()
        report.failures = plan.required.compactMap { shard, required in
            let n = acks[shard] ?? 0
            return n >= required ? nil : ShardWriteFailure(shard: shard, acknowledged: n, required: required, reasons: reasons[shard] ?? [])
        }.sorted { $0.shard < $1.shard }
        let forwarded = report.forwardedSamples
        counters.withLock {
            $0.writes += 1
            $0.forwardedSamples += forwarded
            if !report.failures.isEmpty { $0.failedWrites += 1 }
        }
        if !report.failures.isEmpty {
            if let localError, report.failures.count == shardCount { throw localError }
            throw WriteConsistencyError(consistency: settings.consistency, report: report)
        }
        return report
    }

    /// Sends one replica its part; on failure (or a shard it did not take) keeps a hint.
    func send(_ write: WriteMessage, to node: String) async -> ReplicaOutcome {
        let shards = write.shards.map(\.shard)
        do {
            let ack = try await transport.call(node, write, timeoutMs: settings.timeoutMs, expecting: WriteAckMessage.self)
            var okShards = Set<ShardID>()
            for r in ack.results where r.status == .ok { okShards.insert(r.shard) }
            let failed = shards.filter { !okShards.contains($0) }
            if !failed.isEmpty {
                let statuses = ack.results.filter { $0.status != .ok }.map { "shard \($0.shard) \($0.status)" }
                await keepHint(node, WriteMessage(shards: write.shards.filter { failed.contains($0.shard) }))
                counters.withLock { $0.replicaErrors += 1 }
                return ReplicaOutcome(node: node, acked: shards.filter { okShards.contains($0) }, failed: failed,
                                      reason: statuses.isEmpty ? "no result" : statuses.joined(separator: ", "))
            }
            counters.withLock { $0.replicaOK += 1 }
            return ReplicaOutcome(node: node, acked: shards, failed: [], reason: nil)
        } catch {
            await keepHint(node, write)
            counters.withLock { $0.replicaErrors += 1 }
            return ReplicaOutcome(node: node, acked: [], failed: shards, reason: "\(error)")
        }
    }

    /// Stores a hint on the blocking pool: the hint store writes to RocksDB, and a write request
    /// runs on its connection's event loop.
    private func keepHint(_ node: String, _ write: WriteMessage) async {
        guard let hints else { return }
        let now = nowMs()
        let refusal: String?
        do {
            refusal = try await local.runner.runToCompletion { hints.storeHint(target: node, write: write, nowMs: now) }
        } catch {
            refusal = "\(error)"
        }
        if refusal == nil {
            let n = write.sampleCount
            counters.withLock {
                $0.hintsStored += 1
                $0.hintedSamples += n
            }
        } else {
            counters.withLock { $0.hintsRefused += 1 }
        }
    }
}

/// What one replica did with its part of a write.
struct ReplicaOutcome: Sendable {
    var node: String
    var acked: [ShardID]
    var failed: [ShardID]
    var reason: String?
    var localReport: AppendReport? = nil
    var localError: (any Error)? = nil
}

/// A batch split by shard and by replica node.
struct WritePlan {
    /// Every node of some shard's write set, with the shards it takes (series of one shard in
    /// one group).
    var byNode: [String: [ShardWrite]] = [:]
    /// Acknowledgements each shard needs, from members of `P_write(s)`.
    var required: [ShardID: Int] = [:]
    private var counting: [ShardID: [String]] = [:]

    init(_ batch: [SeriesSamples], placement: Placement, consistency: Consistency) {
        var byShard: [ShardID: [SeriesSamples]] = [:]
        for s in batch where s.sampleCount > 0 {
            byShard[placement.layout.shard(forHash: s.labelsHash), default: []].append(s)
        }
        for (shard, series) in byShard {
            let owners = placement.writeReplicas(of: shard)
            counting[shard] = owners
            required[shard] = max(consistency.required(of: owners.count), 1)
            let group = ShardWrite(shard: shard, series: series)
            for node in placement.writeSet(of: shard) { byNode[node, default: []].append(group) }
        }
    }

    /// Whether `node`'s acknowledgement counts towards `shard`'s consistency (old owners in a
    /// handover receive the write but do not count).
    func counts(_ node: String, for shard: ShardID) -> Bool {
        counting[shard]?.contains(node) ?? false
    }
}
