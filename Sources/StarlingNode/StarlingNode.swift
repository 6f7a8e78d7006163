import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import StarlingCore
import StarlingGossip
import StarlingHTTP
import StarlingIngest
import StarlingMembership
import StarlingPromQL
import Synchronization

/// The composition root: builds every component of a node from a `NodeConfig` and runs them as
/// one `ServiceGroup`.
///
/// Start order (shutdown runs in reverse, each step waiting for the one before):
/// 1. `StorageService` — opens RocksDB and replays the WAL; the node is not ready until it has.
/// 2. `MaintenanceService` — periodic checkpoint/compaction/retention; stops before storage closes.
/// 3. `GossipService` — SWIM membership (sockets bound before the group starts, so a busy port
///    fails the start); on SIGTERM it announces `left` and waits for it to spread.
/// 4. the Hummingbird application — on SIGTERM it stops accepting, finishes in-flight requests.
/// 5. `NodeStateService` — announces `active` once storage, HTTP and the join are done; on
///    SIGTERM, first of all, announces `leaving`.
/// So SIGTERM runs: leaving → HTTP drains → gossip leaves (peers see `left`, not `dead`) →
/// maintenance stops → storage flushes and closes.
public struct StarlingNode: Sendable {
    public let config: NodeConfig
    public let logger: Logger

    public init(config: NodeConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    /// Wall-clock milliseconds since the epoch. Only the shell reads the clock.
    static let wallClockMs: @Sendable () -> Int64 = {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    static func ingestSettings(_ c: NodeConfig) -> IngestRoutes.Settings {
        var limits = IngestLimits()
        limits.maxLabelsPerSeries = c.maxLabelsPerSeries
        limits.maxLabelNameBytes = c.maxLabelNameBytes
        limits.maxLabelValueBytes = c.maxLabelValueBytes
        limits.maxBodyBytes = c.maxDecodedBodyBytes
        limits.maxSampleAgeMs = c.maxSampleAge.milliseconds
        limits.maxFutureSkewMs = c.maxFutureSkew.milliseconds
        limits.maxSeriesPerTenant = c.maxSeries
        return IngestRoutes.Settings(limits: limits, maxBodyBytes: c.maxBodyBytes, nodeLabels: c.nodeLabels)
    }

    /// The PromQL API with the node's query limits; limit hits are counted in
    /// `starling_query_limit_hits_total{limit}`.
    static func queryAPI(_ c: NodeConfig, metrics: StarlingMetrics) -> PrometheusQueryAPI {
        var settings = EngineSettings()
        settings.timeout = c.queryTimeout
        settings.maxSamples = c.queryMaxSamples
        settings.lookbackDeltaMs = c.queryLookbackDelta.milliseconds
        let engineMetrics = PromQLMetrics(onLimitHit: { limit in
            metrics.labeled("starling_query_limit_hits_total", help: "PromQL queries stopped by a limit, by limit (timeout, max_samples, max_points_per_series).", [("limit", limit)]).increment()
        })
        return PrometheusQueryAPI(engine: Engine(settings: settings, metrics: engineMetrics), limiter: QueryLimiter(maxConcurrent: c.queryMaxConcurrency))
    }

    /// Builds the node and runs it until SIGTERM/SIGINT (or a fatal error).
    public func run() async throws {
        let config = self.config
        let logger = self.logger
        logger.info(
            "starting starling",
            metadata: [
                "version": .string(StarlingVersion.version), "commit": .string(StarlingVersion.commit ?? "unknown"),
                "swift": .string(StarlingVersion.swift), "node": .string(config.nodeName),
                "data_dir": .string(config.dataDir), "http": .string(config.httpListen.description),
            ])

        do {
            try FileManager.default.createDirectory(atPath: config.dataDir, withIntermediateDirectories: true)
        } catch {
            throw NodeError.startup("cannot create data directory \(config.dataDir): \((error as NSError).localizedDescription)")
        }

        var random = SystemRandomNumberGenerator()
        let (nodeID, idOrigin) = try NodeIdentity.loadOrCreate(dataDir: config.dataDir, using: &random)
        switch idOrigin {
        case .existing: logger.info("node ID read from data directory", metadata: ["node_id": .string(nodeID.description)])
        case .generated: logger.notice("new data directory: generated a node ID", metadata: ["node_id": .string(nodeID.description)])
        }

        let (adminToken, origin) = try AdminTokenBootstrap.resolve(config)
        switch origin {
        case .configured: logger.info("bootstrap admin token taken from configuration (STARLING_ADMIN_TOKEN or auth.admin_token)")
        case .existingFile(let p): logger.info("bootstrap admin token read from file", metadata: ["path": .string(p)])
        case .generatedFile(let p):
            logger.notice("generated a bootstrap admin token; use it as 'Authorization: Bearer <token>'", metadata: ["path": .string(p)])
        }

        // Blocking storage work runs here: 2 threads match the 2-core target machine; the storage
        // engine serialises what must be serial itself.
        let pool = NIOThreadPool(numberOfThreads: max(2, System.coreCount))
        pool.start()
        do {
            try await runServices(config: config, nodeID: nodeID, adminToken: adminToken, pool: pool)
        } catch {
            try? await pool.shutdownGracefully()
            throw error
        }
        try await pool.shutdownGracefully()
        logger.info("starling stopped")
    }

    private func runServices(config: NodeConfig, nodeID: NodeID, adminToken: String, pool: NIOThreadPool) async throws {
        let logger = self.logger
        let metrics = StarlingMetrics(registry: NodeMetricsBootstrap.registry)
        NodeMetricsBootstrap.buildInfo(metrics)
        let readiness = Readiness()
        readiness.setPending("storage", reason: "recovering")
        let authority = TokenAuthority(bootstrapAdminToken: adminToken)
        let executor = BlockingExecutor(pool: pool)

        let storage = StorageService(config: config, metrics: metrics, readiness: readiness, authority: authority, executor: executor, logger: logger, nowMs: Self.wallClockMs)
        let maintenance = MaintenanceService(storage: storage, interval: config.maintenanceInterval, metrics: metrics, executor: executor, logger: logger, nowMs: Self.wallClockMs)

        var gossipConfig = try NodeMembership.gossipConfiguration(config, nodeID: nodeID)
        let gossip: GossipService
        do {
            gossip = try await GossipService.bind(gossipConfig, logger: logger)
        } catch {
            throw NodeError.startup("\(error) (cluster.gossip \(config.gossipListen); set --gossip to another port, or cluster.advertise)")
        }
        let advertiseHost = gossip.advertisedAddress.host
        gossipConfig.metadata.peerAddress = NodeMembership.announced(config.peerListen, advertiseHost: advertiseHost)
        if config.httpListen.port != 0 {
            gossipConfig.metadata.httpAddress = NodeMembership.announced(config.httpListen, advertiseHost: advertiseHost)
        }
        await gossip.updateMetadata(gossipConfig.metadata)
        let (httpBound, httpBoundContinuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let nodeState = NodeStateService(gossip: gossip, storage: storage, httpBound: httpBound, logger: logger)

        let features: [RouteCollection<StarlingRequestContext>] = [
            HealthRoutes(readiness: readiness, metrics: metrics, beforeScrape: { await storage.refreshGauges() }).routes(),
            AdminRoutes(authority: authority, metrics: metrics, executor: executor, nowMs: Self.wallClockMs).routes(),
            StorageAdminRoutes(database: { try storage.database() }, metrics: metrics, executor: executor, nowMs: Self.wallClockMs).routes(),
            ReadRoutes(querier: { try storage.database() }, metrics: metrics, executor: executor).routes(),
            QueryRoutes(
                querier: { try storage.database() }, api: Self.queryAPI(config, metrics: metrics), metrics: metrics, executor: executor,
                nowMs: Self.wallClockMs,
                buildInfo: .init(starlingVersion: StarlingVersion.version, revision: StarlingVersion.commit ?? "unknown", swiftVersion: StarlingVersion.swift)
            ).routes(),
            ExportRoutes(querier: { try storage.database() }, metrics: metrics, executor: executor).routes(),
            IngestRoutes(settings: Self.ingestSettings(config), database: { try storage.database() }, metrics: metrics, executor: executor, nowMs: Self.wallClockMs).routes(),
            ClusterRoutes(source: GossipMembershipSource(gossip: gossip), metrics: metrics).routes(),
        ]
        let router = StarlingRouter.make(authority: authority, metrics: metrics, features: features)

        let listen = config.httpListen
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "starling"),
            onServerRunning: { channel in
                let addr = channel.localAddress
                logger.info("http server listening", metadata: ["address": .string(addr.map { "\($0.ipAddress ?? listen.host):\($0.port ?? listen.port)" } ?? listen.description)])
                httpBoundContinuation.yield(NodeMembership.announced(listen, port: addr?.port, advertiseHost: advertiseHost))
                httpBoundContinuation.finish()
            },
            logger: logger
        )

        var groupConfig = ServiceGroupConfiguration(
            services: [
                .init(service: storage, serviceName: "storage"),
                .init(service: maintenance, serviceName: "maintenance"),
                .init(service: gossip, serviceName: "gossip"),
                .init(service: app, serviceName: "http"),
                .init(service: nodeState, serviceName: "node-state"),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        groupConfig.maximumGracefulShutdownDuration = config.shutdownTimeout
        groupConfig.maximumCancellationDuration = .seconds(5)
        let group = ServiceGroup(configuration: groupConfig)
        try await group.run()
    }
}

public enum NodeError: Error, CustomStringConvertible {
    case startup(String)
    public var description: String {
        switch self {
        case .startup(let m): return m
        }
    }
}

/// The process-wide Prometheus registry, and swift-metrics bootstrapped onto it once, so metrics
/// recorded through the swift-metrics API by libraries and other subsystems appear on `/metrics`.
public enum NodeMetricsBootstrap {
    public static let registry = PrometheusCollectorRegistry()
    private static let bootstrapped = Mutex(false)

    public static func bootstrapSwiftMetrics() {
        let first = bootstrapped.withLock { done -> Bool in
            defer { done = true }
            return !done
        }
        guard first else { return }
        var factory = PrometheusMetricsFactory(registry: registry)
        // Gossip datagrams are bounded by the 1,400-byte payload budget (65,507 accepted).
        factory.valueHistogramBuckets["starling_gossip_datagram_bytes"] = [64, 128, 256, 512, 768, 1_024, 1_400, 4_096, 16_384, 65_507]
        // swift-metrics labels use dots ("http.server.x"); Prometheus names may not.
        factory.nameAndLabelSanitizer = { name, labels in
            (NodeMetricsBootstrap.sanitize(name), labels.map { (NodeMetricsBootstrap.sanitize($0.0), $0.1) })
        }
        MetricsSystem.bootstrap(factory)
    }

    static func sanitize(_ s: String) -> String {
        String(s.unicodeScalars.map { c -> Character in
            (c.properties.isASCIIHexDigit || (c.value >= 0x41 && c.value <= 0x5A) || (c.value >= 0x61 && c.value <= 0x7A) || c == "_" || c == ":" || (c.value >= 0x30 && c.value <= 0x39)) ? Character(c) : "_"
        })
    }

    static func buildInfo(_ metrics: StarlingMetrics) {
        metrics.registry.makeGauge(
            descriptor: .init(namespace: "starling", metricName: "build_info", unitName: "", helpText: "Build information; always 1."),
            labels: [("version", StarlingVersion.version), ("commit", StarlingVersion.commit ?? "unknown"), ("swift", StarlingVersion.swift)]
        ).set(to: 1.0)
    }
}
