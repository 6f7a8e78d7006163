import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import StarlingAlerting
import StarlingCluster
import StarlingCore
import StarlingGossip
import StarlingHTTP
import StarlingIngest
import StarlingMembership
import StarlingPeer
import StarlingPeerWire
import StarlingPlacement
import StarlingPromQL
import StarlingStorage
import Synchronization

/// The composition root: builds every component of a node from a `NodeConfig` and runs them as
/// one `ServiceGroup`.
///
/// Start order (shutdown runs in reverse, each step waiting for the one before):
/// 1. `StorageService` — opens RocksDB and replays the WAL; the node is not ready until it has.
/// 2. `MaintenanceService` — periodic checkpoint/compaction/retention; stops before storage closes.
/// 3. `PeerServer`, `PeerPool` — the peer-RPC listener (bound before the group starts) and the
///    connections to other nodes: replica writes and query fan-out.
/// 4. `GossipService` — SWIM membership (sockets bound before the group starts, so a busy port
///    fails the start); on SIGTERM it announces `left` and waits for it to spread.
/// 5. `ClusterTopologyService` — recomputes placement from membership.
/// 6. the Hummingbird application — on SIGTERM it stops accepting, finishes in-flight requests.
/// 7. `NodeStateService` — announces `active` once storage, HTTP and the join are done; on
///    SIGTERM, first of all, announces `leaving`.
/// So SIGTERM runs: leaving → HTTP drains → gossip leaves (peers see `left`, not `dead`) →
/// peer connections close → maintenance stops → storage flushes and closes.
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

    /// Where PromQL queries run (`query.inline_budget`), counting each evaluation in
    /// `starling_query_evaluations_total{placement}`: a pool share that stays high for a
    /// dashboard's small queries says the budget is too tight for this machine.
    static func queryPlacement(_ c: NodeConfig, metrics: StarlingMetrics) -> QueryPlacement {
        let help = "PromQL evaluations by where they ran: inline on the request's event loop, or on the blocking pool (query.inline_budget)."
        let inline = metrics.labeled("starling_query_evaluations_total", help: help, [("placement", "inline")])
        let pool = metrics.labeled("starling_query_evaluations_total", help: help, [("placement", "pool")])
        return QueryPlacement(budget: c.queryInlineBudget, placed: { $0 ? inline.increment() : pool.increment() })
    }

    /// The rule groups of `rules.files` (wildcards in file names expanded, files in name order),
    /// validated; a bad file is a start-up error naming the file, line and key.
    static func loadRuleGroups(_ c: NodeConfig) throws -> [RuleGroupSpec] {
        var paths: [String] = []
        for pattern in c.ruleFiles {
            let name = (pattern as NSString).lastPathComponent
            guard name.contains("*") || name.contains("?") else {
                paths.append(pattern)
                continue
            }
            let dir = (pattern as NSString).deletingLastPathComponent
            let regex = "^" + NSRegularExpression.escapedPattern(for: name).replacingOccurrences(of: "\\*", with: ".*")
                .replacingOccurrences(of: "\\?", with: ".") + "$"
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir.isEmpty ? "." : dir)) ?? []
            let matched = entries.filter { $0.range(of: regex, options: .regularExpression) != nil }.sorted()
            if matched.isEmpty { throw NodeError.startup("rules.files: no file matches \(pattern)") }
            paths += matched.map { dir.isEmpty ? $0 : (dir as NSString).appendingPathComponent($0) }
        }
        var groups: [RuleGroupSpec] = []
        for path in paths {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw NodeError.startup("rules.files: cannot read \(path): \((error as NSError).localizedDescription)")
            }
            do {
                let fileGroups = try RuleFiles.parse(yaml: text, source: path)
                for g in fileGroups where groups.contains(where: { $0.key == g.key }) {
                    throw NodeError.startup("rules.files: group \(quoteLabelValue(g.name)) of \(path) is loaded twice")
                }
                groups += fileGroups
            } catch let e as ConfigError {
                throw NodeError.startup("rules file \(path): \(e)")
            }
        }
        return groups
    }

    static func alertmanagerSettings(_ c: NodeConfig, resolveTimeoutMs: Int64) -> AlertmanagerService.Settings {
        var s = AlertmanagerService.Settings()
        s.resolveTimeoutMs = resolveTimeoutMs
        s.externalURL = c.ruleExternalURL
        s.escalation.newToEscalatedMs = c.escalateAfter.milliseconds
        s.escalation.escalatedToCriticalMs = c.criticalAfter.milliseconds
        s.escalation.acknowledgementTimeoutMs = c.acknowledgementTimeout?.milliseconds
        s.escalation.requireManualResolution = c.requireManualResolution
        return s
    }

    /// The windows of `alerting.maintenance_windows_file`; a bad file is a start-up error.
    static func loadMaintenanceWindows(_ c: NodeConfig) throws -> [MaintenanceWindow] {
        guard let path = c.maintenanceWindowsFile else { return [] }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw NodeError.startup("alerting.maintenance_windows_file: cannot read \(path): \((error as NSError).localizedDescription)")
        }
        do {
            return try MaintenanceWindows.parse(yaml: text)
        } catch {
            throw NodeError.startup("maintenance windows \(path): \(error)")
        }
    }

    /// The Alertmanager configuration of `alerting.config_file`, or one that groups alerts and
    /// notifies nobody.
    static func loadAlertingConfig(_ c: NodeConfig) throws -> AlertingConfig {
        guard let path = c.alertingConfigFile else {
            return try! AlertingConfig.parse(yaml: "route: {receiver: none}\nreceivers: [{name: none}]\n")
        }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw NodeError.startup("alerting.config_file: cannot read \(path): \((error as NSError).localizedDescription)")
        }
        do {
            return try AlertingConfig.parse(yaml: text)
        } catch {
            throw NodeError.startup("alerting config \(path): \(error)")
        }
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

        // A node that left its cluster (`starling leave`) must not come back on its old data:
        // its shards belong to others now, and rejoining as a restarted member would serve them
        // stale. Starting over means a new data directory, i.e. a new member.
        let leftMarker = (config.dataDir as NSString).appendingPathComponent(LeaveCoordinator.markerFile)
        if let left = try? String(contentsOfFile: leftMarker, encoding: .utf8) {
            throw NodeError.startup("data directory \(config.dataDir) belongs to a node that left its cluster (\(left.trimmingCharacters(in: .whitespacesAndNewlines))); "
                + "delete or move it to start this node as a new member")
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
        // Appends to this node's store run on one thread of their own (see `LocalReplica`).
        let appendPool = NIOThreadPool(numberOfThreads: 1)
        // Ingest request bodies are decompressed and decoded on threads of their own too: half
        // the cores (one on the 2-core target), so decoding, the append thread and the event
        // loop each have a core's worth of room instead of time-slicing against each other.
        let decodePool = NIOThreadPool(numberOfThreads: Self.decodeThreads)
        pool.start()
        appendPool.start()
        decodePool.start()
        do {
            try await runServices(config: config, nodeID: nodeID, isNew: idOrigin == .generated, adminToken: adminToken,
                                  pool: pool, appendPool: appendPool, decodePool: decodePool)
        } catch {
            try? await decodePool.shutdownGracefully()
            try? await appendPool.shutdownGracefully()
            try? await pool.shutdownGracefully()
            throw error
        }
        try await decodePool.shutdownGracefully()
        try await appendPool.shutdownGracefully()
        try await pool.shutdownGracefully()
        logger.info("starling stopped")
    }

    /// Threads decoding ingest requests: half the cores, at least one. With one decoding thread
    /// on 2 cores the 1-hour ingest benchmark ran 1.77-1.91 M samples/s against 1.38-1.83 M with
    /// two (docs/benchmarks.md): the second thread mostly took CPU from the append thread and the
    /// event loop, and the two shared the label cache's lock and lines.
    static var decodeThreads: Int { max(1, System.coreCount / 2) }

    private func runServices(config: NodeConfig, nodeID: NodeID, isNew: Bool, adminToken: String, pool: NIOThreadPool, appendPool: NIOThreadPool,
                             decodePool: NIOThreadPool) async throws {
        let logger = self.logger
        let metrics = StarlingMetrics(registry: NodeMetricsBootstrap.registry)
        NodeMetricsBootstrap.buildInfo(metrics)
        let readiness = Readiness()
        readiness.setPending("storage", reason: "recovering")
        let authority = TokenAuthority(bootstrapAdminToken: adminToken)
        let executor = BlockingExecutor(pool: pool)
        let appendExecutor = BlockingExecutor(pool: appendPool)
        let decodeExecutor = BlockingExecutor(pool: decodePool)

        let storage = StorageService(config: config, metrics: metrics, readiness: readiness, authority: authority, executor: executor, logger: logger, nowMs: Self.wallClockMs)
        let maintenance = MaintenanceService(storage: storage, interval: config.maintenanceInterval, metrics: metrics, executor: executor, logger: logger, nowMs: Self.wallClockMs)

        var gossipConfig = try NodeMembership.gossipConfiguration(config, nodeID: nodeID)
        // `joining` means "owns shards but holds none of their history yet": only a new data
        // directory is. A restarted member keeps its place in the read placement (what it
        // missed while down comes back through hints and anti-entropy), so a restart does not
        // reshuffle which replicas queries read.
        if !isNew { gossipConfig.metadata.state = .active }
        let gossip: GossipService
        do {
            gossip = try await GossipService.bind(gossipConfig, logger: logger)
        } catch {
            throw NodeError.startup("\(error) (cluster.gossip \(config.gossipListen); set --gossip to another port, or cluster.advertise)")
        }
        let advertiseHost = gossip.advertisedAddress.host

        // The cluster layer: placement from membership, the peer listener and connection pool,
        // the write coordinator and the fan-out querier (docs/cluster.md).
        let placementSettings: PlacementSettings
        do {
            placementSettings = try PlacementSettings(replicationFactor: config.replicationFactor)
        } catch {
            throw NodeError.startup("cluster.replication_factor: \(error)")
        }
        // A new data directory holds no shard complete; a restarted one holds complete the
        // shards it has data of (narrowed once the store is open, by ShardSyncService).
        let topology = ClusterTopology(localNodeID: nodeID.description, settings: .init(
            layout: ShardLayout(shardCount: config.shardCount), placement: placementSettings,
            removal: MemberRemoval(removalTimeoutMs: config.removalTimeout.milliseconds)),
            restored: isNew ? ShardSet() : nil)
        let localReplica = LocalReplica(database: { try storage.database() }, runner: executor, appendRunner: appendExecutor)
        let agreement = PlacementAgreement()
        let peerHandler = ClusterPeerHandler(local: localReplica, sync: topology.sync, placementVersion: { topology.current.placement.version },
                                             agreement: agreement, nowMs: Self.wallClockMs, logger: logger)
        let handle: PeerRequestHandler = { frame in await peerHandler.handle(frame) }
        let wire = PeerWireConfiguration(keyring: gossipConfig.keyring)
        var connectionSettings = PeerConnection.Settings()
        connectionSettings.placementVersion = { topology.current.placement.version }
        let peerServer: PeerServer
        do {
            peerServer = try await PeerServer.bind(
                host: config.peerListen.host, port: config.peerListen.port, configuration: wire,
                settings: .init(connection: connectionSettings), handler: handle, logger: logger)
        } catch {
            throw NodeError.startup("\(error) (cluster.peer_listen \(config.peerListen); set it to another port)")
        }
        let pool = PeerPool(
            configuration: wire, settings: .init(connection: connectionSettings),
            address: { id in topology.current.members[id].flatMap { $0.peerAddress.isEmpty ? nil : $0.peerAddress } },
            handler: handle, logger: logger)
        let handoff = HintedHandoff(
            localNodeID: nodeID.description, topology: topology, transport: pool,
            timeoutMs: UInt32(clamping: config.writeTimeout.milliseconds), nowMs: Self.wallClockMs(), logger: logger)
        var hintSettings = HintStore.Settings()
        hintSettings.maxBytes = config.hintMaxBytes
        hintSettings.maxBytesPerTarget = config.hintMaxBytesPerTarget
        hintSettings.maxAgeMs = config.hintMaxAge.milliseconds
        let handoffService = HintedHandoffService(handoff: handoff, storage: storage, settings: hintSettings, executor: executor,
                                                  logger: logger, nowMs: Self.wallClockMs)
        let clusterWriter = ClusterWriter(
            topology: topology, transport: pool, local: localReplica, hints: handoff,
            settings: .init(consistency: config.writeConsistency, timeoutMs: UInt32(clamping: config.writeTimeout.milliseconds)),
            nowMs: Self.wallClockMs)
        let readRepair = ReadRepair(localNodeID: nodeID.description, transport: pool, local: localReplica, nowMs: Self.wallClockMs)
        let clusterQuerier = ClusterQuerier(
            topology: topology, transport: pool, local: localReplica,
            settings: .init(consistency: config.readConsistency, timeoutMs: UInt32(clamping: config.readTimeout.milliseconds)),
            readRepair: readRepair)
        let repair = AntiEntropy(
            topology: topology, transport: pool, local: localReplica,
            settings: .init(settleMs: config.antiEntropySettle.milliseconds), nowMs: Self.wallClockMs)
        let antiEntropy = AntiEntropyService(antiEntropy: repair, gossip: gossip, interval: config.antiEntropyInterval, logger: logger)
        let exchange = ShardStateExchange(topology: topology, transport: pool, nowMs: Self.wallClockMs)
        // A restarted member: only shards with data on disk count as complete.
        let restoreCompleteness: @Sendable () async -> Void = {
            guard await storage.waitUntilOpen(), let db = try? storage.database(),
                  let held = try? await executor.run({ try db.heldShards() }) else { return }
            topology.sync.restrict(to: ShardSet(held))
        }
        let shardSync = ShardSyncService(exchange: exchange, antiEntropy: repair, grace: config.handoffGrace, logger: logger,
                                         restore: isNew ? nil : restoreCompleteness)
        // Rules: each group evaluated by the leader of its shard, through the cluster query
        // and write paths (docs/alerting.md).
        let ruleGroups = try Self.loadRuleGroups(config)
        if !ruleGroups.isEmpty {
            logger.info("rule files loaded", metadata: [
                "groups": .stringConvertible(ruleGroups.count), "rules": .stringConvertible(ruleGroups.reduce(0) { $0 + $1.rules.count }),
            ])
        }
        let alertingConfig = try Self.loadAlertingConfig(config)
        let maintenanceWindows = try Self.loadMaintenanceWindows(config)
        var amSettings = Self.alertmanagerSettings(config, resolveTimeoutMs: alertingConfig.resolveTimeoutMs)
        amSettings.windows = maintenanceWindows
        let alertmanager = AlertmanagerService(
            config: alertingConfig,
            settings: amSettings,
            topology: topology, transport: pool, engine: Self.queryAPI(config, metrics: metrics).engine,
            querier: { _ = try storage.database(); return clusterQuerier },
            write: { series, now in _ = try await clusterWriter.write(series, nowMs: now) },
            http: HTTPClient.shared, logger: logger, nowMs: Self.wallClockMs)
        peerHandler.extensions.register(.postAlerts) { frame in
            guard let m = try? PostAlertsMessage.decode(frame.payload) else {
                return [(.error, ErrorMessage(code: .malformed, message: "post_alerts: undecodable body").encoded())]
            }
            return [alertmanager.receiveForwarded(m.json)]
        }
        peerHandler.extensions.register(.alertmanagerOp) { frame in
            guard let m = try? PostAlertsMessage.decode(frame.payload) else {
                return [(.error, ErrorMessage(code: .malformed, message: "alertmanager_op: undecodable body").encoded())]
            }
            return [alertmanager.executeForPeer(m.json)]
        }
        let externalURL = config.ruleExternalURL
        // Groups managed through the rules API: a catalog every node keeps a copy of.
        let ruleCatalog = try RuleCatalogService(dataDir: config.dataDir, topology: topology, transport: pool,
                                                 syncInterval: config.ruleCatalogSyncInterval, logger: logger, nowMs: Self.wallClockMs)
        let catalogSpecs: @Sendable (RuleCatalog) -> [RuleGroupSpec] = { catalog in
            let (specs, errors) = catalog.specs()
            for e in errors { logger.error("rule catalog group not evaluated", metadata: ["error": .string(e)]) }
            return specs
        }
        let ruleService = RuleService(
            groups: ruleGroups + catalogSpecs(ruleCatalog.current),
            settings: .init(defaultIntervalMs: config.ruleEvaluationInterval.milliseconds, externalLabels: config.ruleExternalLabels,
                            externalURL: config.ruleExternalURL),
            topology: topology, engine: Self.queryAPI(config, metrics: metrics).engine,
            querier: { _ = try storage.database(); return clusterQuerier },
            write: { series, now in _ = try await clusterWriter.write(series, nowMs: now) },
            notify: { alerts, _ in
                let now = Self.wallClockMs()
                do {
                    try await alertmanager.post(AlertmanagerService.alerts(from: alerts, generatorURL: externalURL, nowMs: now))
                } catch {
                    logger.warning("alerts not handed to the alertmanager; they are sent again at the next evaluation", metadata: ["error": .string("\(error)")])
                }
            },
            logger: logger, nowMs: Self.wallClockMs)
        ruleCatalog.onChange { catalog in ruleService.replace(ruleGroups + catalogSpecs(catalog)) }
        peerHandler.extensions.register(.rulesOp) { frame in await ruleCatalog.handlePeer(frame) }
        peerHandler.extensions.register(.ruleGroups) { _ in
            [(.ruleGroupsReply, RuleGroupsReplyMessage(json: RuleRoutes.localGroupsJSON(ruleService)).encoded())]
        }
        let clusterMetrics = ClusterMetrics(writer: clusterWriter, querier: clusterQuerier, topology: topology, handoff: handoff,
                                            agreement: agreement, readRepair: readRepair)
        let topologyService = ClusterTopologyService(gossip: gossip, topology: topology, logger: logger, wallClockMs: Self.wallClockMs)
        // Queries need the local store too: answer 503 while it recovers, as a single node does.
        let querier: @Sendable () throws -> any Querier = {
            _ = try storage.database()
            return clusterQuerier
        }

        gossipConfig.metadata.peerAddress = NodeMembership.announced(config.peerListen, port: peerServer.boundPort, advertiseHost: advertiseHost)
        if config.httpListen.port != 0 {
            gossipConfig.metadata.httpAddress = NodeMembership.announced(config.httpListen, advertiseHost: advertiseHost)
        }
        await gossip.updateMetadata(gossipConfig.metadata)
        let (httpBound, httpBoundContinuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(1))
        // A new node joining a cluster pulls the history of the shards it now owns before it
        // announces itself active (until then queries do not read it).
        let handoverTimeout = config.handoverTimeout
        let pullHistory: @Sendable () async -> Void = {
            let deadline = ContinuousClock.now + handoverTimeout
            var lastLog = ContinuousClock.now
            while !Task.isCancelled {
                await topologyService.refresh()
                await exchange.exchange()
                if !topology.sync.snapshot.incomplete.isEmpty {
                    antiEntropy.record(await repair.fullSync(), full: true)
                    await exchange.exchange()
                }
                let pending = Handover.joinPending(topology.current, topology.sync.snapshot)
                if pending.isEmpty { return }
                if ContinuousClock.now >= deadline {
                    logger.warning("turning active before every new owner is complete (cluster.handover_timeout)",
                                   metadata: ["pending": .string(pending.description)])
                    return
                }
                if ContinuousClock.now - lastLog >= .seconds(10) {
                    lastLog = .now
                    logger.info("waiting for shards' new owners before turning active", metadata: ["pending": .string(pending.description)])
                }
                guard (try? await Task.sleep(for: .seconds(1))) != nil else { return }
            }
        }
        let bootstrap: (@Sendable () async -> Void)? = isNew ? pullHistory : nil
        let leave = LeaveCoordinator(gossip: gossip, topology: topology, refresh: { await topologyService.refresh() },
                                     exchange: exchange, timeout: config.handoverTimeout, markerPath: (config.dataDir as NSString).appendingPathComponent(LeaveCoordinator.markerFile),
                                     logger: logger, nowMs: Self.wallClockMs)
        let leaveService = LeaveService(coordinator: leave)
        let handOver: @Sendable () async -> Void = { await leave.handOver() }
        let nodeState = NodeStateService(gossip: gossip, storage: storage, httpBound: httpBound, bootstrap: bootstrap,
                                         onShutdown: config.leaveOnShutdown ? handOver : nil, logger: logger)

        let features: [RouteCollection<StarlingRequestContext>] = [
            HealthRoutes(readiness: readiness, metrics: metrics, beforeScrape: {
                await storage.refreshGauges()
                // Reads the hint store's counters, whose lock a RocksDB write may hold: off the
                // event loop.
                _ = try? await executor.run { clusterMetrics.refresh() }
            }).routes(),
            AdminRoutes(authority: authority, metrics: metrics, executor: executor, nowMs: Self.wallClockMs).routes(),
            StorageAdminRoutes(database: { try storage.database() }, metrics: metrics, executor: executor, nowMs: Self.wallClockMs).routes(),
            ReadRoutes(querier: querier, metrics: metrics, executor: executor).routes(),
            QueryRoutes(
                querier: querier, api: Self.queryAPI(config, metrics: metrics), metrics: metrics, executor: executor,
                placement: Self.queryPlacement(config, metrics: metrics), nowMs: Self.wallClockMs,
                buildInfo: .init(starlingVersion: StarlingVersion.version, revision: StarlingVersion.commit ?? "unknown", swiftVersion: StarlingVersion.swift)
            ).routes(),
            ExportRoutes(querier: querier, metrics: metrics, executor: executor).routes(),
            IngestRoutes(
                settings: Self.ingestSettings(config), database: { try storage.database() },
                writer: ClusterSampleWriter(writer: clusterWriter), metrics: metrics, executor: decodeExecutor, nowMs: Self.wallClockMs
            ).routes(),
            ClusterRoutes(source: GossipMembershipSource(gossip: gossip), metrics: metrics).routes(),
            ShardRoutes(topology: topology, database: { try storage.database() }, executor: executor, metrics: metrics).routes(),
            LeaveRoutes(coordinator: leave, metrics: metrics).routes(),
            RuleRoutes(rules: ruleService, transport: pool, metrics: metrics, timeoutMs: UInt32(clamping: config.readTimeout.milliseconds)).routes(),
            AlertmanagerRoutes(alertmanager: alertmanager, metrics: metrics,
                               configText: config.alertingConfigFile.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) } ?? "",
                               startedMs: Self.wallClockMs()).routes(),
            IncidentRoutes(alertmanager: alertmanager, metrics: metrics).routes(),
            RuleConfigRoutes(catalog: ruleCatalog, fileSources: Set(ruleGroups.map(\.source)), metrics: metrics).routes(),
            MaintenanceWindowRoutes(windows: maintenanceWindows, metrics: metrics, nowMs: Self.wallClockMs).routes(),
        ]
        let router = StarlingRouter.make(authority: authority, metrics: metrics, features: features)

        let listen = config.httpListen
        // One loop takes every connection (`http.single_event_loop`): the accept, the child
        // channel and its task (`EventLoopHTTP1Channel`) then share one thread, where spreading
        // them over the group woke a second loop and a global-executor thread per connection.
        let httpLoop = config.httpSingleEventLoop ? MultiThreadedEventLoopGroup.singleton.next() : nil
        let app = Application(
            router: router,
            server: .http1OnEventLoop(),
            configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "starling"),
            onServerRunning: { channel in
                let addr = channel.localAddress
                logger.info("http server listening", metadata: ["address": .string(addr.map { "\($0.ipAddress ?? listen.host):\($0.port ?? listen.port)" } ?? listen.description)])
                httpBoundContinuation.yield(NodeMembership.announced(listen, port: addr?.port, advertiseHost: advertiseHost))
                httpBoundContinuation.finish()
            },
            eventLoopGroupProvider: httpLoop.map { .shared($0) } ?? .singleton,
            logger: logger
        )

        var groupConfig = ServiceGroupConfiguration(
            services: [
                .init(service: storage, serviceName: "storage"),
                .init(service: maintenance, serviceName: "maintenance"),
                // Peers keep sending writes until they see this node leave: the peer listener
                // and the pool stop only after gossip has announced `left`.
                .init(service: peerServer, serviceName: "peer-server"),
                .init(service: pool, serviceName: "peer-pool"),
                .init(service: gossip, serviceName: "gossip"),
                .init(service: topologyService, serviceName: "cluster-topology"),
                .init(service: antiEntropy, serviceName: "anti-entropy"),
                .init(service: handoffService, serviceName: "hinted-handoff"),
                .init(service: shardSync, serviceName: "shard-sync"),
                .init(service: ReadRepairService(repair: readRepair), serviceName: "read-repair"),
                .init(service: ruleService, serviceName: "rules"),
                .init(service: ruleCatalog, serviceName: "rule-catalog"),
                .init(service: alertmanager, serviceName: "alertmanager"),
                .init(service: OnEventLoopService(app, eventLoop: httpLoop), serviceName: "http"),
                // Ends after a `starling leave` hand-over, which shuts the node down gracefully.
                .init(service: leaveService, successTerminationBehavior: .gracefullyShutdownGroup, serviceName: "leave"),
                .init(service: nodeState, serviceName: "node-state"),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        // Leaving on SIGTERM hands the shards over inside the graceful shutdown.
        groupConfig.maximumGracefulShutdownDuration = config.shutdownTimeout + (config.leaveOnShutdown ? config.handoverTimeout : .zero)
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

/// Runs a service with an event loop as its task executor preference (nil: as it is).
public struct OnEventLoopService<Base: Service>: Service {
    let base: Base
    let eventLoop: (any EventLoop)?
    public init(_ base: Base, eventLoop: (any EventLoop)?) {
        self.base = base
        self.eventLoop = eventLoop
    }
    public func run() async throws {
        guard let eventLoop else { return try await base.run() }
        try await withTaskExecutorPreference(EventLoopTaskExecutor(eventLoop)) { try await base.run() }
    }
}
