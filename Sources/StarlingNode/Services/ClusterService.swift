import Foundation
import Logging
import Metrics
import ServiceLifecycle
import StarlingCluster
import StarlingCore
import StarlingGossip
import StarlingHTTP
import StarlingMembership
import StarlingPeer
import StarlingPlacement
import StarlingStorage
import Synchronization

extension BlockingExecutor: BlockingRunner {}

extension PeerPool: PeerTransport {}

extension WriteConsistencyError: APIErrorConvertible {
    public var apiError: APIError { .unavailable(description) }
}

/// The ingest routes' writer in a cluster: the write coordinator, with this node's part of the
/// report (series refused by a limit here are reported to the client).
struct ClusterSampleWriter: SampleWriter {
    let writer: ClusterWriter

    func write(_ series: [SeriesSamples], nowMs: Int64) async throws -> AppendReport {
        let report = try await writer.write(series, nowMs: nowMs)
        var r = report.local ?? AppendReport()
        // Accepted from the client's point of view: every sample that reached the consistency
        // level, less what this node saw refused or already stored.
        r.accepted = max(0, report.samples - r.rejectedSamples - r.duplicates)
        return r
    }
}

/// Keeps the cluster layer's topology in step with gossip: on every membership change, and
/// every second (a dead member leaves placement when its removal timeout passes, without a
/// gossip event). Logs placement changes.
///
/// Gossip forgets a dead member when its tombstone is reclaimed (60 s on the LAN profile),
/// which may be before `cluster.removal_timeout`: this service remembers dead members itself
/// until the removal timeout has passed, so placement does not move early.
final class ClusterTopologyService: Service, Sendable {
    let gossip: GossipService
    let topology: ClusterTopology
    let logger: Logger
    let wallClockMs: @Sendable () -> Int64
    private let remembered = Mutex<[String: ClusterMember]>([:])

    init(gossip: GossipService, topology: ClusterTopology, logger: Logger, wallClockMs: @escaping @Sendable () -> Int64) {
        self.gossip = gossip
        self.topology = topology
        self.logger = logger
        self.wallClockMs = wallClockMs
    }

    func run() async throws {
        let changes = await gossip.subscribe()
        await refresh()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in changes.cancelOnGracefulShutdown() { await self.refresh() }
            }
            group.addTask {
                while !Task.isCancelled {
                    guard (try? await Task.sleep(for: .seconds(1))) != nil else { return }
                    await self.refresh()
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }

    /// The members as the cluster layer sees them, from gossip's current view.
    func members() async -> [ClusterMember] {
        let offset = await gossip.wallClockMs(ofInstanceMs: 0)
        let now = wallClockMs()
        var out: [String: ClusterMember] = [:]
        for m in await gossip.members() {
            let liveness: ClusterMember.Liveness = switch m.status {
            case .alive: .alive
            case .suspect: .suspect
            case .dead: .dead
            case .left: .left
            }
            let state: PlacementMember.State = switch m.metadata.state {
            case .joining: .joining
            case .active: .active
            case .leaving: .leaving
            }
            out[m.id.description] = ClusterMember(
                nodeID: m.id.description, zone: m.metadata.zone, state: state, liveness: liveness,
                deadSinceMs: liveness == .dead || liveness == .left ? m.lastChangeMs + offset : nil, peerAddress: m.metadata.peerAddress)
        }
        let removalMs = topology.settings.removal.removalTimeoutMs
        return remembered.withLock { remembered in
            for (id, m) in remembered where out[id] == nil {
                if let since = m.deadSinceMs, now - since < removalMs { out[id] = m }
            }
            remembered = out.filter { $0.value.isGone }
            return out.values.sorted { $0.nodeID < $1.nodeID }
        }
    }

    func refresh() async {
        let members = await members()
        let (snapshot, changed) = topology.update(members: members, nowMs: wallClockMs())
        if changed {
            let p = snapshot.placement
            logger.info("placement changed", metadata: [
                "placement_version": .string(String(p.version, radix: 16)),
                "members": .string(p.members.map { "\($0.nodeID)(\($0.state))" }.joined(separator: ",")),
                "replication_factor": .stringConvertible(min(p.settings.replicationFactor, p.members.count)),
            ])
        }
    }
}

/// Exports the cluster layer's counters on `/metrics` (added by the delta since the last scrape).
final class ClusterMetrics: Sendable {
    let writer: ClusterWriter
    let querier: ClusterQuerier
    let topology: ClusterTopology
    let handoff: HintedHandoff
    let agreement: PlacementAgreement
    let readRepair: ReadRepair
    private let lastRepair = Mutex(ReadRepair.Stats())
    private let last = Mutex<(ClusterWriterStats, ClusterReadStats, HintReplayCounters, HintStoreCounters)>(
        (ClusterWriterStats(), ClusterReadStats(), HintReplayCounters(), HintStoreCounters()))
    private let lastMismatches = Mutex(0)
    private let counters: [String: Counter]
    private let placementMembers = Gauge(label: "starling_cluster_placement_members")
    private let localShards = Gauge(label: "starling_cluster_local_shard_replicas")
    private let reachable = Gauge(label: "starling_cluster_members_reachable")

    private let hintsPending = Gauge(label: "starling_cluster_hints_pending")
    private let hintsPendingBytes = Gauge(label: "starling_cluster_hints_pending_bytes")
    private let hintsPendingSamples = Gauge(label: "starling_cluster_hints_pending_samples")

    init(writer: ClusterWriter, querier: ClusterQuerier, topology: ClusterTopology, handoff: HintedHandoff, agreement: PlacementAgreement, readRepair: ReadRepair) {
        self.readRepair = readRepair
        self.writer = writer
        self.querier = querier
        self.topology = topology
        self.handoff = handoff
        self.agreement = agreement
        var c: [String: Counter] = [:]
        func add(_ key: String, _ label: String, _ dims: [(String, String)] = []) { c[key] = Counter(label: label, dimensions: dims) }
        add("writes", "starling_cluster_writes_total")
        add("failedWrites", "starling_cluster_write_failures_total")
        add("forwarded", "starling_cluster_forwarded_samples_total")
        add("replicaOK", "starling_cluster_replica_writes_total", [("outcome", "ok")])
        add("replicaUnreachable", "starling_cluster_replica_writes_total", [("outcome", "unreachable")])
        add("replicaErrors", "starling_cluster_replica_writes_total", [("outcome", "error")])
        add("hintsStored", "starling_cluster_hints_stored_total")
        add("hintedSamples", "starling_cluster_hinted_samples_total")
        add("hintsRefused", "starling_cluster_hints_refused_total")
        add("reads", "starling_cluster_reads_total")
        add("incompleteReads", "starling_cluster_incomplete_reads_total")
        add("degradedShards", "starling_cluster_degraded_shard_reads_total")
        add("readRequests", "starling_cluster_read_requests_total")
        add("readFailures", "starling_cluster_read_request_failures_total")
        add("hintsReplayed", "starling_cluster_hints_replayed_total")
        add("hintSamplesReplayed", "starling_cluster_hinted_samples_replayed_total")
        add("hintBatchesFailed", "starling_cluster_hint_replay_failures_total")
        add("hintSamplesExpired", "starling_cluster_hinted_samples_expired_total")
        add("hintsCorrupt", "starling_cluster_hints_corrupt_total")
        add("placementMismatches", "starling_cluster_placement_mismatches_total")
        add("repairDetected", "starling_cluster_read_repair_detected_total")
        add("repairSeries", "starling_cluster_read_repair_series_total")
        add("repairSamples", "starling_cluster_read_repair_samples_total")
        add("repairDropped", "starling_cluster_read_repair_dropped_total")
        add("repairFailed", "starling_cluster_read_repair_failures_total")
        counters = c
    }

    func refresh() {
        let w = writer.stats
        let r = querier.stats
        let (store, h) = handoff.stats
        let sc = store?.counters ?? HintStoreCounters()
        let (lw, lr, lh, _) = last.withLock { l in
            defer { l = (w, r, h, sc) }
            return l
        }
        func bump(_ key: String, _ now: Int, _ before: Int) { if now > before { counters[key]?.increment(by: now - before) } }
        bump("writes", w.writes, lw.writes)
        bump("failedWrites", w.failedWrites, lw.failedWrites)
        bump("forwarded", w.forwardedSamples, lw.forwardedSamples)
        bump("replicaOK", w.replicaOK, lw.replicaOK)
        bump("replicaUnreachable", w.replicaUnreachable, lw.replicaUnreachable)
        bump("replicaErrors", w.replicaErrors, lw.replicaErrors)
        bump("hintsStored", w.hintsStored, lw.hintsStored)
        bump("hintedSamples", w.hintedSamples, lw.hintedSamples)
        bump("hintsRefused", w.hintsRefused, lw.hintsRefused)
        bump("reads", r.reads, lr.reads)
        bump("incompleteReads", r.incompleteReads, lr.incompleteReads)
        bump("degradedShards", r.degradedShards, lr.degradedShards)
        bump("readRequests", r.requests, lr.requests)
        bump("readFailures", r.failedRequests, lr.failedRequests)
        bump("hintsReplayed", h.replayedHints, lh.replayedHints)
        bump("hintSamplesReplayed", h.replayedSamples, lh.replayedSamples)
        bump("hintBatchesFailed", h.failedBatches, lh.failedBatches)
        bump("hintSamplesExpired", h.expiredSamples, lh.expiredSamples)
        bump("hintsCorrupt", h.corruptHints, lh.corruptHints)
        let mismatches = agreement.mismatches
        let before = lastMismatches.withLock { l in defer { l = mismatches }; return l }
        bump("placementMismatches", mismatches, before)
        let rr = readRepair.stats
        let lrr = lastRepair.withLock { l in defer { l = rr }; return l }
        bump("repairDetected", rr.detected, lrr.detected)
        bump("repairSeries", rr.repairedSeries, lrr.repairedSeries)
        bump("repairSamples", rr.repairedSamples, lrr.repairedSamples)
        bump("repairDropped", rr.dropped, lrr.dropped)
        bump("repairFailed", rr.failed, lrr.failed)
        hintsPending.record(store?.pendingHints ?? 0)
        hintsPendingBytes.record(store?.pendingBytes ?? 0)
        hintsPendingSamples.record(store?.pendingSamples ?? 0)
        let snapshot = topology.current
        let p = snapshot.placement
        placementMembers.record(p.members.count)
        reachable.record(snapshot.members.values.filter(\.isReachable).count)
        var mine = 0
        for s in 0..<p.layout.shardCount where p.writeSet(of: ShardID(s)).contains(snapshot.localNodeID) { mine += 1 }
        localShards.record(mine)
    }
}

/// Runs anti-entropy: a round of shard comparisons every `interval`, and a full sync of every
/// owned shard when a member comes back (alive after dead or suspect) — it may have missed
/// writes whose hints were refused — when the placement changes (new owners pull their shards'
/// history), and once shortly after start.
final class AntiEntropyService: Service, Sendable {
    let antiEntropy: AntiEntropy
    let gossip: GossipService
    let interval: Duration
    let logger: Logger
    private let repairedSamples = Counter(label: "starling_cluster_repair_samples_total")
    private let repairedSeries = Counter(label: "starling_cluster_repair_series_total")
    private let differingBlocks = Counter(label: "starling_cluster_repair_differing_blocks_total")
    private let comparedShards = Counter(label: "starling_cluster_repair_compared_shards_total")
    private let fetchedBytes = Counter(label: "starling_cluster_repair_fetched_bytes_total")
    private let peerFailures = Counter(label: "starling_cluster_repair_peer_failures_total")

    init(antiEntropy: AntiEntropy, gossip: GossipService, interval: Duration, logger: Logger) {
        self.antiEntropy = antiEntropy
        self.gossip = gossip
        self.interval = interval
        self.logger = logger
    }

    func record(_ r: AntiEntropy.RoundReport, full: Bool) {
        repairedSamples.increment(by: r.samplesAppended)
        repairedSeries.increment(by: r.seriesPulled)
        differingBlocks.increment(by: r.blocksDiffering)
        comparedShards.increment(by: r.shardsCompared)
        fetchedBytes.increment(by: r.bytesFetched)
        peerFailures.increment(by: r.peerFailures)
        if r.seriesPulled > 0 || full {
            logger.info(full ? "anti-entropy full sync done" : "anti-entropy repaired replicas", metadata: [
                "shards": .stringConvertible(r.shardsCompared), "blocks_differing": .stringConvertible(r.blocksDiffering),
                "series_pulled": .stringConvertible(r.seriesPulled), "samples_appended": .stringConvertible(r.samplesAppended),
                "bytes_fetched": .stringConvertible(r.bytesFetched), "peer_failures": .stringConvertible(r.peerFailures),
            ])
        }
    }

    func run() async throws {
        let changes = await gossip.subscribe()
        let (wake, wakeUp) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await change in changes.cancelOnGracefulShutdown() where change.kind == .alive || change.kind == .joined {
                    wakeUp.yield()
                }
            }
            group.addTask {
                // A first full pass once the node has settled into the cluster.
                guard (try? await Task.sleep(for: .seconds(5))) != nil else { return }
                wakeUp.yield()
            }
            group.addTask {
                for await _ in wake {
                    // Let the returning member finish starting before pulling from it.
                    guard (try? await Task.sleep(for: .seconds(2))) != nil else { return }
                    self.record(await self.antiEntropy.fullSync(), full: true)
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    guard (try? await Task.sleep(for: self.interval)) != nil else { return }
                    self.record(await self.antiEntropy.round(), full: false)
                }
            }
            group.addTask {
                // A placement change (a member added, removed after its timeout, leaving) gives
                // shards new owners: they pull the history at once rather than a round at a time.
                var version = self.antiEntropy.placementVersion
                while !Task.isCancelled {
                    guard (try? await Task.sleep(for: .seconds(1))) != nil else { return }
                    let now = self.antiEntropy.placementVersion
                    if now != version {
                        version = now
                        wakeUp.yield()
                    }
                }
            }
            try? await gracefulShutdown()
            wakeUp.finish()
            group.cancelAll()
        }
    }
}

/// Opens the hint store once storage has recovered, then replays hints until shutdown.
final class HintedHandoffService: Service, Sendable {
    let handoff: HintedHandoff
    let storage: StorageService
    let settings: HintStore.Settings
    let executor: BlockingExecutor
    let logger: Logger
    let nowMs: @Sendable () -> Int64

    init(handoff: HintedHandoff, storage: StorageService, settings: HintStore.Settings, executor: BlockingExecutor,
         logger: Logger, nowMs: @escaping @Sendable () -> Int64) {
        self.handoff = handoff
        self.storage = storage
        self.settings = settings
        self.executor = executor
        self.logger = logger
        self.nowMs = nowMs
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            guard await self.storage.waitUntilOpen(), let db = try? self.storage.database() else { return }
            let settings = self.settings
            do {
                let store = try await self.executor.run { try HintStore(store: db.keyValueStore, settings: settings) }
                self.handoff.open(store)
            } catch {
                self.logger.error("cannot open the hint store: writes for unreachable replicas are not kept (anti-entropy still repairs them)",
                                  metadata: ["error": .string("\(error)")])
                return
            }
            await self.handoff.run(nowMs: self.nowMs)
        }
    }
}

/// Pushes read repairs queued by queries until shutdown.
final class ReadRepairService: Service, Sendable {
    let repair: ReadRepair

    init(repair: ReadRepair) { self.repair = repair }

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.repair.run() }
            try? await gracefulShutdown()
            self.repair.stop()
            group.cancelAll()
        }
    }
}
