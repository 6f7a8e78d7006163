import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import ServiceLifecycle
import StarlingCluster
import StarlingCore
import StarlingGossip
import StarlingHTTP
import StarlingPlacement
import Synchronization

/// Keeps completeness reports current and releases shards this node no longer owns:
/// a `shard_state` exchange with every reachable member every 2 s, and every 30 s the shards
/// unowned for `cluster.handoff_grace` are handed to their owners and deleted.
final class ShardSyncService: Service, Sendable {
    let exchange: ShardStateExchange
    let antiEntropy: AntiEntropy
    let grace: Duration
    let logger: Logger
    private let released = Counter(label: "starling_cluster_shards_released_total")
    private let pushedSeries = Counter(label: "starling_cluster_handoff_pushed_series_total")
    private let pushedBytes = Counter(label: "starling_cluster_handoff_pushed_bytes_total")
    private let deferred = Counter(label: "starling_cluster_shard_release_deferred_total")
    private let complete = Gauge(label: "starling_cluster_local_shards_complete")
    private let incomplete = Gauge(label: "starling_cluster_local_shards_incomplete")

    /// Run once before the first exchange (a restarted member narrows its complete shards to
    /// those with data on disk).
    let restore: (@Sendable () async -> Void)?

    init(exchange: ShardStateExchange, antiEntropy: AntiEntropy, grace: Duration, logger: Logger,
         restore: (@Sendable () async -> Void)? = nil) {
        self.exchange = exchange
        self.antiEntropy = antiEntropy
        self.grace = grace
        self.logger = logger
        self.restore = restore
    }

    func recordGauges(_ sync: ShardCompleteness) {
        complete.record(sync.local.count)
        incomplete.record(sync.incomplete.count)
    }

    func releaseRound() async {
        let r = await antiEntropy.releaseUnowned(graceMs: grace.milliseconds)
        released.increment(by: r.released.count)
        pushedSeries.increment(by: r.seriesPushed)
        pushedBytes.increment(by: r.bytesPushed)
        deferred.increment(by: r.deferred)
        if !r.released.isEmpty {
            logger.info("released shards this node no longer owns", metadata: [
                "shards": .stringConvertible(r.released.count), "series_pushed_to_owners": .stringConvertible(r.seriesPushed),
                "bytes_pushed": .stringConvertible(r.bytesPushed), "deferred": .stringConvertible(r.deferred),
            ])
        }
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            if let restore = self.restore { await restore() }
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    while !Task.isCancelled {
                        await self.exchange.exchange()
                        self.recordGauges(self.exchange.topology.sync.snapshot)
                        guard (try? await Task.sleep(for: .seconds(2))) != nil else { return }
                    }
                }
                group.addTask {
                    while !Task.isCancelled {
                        guard (try? await Task.sleep(for: .seconds(30))) != nil else { return }
                        await self.releaseRound()
                    }
                }
            }
        }
    }
}

/// A graceful leave (docs/cluster.md, "Membership changes"): the node announces `leaving` — out
/// of the write placement, still read — and waits until every new owner of its shards reports
/// them complete (they pull the history from the remaining replicas and from this node), or
/// `cluster.handover_timeout` passes. Then the node shuts down and its gossip `left`, with state
/// `leaving`, takes it out of placement at once.
final class LeaveCoordinator: Sendable {
    enum Phase: String, Sendable { case member, handingOver = "handing_over", done }

    struct Status: Sendable {
        var phase: Phase = .member
        var startedMs: Int64?
        var pendingShards = 0
        var detail = ""
    }

    let gossip: GossipService
    let topology: ClusterTopology
    let refresh: @Sendable () async -> Void
    let exchange: ShardStateExchange
    let timeout: Duration
    /// Written when the hand-over ends: the node refuses to start again on this data directory.
    let markerPath: String
    let logger: Logger
    let nowMs: @Sendable () -> Int64
    private let state = Mutex(Status())

    /// Name of the marker file in the data directory.
    static let markerFile = "left"

    private let requests: (stream: AsyncStream<Void>, continuation: AsyncStream<Void>.Continuation) =
        AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))

    init(gossip: GossipService, topology: ClusterTopology, refresh: @escaping @Sendable () async -> Void,
         exchange: ShardStateExchange, timeout: Duration, markerPath: String, logger: Logger, nowMs: @escaping @Sendable () -> Int64) {
        self.gossip = gossip
        self.topology = topology
        self.refresh = refresh
        self.exchange = exchange
        self.timeout = timeout
        self.markerPath = markerPath
        self.logger = logger
        self.nowMs = nowMs
    }

    var status: Status { state.withLock { $0 } }

    /// Asks for a leave (`POST /api/v1/cluster/leave`); `LeaveService` carries it out.
    func request() { requests.continuation.yield() }
    var leaveRequests: AsyncStream<Void> { requests.stream }

    /// Hands this node's shards over; returns when every new owner is complete or the timeout
    /// passed. Idempotent: a second call waits for nothing more.
    func handOver() async {
        let first = state.withLock { s -> Bool in
            guard s.phase == .member else { return false }
            s.phase = .handingOver
            s.startedMs = nowMs()
            return true
        }
        guard first else { return }
        await gossip.setState(.leaving)
        logger.info("leaving the cluster: handing this node's shards to their new owners")
        let deadline = ContinuousClock.now + timeout
        var lastLog = ContinuousClock.now - .seconds(60)
        while true {
            await refresh()
            await exchange.exchange()
            let pending = Handover.leavePending(topology.current, topology.sync.snapshot)
            state.withLock {
                $0.pendingShards = pending.waiting.count
                $0.detail = pending.description
            }
            if pending.isEmpty {
                logger.info("hand-over complete: every new owner holds this node's shards")
                break
            }
            if ContinuousClock.now >= deadline {
                logger.warning("hand-over timed out (cluster.handover_timeout): leaving anyway; the remaining replicas still hold the data", metadata: [
                    "pending": .string(pending.description),
                ])
                break
            }
            if ContinuousClock.now - lastLog >= .seconds(10) {
                lastLog = .now
                logger.info("hand-over in progress", metadata: ["pending": .string(pending.description)])
            }
            guard (try? await Task.sleep(for: .seconds(1))) != nil else { break }
        }
        let at = Date(timeIntervalSince1970: Double(nowMs()) / 1000).formatted(.iso8601)
        do {
            try Data("left the cluster at \(at)\n".utf8).write(to: URL(fileURLWithPath: markerPath))
        } catch {
            logger.error("cannot write the leave marker: starting this data directory again would rejoin with stale shards",
                         metadata: ["path": .string(markerPath), "error": .string("\(error)")])
        }
        state.withLock { $0.phase = .done }
    }
}

/// Carries out `starling leave`: waits for a leave request, hands over, then returns — it runs
/// with `successTerminationBehavior: .gracefullyShutdownGroup`, so its end shuts the node down
/// gracefully, as SIGTERM does.
final class LeaveService: Service, Sendable {
    let coordinator: LeaveCoordinator

    init(coordinator: LeaveCoordinator) {
        self.coordinator = coordinator
    }

    func run() async throws {
        let requested: Bool = await cancelWhenGracefulShutdown {
            for await _ in self.coordinator.leaveRequests { return true }
            return false
        }
        guard requested, !Task.isCancelled else { return }
        await coordinator.handOver()
    }
}

/// `POST /api/v1/cluster/leave` (admin): start a graceful leave; `GET` its progress.
struct LeaveRoutes: Sendable {
    let coordinator: LeaveCoordinator
    let metrics: StarlingMetrics

    func routes() -> RouteCollection<StarlingRequestContext> {
        let r = RouteCollection(context: StarlingRequestContext.self)
        r.group("api/v1/cluster/leave")
            .add(middleware: RequirePermission(.admin, metrics: metrics))
            .post { _, _ in
                coordinator.request()
                return Self.render(coordinator.status, status: .accepted)
            }
        r.group("api/v1/cluster/leave")
            .add(middleware: RequirePermission(.read, metrics: metrics))
            .get { _, _ in Self.render(coordinator.status, status: .ok) }
        return r
    }

    static func render(_ s: LeaveCoordinator.Status, status: HTTPResponse.Status) -> Response {
        var w = JSONWriter(reserving: 256)
        w.beginObject()
        w.field("status", "success")
        w.key("data")
        w.object { w in
            // Accepted but not started yet reads as handing over: the service picks it up at once.
            w.field("phase", s.phase == .member && status == .accepted ? LeaveCoordinator.Phase.handingOver.rawValue : s.phase.rawValue)
            if let started = s.startedMs { w.field("started_ms", started) }
            w.field("pending_shards", Int64(s.pendingShards))
            w.field("detail", s.detail)
        }
        w.endObject()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: w.bytes)))
    }
}
