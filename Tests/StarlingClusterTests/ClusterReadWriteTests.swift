import Logging
import StarlingCore
import StarlingChunk
import StarlingPeerWire
import StarlingPlacement
import StarlingStorage
import StarlingTestKit
import Synchronization
import Testing

@testable import StarlingCluster

/// Runs blocking work inline (tests have no thread pool to protect).
struct InlineRunner: BlockingRunner {
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T { try body() }
    func runAsync<T: Sendable>(_ body: () async throws -> T) async throws -> T { try await body() }
}

struct NodeDown: Error, CustomStringConvertible {
    var node: String
    var description: String { "connection to \(node) refused" }
}

/// Delivers requests to other in-process nodes' real handlers, through the real message codecs.
/// Nodes in `down` refuse, as a dead process would.
final class LoopbackTransport: PeerTransport {
    let handlers = Mutex<[String: ClusterPeerHandler]>([:])
    let down = Mutex<Set<String>>([])
    let requests = Mutex<[String: Int]>([:])

    func request(to nodeID: String, _ type: PeerMessageType, payload: [UInt8], timeoutMs: UInt32) async throws -> [PeerFrame] {
        requests.withLock { $0[nodeID, default: 0] += 1 }
        guard !down.withLock({ $0.contains(nodeID) }), let handler = handlers.withLock({ $0[nodeID] }) else { throw NodeDown(node: nodeID) }
        let replies = await handler.handle(PeerFrame(type: type, requestID: 1, placementVersion: 0, payload: payload))
        return replies.map { PeerFrame(type: $0.type, flags: [.response], requestID: 1, placementVersion: 0, payload: $0.payload) }
    }
}

final class HintRecorder: HintSink {
    let hints = Mutex<[(String, Int)]>([])
    func storeHint(target: String, write: WriteMessage, nowMs: Int64) -> String? {
        hints.withLock { $0.append((target, write.sampleCount)) }
        return nil
    }
    var byTarget: [String: Int] { hints.withLock { Dictionary($0, uniquingKeysWith: +) } }
}

/// N nodes in one process, each with its own store, topology, writer, querier and handler.
final class TestCluster: Sendable {
    struct Node: Sendable {
        let id: String
        let db: TimeSeriesDB
        let topology: ClusterTopology
        let writer: ClusterWriter
        let querier: ClusterQuerier
        let hints: HintRecorder
        let readRepair: ReadRepair
    }

    static let now: Int64 = 1_700_000_000_000
    let nodes: [Node]
    let transport = LoopbackTransport()
    let layout = ShardLayout(shardCount: 64)

    /// - Parameter fresh: nodes started on a new data directory (no shard complete).
    init(_ n: Int, rf: Int = 3, write: Consistency = .quorum, read: Consistency = .quorum, fresh: Set<Int> = []) throws {
        var options = TimeSeriesDB.Options()
        options.shardLayout = layout
        let settings = ClusterTopology.Settings(layout: layout, placement: try PlacementSettings(replicationFactor: rf))
        var nodes: [Node] = []
        for i in 0..<n {
            let id = "node-\(i)"
            let db = try TimeSeriesDB(store: MemoryKV(), options: options, nowMs: Self.now)
            let local = LocalReplica(database: { db }, runner: InlineRunner())
            let topology = ClusterTopology(localNodeID: id, settings: settings, restored: fresh.contains(i) ? ShardSet() : nil)
            let hints = HintRecorder()
            let writer = ClusterWriter(topology: topology, transport: transport, local: local, hints: hints,
                                       settings: .init(consistency: write, timeoutMs: 1_000), nowMs: { Self.now })
            let readRepair = ReadRepair(localNodeID: id, transport: transport, local: local, nowMs: { Self.now })
            let querier = ClusterQuerier(topology: topology, transport: transport, local: local, settings: .init(consistency: read, timeoutMs: 1_000),
                                         readRepair: readRepair)
            transport.handlers.withLock { $0[id] = ClusterPeerHandler(local: local, sync: topology.sync, nowMs: { Self.now }, logger: Logger(label: id)) }
            nodes.append(Node(id: id, db: db, topology: topology, writer: writer, querier: querier, hints: hints, readRepair: readRepair))
        }
        self.nodes = nodes
        setLiveness([:])
    }

    /// Every node sees the same member list; `liveness` overrides alive.
    func setLiveness(_ liveness: [String: ClusterMember.Liveness], nowMs: Int64 = now) {
        let members = nodes.map { n in
            let l = liveness[n.id] ?? .alive
            return ClusterMember(nodeID: n.id, state: .active, liveness: l, deadSinceMs: l == .dead ? nowMs : nil)
        }
        transport.down.withLock { $0 = Set(liveness.filter { $0.value == .dead || $0.value == .left }.keys) }
        for n in nodes { n.topology.update(members: members, nowMs: nowMs) }
    }

    /// Only `ids` are members (all alive, active unless listed in `states`); the other nodes are
    /// not part of the cluster.
    func setMembers(_ ids: [String], states: [String: PlacementMember.State] = [:], nowMs: Int64 = now) {
        let members = ids.map { ClusterMember(nodeID: $0, state: states[$0] ?? .active) }
        for n in nodes where ids.contains(n.id) { n.topology.update(members: members, nowMs: nowMs) }
    }

    static func batch(_ series: Int, samples: Int, offset: Int = 0) -> [SeriesSamples] {
        (0..<series).map { i in
            SeriesSamples(labels: Labels(["__name__": "m", "i": String(i), "job": "j\(i % 3)"]),
                          samples: (0..<samples).map { Sample(now - Int64(samples - $0) * 1_000, Double(i * 1_000 + $0 + offset)) })
        }
    }

    /// Everything `querier` returns for `m`, decoded.
    static func read(_ q: any Querier, _ matchers: [LabelMatcher] = [.eq("__name__", "m")]) async throws -> ([Labels: [Sample]], [String]) {
        let set = try await q.select(matchers, hints: SelectHints(startMs: now - 3_600_000, endMs: now))
        var out: [Labels: [Sample]] = [:]
        while let s = try await set.next() {
            #expect(out[s.labels] == nil, "series \(s.labels) returned twice")
            var it = SeriesSampleIterator(chunks: s.chunks)
            out[s.labels] = try it.collect()
        }
        return (out, set.warnings)
    }
}

@Suite struct ClusterReadWriteTests {
    @Test func replicatesEveryShardToItsReplicasAndReadsItBackFromAnyNode() async throws {
        let c = try TestCluster(5, rf: 3)
        let batch = TestCluster.batch(200, samples: 5)
        let report = try await c.nodes[0].writer.write(batch, nowMs: TestCluster.now)
        #expect(report.succeeded)
        // Each node holds exactly the series of the shards placed on it.
        let placement = c.nodes[0].topology.current.placement
        for n in c.nodes {
            let (held, _) = try await TestCluster.read(n.db)
            let expected = batch.filter { placement.writeSet(of: c.layout.shard(for: $0.labels)).contains(n.id) }
            #expect(held.count == expected.count, "\(n.id)")
        }
        // The write was answered at quorum; stragglers finish in the background.
        try await eventually { c.nodes.reduce(0) { $0 + (try! syncCount($1.db)) } == 600 }
        for n in c.nodes {
            let (all, warnings) = try await TestCluster.read(n.querier)
            #expect(warnings.isEmpty)
            #expect(all.count == 200)
            for s in batch { #expect(all[s.labels]?.map(\.timestampMs) == s.samples.map(\.timestampMs)) }
        }
        #expect(c.nodes.allSatisfy { $0.hints.byTarget.isEmpty })
    }

    @Test func oneReplicaDownWritesSucceedWithHintsAndReadsStayComplete() async throws {
        let c = try TestCluster(5, rf: 3)
        c.setLiveness(["node-3": .dead])
        let batch = TestCluster.batch(300, samples: 3)
        let report = try await c.nodes[1].writer.write(batch, nowMs: TestCluster.now)
        #expect(report.succeeded)
        let placement = c.nodes[1].topology.current.placement
        let missed = batch.filter { placement.writeSet(of: c.layout.shard(for: $0.labels)).contains("node-3") }
        #expect(!missed.isEmpty)
        #expect(c.nodes[1].hints.byTarget["node-3"] == missed.reduce(0) { $0 + $1.samples.count })
        for n in c.nodes where n.id != "node-3" {
            let (all, warnings) = try await TestCluster.read(n.querier)
            #expect(warnings.isEmpty)
            #expect(all.count == 300)
        }
    }

    @Test func aNodeThatFailsMidReadHasItsShardsReadFromOtherReplicas() async throws {
        let c = try TestCluster(4, rf: 3, read: .one)
        let batch = TestCluster.batch(120, samples: 2)
        _ = try await c.nodes[0].writer.write(batch, nowMs: TestCluster.now)
        try await eventually { c.nodes.reduce(0) { $0 + (try! syncCount($1.db)) } == 360 }
        // node-2 refuses connections but gossip has not noticed yet (still alive).
        c.transport.down.withLock { $0 = ["node-2"] }
        let (all, warnings) = try await TestCluster.read(c.nodes[0].querier)
        #expect(warnings.isEmpty)
        #expect(all.count == 120)
        #expect(c.nodes[0].querier.stats.failedRequests >= 1)
    }

    @Test func withoutQuorumTheWriteFailsNamingShardsAndReadsWarnAboutMissingShards() async throws {
        let c = try TestCluster(5, rf: 3)
        let batch = TestCluster.batch(200, samples: 1)
        _ = try await c.nodes[0].writer.write(batch, nowMs: TestCluster.now)
        try await eventually { c.nodes.reduce(0) { $0 + (try! syncCount($1.db)) } == 600 }
        c.setLiveness(["node-2": .dead, "node-3": .dead, "node-4": .dead])
        await #expect(throws: WriteConsistencyError.self) {
            try await c.nodes[0].writer.write(TestCluster.batch(200, samples: 1, offset: 7), nowMs: TestCluster.now)
        }
        do {
            _ = try await c.nodes[0].writer.write(TestCluster.batch(200, samples: 1, offset: 9), nowMs: TestCluster.now)
        } catch let e as WriteConsistencyError {
            #expect(e.description.contains("write consistency quorum not reached"))
            #expect(e.description.contains("shard "))
        }
        // Shards whose three replicas are all down are missing, and the answer says which.
        let placement = c.nodes[0].topology.current.placement
        let lost = (0..<64).map { ShardID($0) }.filter { s in placement.readReplicas(of: s).allSatisfy { ["node-2", "node-3", "node-4"].contains($0) } }
        let (all, warnings) = try await TestCluster.read(c.nodes[0].querier)
        if lost.isEmpty {
            #expect(warnings.isEmpty)
            #expect(all.count == 200)
        } else {
            #expect(warnings.count == 1)
            #expect(warnings.first?.contains("shard(s) unavailable") == true)
            let expected = batch.filter { !lost.contains(c.layout.shard(for: $0.labels)) }.count
            #expect(all.count == expected)
        }
    }

    @Test func labelQueriesAreTheUnionOverReplicas() async throws {
        let c = try TestCluster(3, rf: 2)
        _ = try await c.nodes[0].writer.write(TestCluster.batch(50, samples: 1), nowMs: TestCluster.now)
        let q = c.nodes[2].querier
        let names = try await q.labelNames([], startMs: TestCluster.now - 3_600_000, endMs: TestCluster.now, limit: nil)
        #expect(names.value == ["__name__", "i", "job"])
        let jobs = try await q.labelValues("job", [], startMs: TestCluster.now - 3_600_000, endMs: TestCluster.now, limit: nil)
        #expect(jobs.value == ["j0", "j1", "j2"])
        let series = try await q.series([[.eq("job", "j1")]], startMs: TestCluster.now - 3_600_000, endMs: TestCluster.now, limit: nil)
        #expect(series.value.count == 17)
        #expect(series.value == series.value.sorted())
        let limited = try await q.labelValues("i", [], startMs: TestCluster.now - 3_600_000, endMs: TestCluster.now, limit: 5)
        #expect(limited.value.count == 5)
        #expect(limited.warnings == ["results truncated due to limit"])
    }

    @Test func aSingleNodeNeverTouchesTheTransport() async throws {
        let c = try TestCluster(1, rf: 3)
        _ = try await c.nodes[0].writer.write(TestCluster.batch(10, samples: 2), nowMs: TestCluster.now)
        let (all, _) = try await TestCluster.read(c.nodes[0].querier)
        #expect(all.count == 10)
        #expect(c.transport.requests.withLock { $0.isEmpty })
    }

    @Test func placementDropsAMemberDeadLongerThanTheRemovalTimeout() throws {
        let settings = ClusterTopology.Settings(layout: ShardLayout(shardCount: 16), removal: MemberRemoval(removalTimeoutMs: 60_000))
        let t = ClusterTopology(localNodeID: "a", settings: settings)
        let members = ["a", "b", "c", "d"].map { ClusterMember(nodeID: $0, state: .active) }
        let (s1, changed1) = t.update(members: members, nowMs: 0)
        #expect(changed1)
        #expect(s1.placement.members.count == 4)
        var withDead = members
        withDead[3].liveness = .dead
        withDead[3].deadSinceMs = 1_000
        let (s2, changed2) = t.update(members: withDead, nowMs: 30_000)
        #expect(!changed2)
        #expect(s2.placement.members.count == 4)
        #expect(!s2.isReachable("d"))
        #expect(t.nextRemovalMs(withDead, nowMs: 30_000) == 61_000)
        let (s3, changed3) = t.update(members: withDead, nowMs: 61_000)
        #expect(changed3)
        #expect(s3.placement.members.map(\.nodeID) == ["a", "b", "c"])
    }
}

func syncCount(_ db: TimeSeriesDB) throws -> Int {
    var n = 0
    for shard in try db.heldShards() {
        for block in try db.blocks(of: shard) { n += try db.series(of: shard, block: block).count }
    }
    return n
}

func eventually(_ condition: @Sendable () throws -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + .seconds(10)
    while try !condition() {
        guard clock.now < deadline else {
            Issue.record("condition not met within 10 s")
            return
        }
        try await Task.sleep(for: .milliseconds(5))
    }
}

/// Counts the calls a `LocalReplica` hands it; runs them inline.
final class CountingRunner: BlockingRunner {
    let calls = Mutex(0)
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        calls.withLock { $0 += 1 }
        return try body()
    }
    func runAsync<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        calls.withLock { $0 += 1 }
        return try await body()
    }
}

@Suite struct LocalReplicaRunnerTests {
    /// Appends (samples and chunks) go to the append runner; chunks are decoded on the general
    /// runner first, so a large push does not hold the append thread while it decodes.
    @Test func appendsRunOnTheAppendRunner() async throws {
        let db = try TimeSeriesDB(store: MemoryKV(), options: TimeSeriesDB.Options(), nowMs: 1_700_000_000_000)
        let general = CountingRunner(), appends = CountingRunner()
        let local = LocalReplica(database: { db }, runner: general, appendRunner: appends)
        let labels = Labels([Label("__name__", "up"), Label("job", "a")])
        let report = try await local.append([SeriesSamples(labels: labels, samples: [Sample(1_700_000_000_000, 1)])], nowMs: 1_700_000_000_000)
        #expect(report.accepted == 1)
        let chunk = ChunkEncoder.encode([Sample(1_699_999_990_000, 2)], maxSamplesPerChunk: 120)
        _ = try await local.append(chunks: [SeriesChunks(labels: labels, chunks: chunk)], nowMs: 1_700_000_000_000)
        #expect(appends.calls.withLock { $0 } == 2)
        #expect(general.calls.withLock { $0 } == 1)
        // Without an append runner, appends use the general one.
        let single = LocalReplica(database: { db }, runner: general)
        _ = try await single.append([SeriesSamples(labels: labels, samples: [Sample(1_700_000_015_000, 1)])], nowMs: 1_700_000_000_000)
        #expect(general.calls.withLock { $0 } == 2)
    }
}
