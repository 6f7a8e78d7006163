import StarlingCore
import StarlingPeerWire
import StarlingPlacement
import StarlingStorage
import Synchronization

/// The query side of the cluster (docs/cluster.md, "Read path"): every `Querier` call fans out
/// to enough replicas of every shard — this node's own store first — and merges their answers.
///
/// - `select` asks each chosen node for exactly the shards it was chosen for, and merges the
///   sorted series streams; a series answered by two replicas has its chunks concatenated,
///   which the sample iterator merges and deduplicates.
/// - label queries ask the same nodes for their whole answer and take the union.
/// - A node that fails or misses its deadline has its shards retried on the next replicas; a
///   shard no replica answered becomes a `warnings` entry naming it, never a silent gap.
public final class ClusterQuerier: Querier {
    public struct Settings: Sendable, Hashable {
        /// Replicas of each shard a read asks. Default quorum: with writes at quorum, every
        /// acknowledged sample is in at least one of the replicas read, even right after a
        /// replica came back and has not received its hints yet. `one` halves the read work at
        /// the price of that guarantee. `cluster.read_consistency`.
        public var consistency: Consistency
        /// Deadline of one node's part of a read, in ms; then its shards go to other replicas.
        /// Default 10,000 (the query timeout is 2 minutes: a paused replica costs one deadline,
        /// not the query). `cluster.read_timeout`.
        public var timeoutMs: UInt32

        public init(consistency: Consistency = .quorum, timeoutMs: UInt32 = 10_000) {
            self.consistency = consistency
            self.timeoutMs = timeoutMs
        }
    }

    public let settings: Settings
    let topology: ClusterTopology
    let transport: any PeerTransport
    let local: LocalReplica
    /// Pushes what a replica lacks when a read notices it; nil: no read repair.
    let readRepair: ReadRepair?
    private let counters = Mutex(ClusterReadStats())
    /// The plan of a read over every shard, with its first round, for one topology generation
    /// and completeness revision: planning 1,024 shards is most of the work of a small read
    /// (rule evaluation makes hundreds a second), and the plan only changes with those two.
    private let planCache = Mutex<CachedPlan?>(nil)

    private struct CachedPlan: Sendable {
        var generation: UInt64
        var revision: UInt64
        var consistency: Consistency
        var plan: ReadPlan
        var round: [String: ShardSet]
    }

    public init(topology: ClusterTopology, transport: any PeerTransport, local: LocalReplica, settings: Settings = Settings(),
                readRepair: ReadRepair? = nil) {
        self.topology = topology
        self.transport = transport
        self.local = local
        self.settings = settings
        self.readRepair = readRepair
    }

    public var stats: ClusterReadStats { counters.withLock { $0 } }

    // MARK: Querier

    public func select(_ matchers: [LabelMatcher], hints: SelectHints) async throws -> any SeriesSet {
        let snapshot = topology.current
        if snapshot.isSingleNode { return try await local.database().select(matchers, hints: hints) }
        let local = self.local
        let transport = self.transport
        let timeoutMs = settings.timeoutMs
        let limit = hints.limit
        let (sets, warnings) = try await fanOut(snapshot, only: hints.shards) { node, shards -> ReplicaAnswer in
            var h = hints
            h.shards = shards
            if node == snapshot.localNodeID {
                return ReplicaAnswer(node: node, shards: shards, set: try await local.database().select(matchers, hints: h))
            }
            let request = SelectMessage(startMs: hints.startMs, endMs: hints.endMs, shards: shards,
                                        limit: UInt64(limit ?? 0), matchers: matchers)
            let frames = try await transport.request(to: node, .select, payload: request.encoded(), timeoutMs: timeoutMs)
            var series: [SeriesChunks] = []
            var remoteWarnings: [String] = []
            for f in frames {
                switch f.type {
                case .seriesFrame: series += try SeriesFrameMessage.decode(f.payload).series
                case .streamEnd: remoteWarnings += try StreamEndMessage.decode(f.payload).warnings
                default: _ = try decodeAnswer(f, from: node, as: StreamEndMessage.self)
                }
            }
            return ReplicaAnswer(node: node, shards: shards, set: ArraySeriesSet(series, warnings: remoteWarnings.map { "node \(node): \($0)" }))
        }
        // Read repair compares replicas only for complete answers (a limit may cut replicas'
        // answers at different series).
        let check = limit == nil ? readRepair.map { ReadRepairCheck(repair: $0, layout: snapshot.placement.layout, startMs: hints.startMs, endMs: hints.endMs) } : nil
        return MergedSeriesSet(sets, warnings: warnings, limit: limit, repair: check)
    }

    public func series(_ matcherSets: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[Labels]> {
        let snapshot = topology.current
        if snapshot.isSingleNode { return try await local.database().series(matcherSets, startMs: startMs, endMs: endMs, limit: limit) }
        let q = LabelQueryMessage(kind: .series, startMs: startMs, endMs: endMs, limit: UInt64(limit ?? 0), matcherSets: matcherSets)
        let (replies, warnings) = try await labelQuery(snapshot, q) { db in
            let r = try await db.series(matcherSets, startMs: startMs, endMs: endMs, limit: limit)
            return LabelQueryReplyMessage(warnings: r.warnings, series: r.value)
        }
        var all = Set<Labels>()
        for r in replies { all.formUnion(r.series) }
        var out = all.sorted()
        var w = warnings + replies.flatMap(\.warnings)
        if let limit, out.count > limit {
            out.removeLast(out.count - limit)
            w.append("results truncated due to limit")
        }
        return QueryResult(out, warnings: Self.unique(w))
    }

    public func labelNames(_ matcherSets: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[String]> {
        let snapshot = topology.current
        if snapshot.isSingleNode { return try await local.database().labelNames(matcherSets, startMs: startMs, endMs: endMs, limit: limit) }
        let q = LabelQueryMessage(kind: .labelNames, startMs: startMs, endMs: endMs, limit: UInt64(limit ?? 0), matcherSets: matcherSets)
        let (replies, warnings) = try await labelQuery(snapshot, q) { db in
            let r = try await db.labelNames(matcherSets, startMs: startMs, endMs: endMs, limit: limit)
            return LabelQueryReplyMessage(warnings: r.warnings, strings: r.value)
        }
        return Self.union(replies, warnings, limit)
    }

    public func labelValues(_ name: String, _ matcherSets: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[String]> {
        let snapshot = topology.current
        if snapshot.isSingleNode { return try await local.database().labelValues(name, matcherSets, startMs: startMs, endMs: endMs, limit: limit) }
        let q = LabelQueryMessage(kind: .labelValues, name: name, startMs: startMs, endMs: endMs, limit: UInt64(limit ?? 0), matcherSets: matcherSets)
        let (replies, warnings) = try await labelQuery(snapshot, q) { db in
            let r = try await db.labelValues(name, matcherSets, startMs: startMs, endMs: endMs, limit: limit)
            return LabelQueryReplyMessage(warnings: r.warnings, strings: r.value)
        }
        return Self.union(replies, warnings, limit)
    }

    // MARK: Fan-out

    /// Label queries go to the nodes a select would ask, each answering over its whole store.
    private func labelQuery(_ snapshot: ClusterSnapshot, _ q: LabelQueryMessage,
                            local op: @escaping @Sendable (TimeSeriesDB) async throws -> LabelQueryReplyMessage)
        async throws -> ([LabelQueryReplyMessage], [String])
    {
        let local = self.local
        let transport = self.transport
        let timeoutMs = settings.timeoutMs
        return try await fanOut(snapshot, only: nil) { node, _ in
            if node == snapshot.localNodeID { return try await op(local.database()) }
            return try await transport.call(node, q, timeoutMs: timeoutMs, expecting: LabelQueryReplyMessage.self)
        }
    }

    static func union(_ replies: [LabelQueryReplyMessage], _ warnings: [String], _ limit: Int?) -> QueryResult<[String]> {
        var all = Set<String>()
        for r in replies { all.formUnion(r.strings) }
        var out = all.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var w = warnings + replies.flatMap(\.warnings)
        if let limit, out.count > limit {
            out.removeLast(out.count - limit)
            w.append("results truncated due to limit")
        }
        return QueryResult(out, warnings: unique(w))
    }

    static func unique(_ warnings: [String]) -> [String] {
        var seen = Set<String>()
        return warnings.filter { seen.insert($0).inserted }
    }

    /// Runs `op` on enough replicas of every shard (of `only`, or all) and returns the answers
    /// with warnings for shards no replica answered. Each round asks every chosen node at once;
    /// a node that fails has its shards moved to their next untried replica for another round.
    func fanOut<R: Sendable>(_ snapshot: ClusterSnapshot, only: ShardSet?,
                             _ op: @escaping @Sendable (String, ShardSet) async throws -> R) async throws -> ([R], [String])
    {
        var (plan, round) = self.plan(snapshot, only: only)
        var results: [R] = []
        while !round.isEmpty {
            try Task.checkCancellation()
            let answers = await withTaskGroup(of: (String, Result<R, any Error>).self) { group in
                for (node, shards) in round {
                    group.addTask {
                        do { return (node, .success(try await op(node, shards))) } catch { return (node, .failure(error)) }
                    }
                }
                var out: [(String, Result<R, any Error>)] = []
                for await a in group { out.append(a) }
                return out
            }
            var failed: [(String, String)] = []
            for (node, result) in answers.sorted(by: { $0.0 < $1.0 }) {
                switch result {
                case .success(let r):
                    results.append(r)
                    plan.answered(node, shards: round[node]!)
                case .failure(let e):
                    if e is CancellationError { throw e }
                    failed.append((node, "\(e)"))
                }
            }
            counters.withLock {
                $0.requests += answers.count
                $0.failedRequests += failed.count
            }
            round = plan.retry(failed.map { ($0.0, round[$0.0]!, $0.1) })
        }
        let (warnings, degraded) = plan.finish()
        counters.withLock {
            $0.reads += 1
            $0.degradedShards += degraded
            if !warnings.isEmpty { $0.incompleteReads += 1 }
        }
        return (results, warnings)
    }

    /// The read plan and its first round; from the cache when nothing it depends on changed.
    func plan(_ snapshot: ClusterSnapshot, only: ShardSet?) -> (ReadPlan, [String: ShardSet]) {
        let sync = topology.sync.snapshot
        let consistency = settings.consistency
        if only == nil, let c = planCache.withLock({ $0 }), c.generation == snapshot.generation,
           c.revision == sync.revision, c.consistency == consistency {
            return (c.plan, c.round)
        }
        var plan = ReadPlan(snapshot, consistency: consistency, only: only,
                            isComplete: { sync.isComplete($0, $1, localNodeID: snapshot.localNodeID) })
        let round = plan.firstRound()
        if only == nil {
            planCache.withLock {
                $0 = CachedPlan(generation: snapshot.generation, revision: sync.revision, consistency: consistency, plan: plan, round: round)
            }
        }
        return (plan, round)
    }
}

/// Counters for `/metrics`.
public struct ClusterReadStats: Sendable, Equatable {
    public var reads = 0
    /// Reads answered with a warning because some shard had no replica answering.
    public var incompleteReads = 0
    /// Shard reads answered by fewer replicas than the consistency level asks (but at least one).
    public var degradedShards = 0
    /// Node requests made, and those that failed (then retried elsewhere).
    public var requests = 0
    public var failedRequests = 0

    public init() {}
}

/// Which replicas a read asks, shard by shard, and what is left to try. Per-shard state lives in
/// arrays indexed by shard number, so copying a cached plan and recording answers stay cheap.
struct ReadPlan: Sendable {
    /// The shards this read covers, ascending.
    private var shards: [ShardID] = []
    /// Untried replicas of each shard, in the order to ask them.
    private var candidates: [[String]]
    /// Replicas each shard needs to answer (by consistency), and how many did.
    private var needed: [Int]
    private var answered: [Int]
    private var reasons: [ShardID: [String]] = [:]

    /// - Parameter isComplete: whether a node holds a shard complete (`ShardSync`): complete
    ///   replicas are asked first, and `P_write` members that report a shard complete (a joiner
    ///   done with it) may be read too.
    init(_ snapshot: ClusterSnapshot, consistency: Consistency, only: ShardSet?,
         isComplete: (String, ShardID) -> Bool = { _, _ in true }) {
        let placement = snapshot.placement
        let count = placement.layout.shardCount
        candidates = Array(repeating: [], count: count)
        needed = Array(repeating: 0, count: count)
        answered = Array(repeating: 0, count: count)
        let wanted = only.map { Array($0) } ?? (0..<count).map { ShardID($0) }
        for shard in wanted where Int(shard.rawValue) < count {
            shards.append(shard)
            let owners = placement.readSet(of: shard, hasCompleteCopy: { isComplete($0, shard) })
            // Complete copies first, then the others (a replica still pulling a shard it gained
            // is read only when not enough complete ones answer). Within each group this node
            // first (no network), the rest rotated by shard so reads spread over replicas
            // instead of always hitting each shard's first-ranked one.
            var ordered: [String] = []
            for wantComplete in [true, false] {
                var group = owners.filter { snapshot.isReachable($0) && isComplete($0, shard) == wantComplete }
                var mine = false
                if let i = group.firstIndex(of: snapshot.localNodeID) {
                    group.remove(at: i)
                    mine = true
                }
                if !group.isEmpty {
                    let k = Int(shard.rawValue) % group.count
                    group = Array(group[k...] + group[..<k])
                }
                if mine { group.insert(snapshot.localNodeID, at: 0) }
                ordered += group
            }
            let i = Int(shard.rawValue)
            needed[i] = max(consistency.required(of: placement.readReplicas(of: shard).count), 1)
            if ordered.isEmpty {
                reasons[shard] = owners.isEmpty ? ["no replica in placement"] : owners.map { "\($0): \(snapshot.members[$0]?.liveness.description ?? "unknown")" }
            }
            candidates[i] = ordered
        }
    }

    /// Node → shards for the first round: each shard's first `needed` candidates.
    mutating func firstRound() -> [String: ShardSet] {
        var round: [String: ShardSet] = [:]
        for shard in shards {
            let i = Int(shard.rawValue)
            let list = candidates[i]
            let n = min(needed[i], list.count)
            for node in list.prefix(n) { round[node, default: ShardSet()].insert(shard) }
            candidates[i] = Array(list.dropFirst(n))
        }
        return round
    }

    mutating func answered(_ node: String, shards: ShardSet) {
        for s in shards { answered[Int(s.rawValue)] += 1 }
    }

    /// Moves every failed node's shards to their next untried candidate.
    mutating func retry(_ failures: [(node: String, shards: ShardSet, reason: String)]) -> [String: ShardSet] {
        var round: [String: ShardSet] = [:]
        for (node, shards, reason) in failures {
            for shard in shards {
                reasons[shard, default: []].append("\(node): \(reason)")
                let i = Int(shard.rawValue)
                guard !candidates[i].isEmpty else { continue }
                let next = candidates[i].removeFirst()
                round[next, default: ShardSet()].insert(shard)
            }
        }
        return round
    }

    /// Warnings for shards nobody answered, and how many shards were read from fewer replicas
    /// than needed.
    func finish() -> (warnings: [String], degraded: Int) {
        var missing: [ShardID] = []
        var degraded = 0
        for shard in shards {
            let i = Int(shard.rawValue)
            let got = answered[i]
            if got == 0 { missing.append(shard) } else if got < needed[i] { degraded += 1 }
        }
        guard !missing.isEmpty else { return ([], degraded) }
        let list = missing.prefix(20).map(\.description).joined(separator: ", ") + (missing.count > 20 ? " and \(missing.count - 20) more" : "")
        var why = Set<String>()
        for s in missing { for r in reasons[s] ?? [] { why.insert(String(r.prefix(200))) } }
        let reasonText = why.sorted().prefix(5).joined(separator: "; ")
        return (["\(missing.count) shard(s) unavailable, their series are missing from this result: shards \(list) (\(reasonText))"], degraded)
    }
}

/// A series set held in memory (a remote node's answer).
final class ArraySeriesSet: SeriesSet, @unchecked Sendable {
    // @unchecked: consumed by one task at a time, as the SeriesSet contract says.
    private var items: [SeriesChunks]
    private var index = 0
    let warnings: [String]

    init(_ items: [SeriesChunks], warnings: [String]) {
        self.items = items
        self.warnings = warnings
    }

    func next() async throws -> SeriesChunks? {
        guard index < items.count else { return nil }
        defer { index += 1 }
        return items[index]
    }
}

/// One replica's answer to a fan-out select: the shards it was asked for and its series.
struct ReplicaAnswer: Sendable {
    var node: String
    var shards: ShardSet
    var set: any SeriesSet
}

/// What `MergedSeriesSet` needs to check replicas against each other.
struct ReadRepairCheck: Sendable {
    var repair: ReadRepair
    var layout: ShardLayout
    var startMs: Int64
    var endMs: Int64
}

/// Merges series sets sorted by label set into one sorted set; equal label sets (replicas of
/// one series) become one series with every chunk. With a `ReadRepairCheck`, every series read
/// from more than one replica is compared across them, and what a replica lacks is queued for
/// read repair.
final class MergedSeriesSet: SeriesSet, @unchecked Sendable {
    // @unchecked: consumed by one task at a time, as the SeriesSet contract says.
    private let sources: [ReplicaAnswer]
    private var heads: [SeriesChunks?]
    private var started = false
    private let limit: Int?
    private var returned = 0
    private var extraWarnings: [String]
    private let repair: ReadRepairCheck?

    init(_ sources: [ReplicaAnswer], warnings: [String], limit: Int?, repair: ReadRepairCheck? = nil) {
        self.sources = sources
        heads = Array(repeating: nil, count: sources.count)
        extraWarnings = warnings
        self.limit = limit
        self.repair = sources.count > 1 ? repair : nil
    }

    var warnings: [String] {
        ClusterQuerier.unique(extraWarnings + sources.flatMap(\.set.warnings))
    }

    func next() async throws -> SeriesChunks? {
        if !started {
            started = true
            for i in sources.indices { heads[i] = try await sources[i].set.next() }
        }
        var smallest: Labels?
        for h in heads { if let h, smallest.map({ h.labels < $0 }) ?? true { smallest = h.labels } }
        guard let labels = smallest else { return nil }
        if let limit, returned >= limit {
            extraWarnings.append("results truncated due to limit of \(limit) series")
            for i in heads.indices { heads[i] = nil }
            return nil
        }
        var chunks: [EncodedChunk] = []
        var answered: [Int: [EncodedChunk]] = [:]
        for i in heads.indices {
            guard let h = heads[i], h.labels == labels else { continue }
            chunks += h.chunks
            if repair != nil { answered[i] = h.chunks }
            heads[i] = try await sources[i].set.next()
        }
        if let repair {
            let shard = repair.layout.shard(for: labels)
            let asked = sources.indices.filter { sources[$0].shards.contains(shard) }
            if asked.count >= 2 {
                repair.repair.check(labels, shard: shard, answers: asked.map { (node: sources[$0].node, chunks: answered[$0]) },
                                    startMs: repair.startMs, endMs: repair.endMs)
            }
        }
        returned += 1
        return SeriesChunks(labels: labels, chunks: chunks)
    }
}
