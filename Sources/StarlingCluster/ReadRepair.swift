import StarlingChunk
import StarlingCore
import StarlingPeerWire
import StarlingStorage
import Synchronization

/// Read repair (docs/cluster.md, "Read path"): when a query reads a series from several replicas
/// and one of them lacks samples the others returned, the merged chunks are pushed to it
/// (`push_chunks`, appended with duplicates dropped) in the background, so a replica that missed
/// a write is fixed by the first read that notices rather than by the next anti-entropy round.
///
/// Detection is cheap: replicas' chunk lists are compared by shape first (count, bytes, time
/// span), and only when shapes differ are the samples decoded — restricted to the query's time
/// range and to samples older than `settleMs` (younger ones may still be on their way to a
/// replica). A replica holding fewer samples than the union is a repair target.
///
/// The queue is bounded (`maxPendingSeries`); beyond it repairs are dropped and counted —
/// anti-entropy still repairs those. Pushes run one at a time, off the query path.
public final class ReadRepair: Sendable {
    public struct Settings: Sendable, Hashable {
        /// Series waiting to be pushed, at most; more are dropped (and counted). Default 10,000.
        public var maxPendingSeries: Int
        /// Samples newer than this (ms before now) are not compared. Default 5,000.
        public var settleMs: Int64
        /// Deadline of one push, ms. Default 10,000.
        public var timeoutMs: UInt32

        public init(maxPendingSeries: Int = 10_000, settleMs: Int64 = 5_000, timeoutMs: UInt32 = 10_000) {
            self.maxPendingSeries = maxPendingSeries
            self.settleMs = settleMs
            self.timeoutMs = timeoutMs
        }
    }

    public struct Stats: Sendable, Equatable {
        /// Series found to differ between replicas.
        public var detected = 0
        /// Series pushed to a replica that lacked samples, and the samples it appended.
        public var repairedSeries = 0
        public var repairedSamples = 0
        /// Series not repaired: the queue was full, or the push failed.
        public var dropped = 0
        public var failed = 0

        public init() {}
    }

    struct Item: Sendable {
        var node: String
        var shard: ShardID
        var series: SeriesChunks
    }

    public let settings: Settings
    let localNodeID: String
    let transport: any PeerTransport
    let local: LocalReplica
    let nowMs: @Sendable () -> Int64
    private let queue: Mutex<[Item]> = Mutex([])
    private let counters = Mutex(Stats())
    private let wake: (stream: AsyncStream<Void>, continuation: AsyncStream<Void>.Continuation) =
        AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))

    public init(localNodeID: String, transport: any PeerTransport, local: LocalReplica, settings: Settings = Settings(),
                nowMs: @escaping @Sendable () -> Int64) {
        self.localNodeID = localNodeID
        self.transport = transport
        self.local = local
        self.settings = settings
        self.nowMs = nowMs
    }

    public var stats: Stats { counters.withLock { $0 } }
    var pending: Int { queue.withLock { $0.count } }

    /// One series as each replica asked for its shard answered it (`nil`: it did not return the
    /// series at all). Queues pushes to the replicas that lack samples; returns their node IDs.
    @discardableResult
    func check(_ labels: Labels, shard: ShardID, answers: [(node: String, chunks: [EncodedChunk]?)], startMs: Int64, endMs: Int64) -> [String] {
        guard answers.count >= 2 else { return [] }
        let shapes = answers.map { Shape($0.chunks ?? []) }
        if shapes.allSatisfy({ $0 == shapes[0] }) { return [] }
        let until = min(endMs, nowMs() - settings.settleMs)
        guard until >= startMs else { return [] }
        let all = answers.flatMap { $0.chunks ?? [] }
        guard let union = try? SeriesSampleIterator.collect(chunks: all, minTimeMs: startMs, maxTimeMs: until), !union.isEmpty else { return [] }
        var targets: [String] = []
        for a in answers {
            let mine = (try? SeriesSampleIterator.collect(chunks: a.chunks ?? [], minTimeMs: startMs, maxTimeMs: until).count) ?? 0
            if mine < union.count { targets.append(a.node) }
        }
        guard !targets.isEmpty else { return [] }
        counters.withLock { $0.detected += 1 }
        let series = SeriesChunks(labels: labels, chunks: all)
        let accepted = queue.withLock { q -> Int in
            let room = max(0, settings.maxPendingSeries - q.count)
            for node in targets.prefix(room) { q.append(Item(node: node, shard: shard, series: series)) }
            return min(room, targets.count)
        }
        if accepted < targets.count { counters.withLock { $0.dropped += targets.count - accepted } }
        if accepted > 0 { wake.continuation.yield() }
        return targets
    }

    /// Pushes queued repairs until cancelled (the node's service runs this).
    public func run() async {
        for await _ in wake.stream {
            await drain()
            if Task.isCancelled { return }
        }
    }

    public func stop() { wake.continuation.finish() }

    /// Pushes everything queued now, grouped by node and shard.
    public func drain() async {
        while true {
            let batch = queue.withLock { q -> [Item] in
                defer { q.removeAll(keepingCapacity: true) }
                return q
            }
            if batch.isEmpty { return }
            var groups: [String: [ShardID: [SeriesChunks]]] = [:]
            for item in batch { groups[item.node, default: [:]][item.shard, default: []].append(item.series) }
            for (node, shards) in groups.sorted(by: { $0.key < $1.key }) {
                for (shard, series) in shards.sorted(by: { $0.key < $1.key }) {
                    await push(series, shard: shard, to: node)
                }
            }
        }
    }

    private func push(_ series: [SeriesChunks], shard: ShardID, to node: String) async {
        do {
            let appended: Int
            if node == localNodeID {
                appended = try await local.append(chunks: series, nowMs: nowMs()).accepted
            } else {
                let ack = try await transport.call(node, PushChunksMessage(shard: shard, series: series), timeoutMs: settings.timeoutMs,
                                                   expecting: WriteAckMessage.self)
                guard let r = ack.results.first(where: { $0.shard == shard }), r.status == .ok else {
                    throw PeerAnswerError(nodeID: node, message: "push not acknowledged: \(ack.results)")
                }
                appended = Int(r.appended)
            }
            counters.withLock {
                $0.repairedSeries += series.count
                $0.repairedSamples += appended
            }
        } catch {
            counters.withLock { $0.failed += series.count }
        }
    }

    /// What two replicas' answers for a series look like without decoding them.
    struct Shape: Equatable {
        var chunks: Int
        var bytes: Int
        var minMs: Int64
        var maxMs: Int64

        init(_ chunks: [EncodedChunk]) {
            self.chunks = chunks.count
            bytes = chunks.reduce(0) { $0 + $1.bytes.count }
            minMs = chunks.map(\.minTimeMs).min() ?? 0
            maxMs = chunks.map(\.maxTimeMs).max() ?? 0
        }
    }
}
