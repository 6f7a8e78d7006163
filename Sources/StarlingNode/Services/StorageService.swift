import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import StarlingCore
import StarlingHTTP
import StarlingRocksDB
import StarlingStorage
import Synchronization

/// Owns the node's storage: opens RocksDB under `<data_dir>/db`, replays the WAL through
/// `TimeSeriesDB`, attaches the token store, and marks the node ready. On graceful shutdown
/// (after the HTTP server has drained) it flushes everything in memory and closes the store.
///
/// Routes reach the database through `database()`, which answers 503 while recovery runs.
public final class StorageService: Service, Sendable {
    let config: NodeConfig
    let metrics: StarlingMetrics
    let readiness: Readiness
    let authority: TokenAuthority
    let executor: BlockingExecutor
    let logger: Logger
    let nowMs: @Sendable () -> Int64

    private struct Opened: Sendable {
        let db: TimeSeriesDB
        let store: RocksDBStore
    }
    private let state = Mutex<Opened?>(nil)
    /// Chunk-cache hits and misses already added to the counters (the store reports totals).
    private let reportedCacheLookups = Mutex<(hits: UInt64, misses: UInt64, postingsHits: UInt64, postingsMisses: UInt64)>((0, 0, 0, 0))
    /// Resumed when storage is open (or failed), so maintenance can wait for it.
    private let openedSignal = AsyncStream<Void>.makeStream()

    public init(config: NodeConfig, metrics: StarlingMetrics, readiness: Readiness, authority: TokenAuthority, executor: BlockingExecutor, logger: Logger, nowMs: @escaping @Sendable () -> Int64) {
        self.config = config
        self.metrics = metrics
        self.readiness = readiness
        self.authority = authority
        self.executor = executor
        self.logger = logger
        self.nowMs = nowMs
    }

    var dbPath: String { (config.dataDir as NSString).appendingPathComponent("db") }

    var options: TimeSeriesDB.Options {
        var o = TimeSeriesDB.Options()
        o.shardLayout = ShardLayout(shardCount: config.shardCount)
        o.retentionMs = config.retention.milliseconds
        o.maxSeries = config.maxSeries
        o.queryReadAheadBytes = config.queryReadAheadBytes
        o.storedLabelsCacheEntries = config.storedLabelsCacheEntries
        o.chunkCacheBytes = config.chunkCacheBytes
        o.postingsCacheBytes = config.postingsCacheBytes
        o.maxSamplesPerChunk = config.samplesPerChunk
        return o
    }

    public func run() async throws {
        let path = dbPath
        let options = self.options
        let nowMs = self.nowMs
        logger.info("opening storage", metadata: ["path": .string(path)])
        let started = ContinuousClock.now
        let opened: Opened
        do {
            opened = try await executor.run {
                let store = try RocksDBStore(path: path)
                let db = try TimeSeriesDB(store: store, options: options, nowMs: nowMs())
                return Opened(db: db, store: store)
            }
        } catch {
            readiness.setPending("storage", reason: "failed to open: \(error)")
            openedSignal.continuation.finish()
            throw NodeError.startup("cannot open storage at \(path): \(error)")
        }
        let elapsed = ContinuousClock.now - started
        let authority = self.authority
        try await executor.run { try authority.attach(MetadataTokenStore(metadata: MetadataStore(store: opened.store))) }
        state.withLock { $0 = opened }
        let r = opened.db.recovery
        metrics.recoveryDurationSeconds.set(to: Double(elapsed.milliseconds) / 1000)
        metrics.storageReady.set(to: 1)
        logger.notice(
            "storage recovered",
            metadata: [
                "recovery_ms": .stringConvertible(elapsed.milliseconds), "replayed_records": .stringConvertible(r.walRecords),
                "replayed_samples": .stringConvertible(r.samples), "series": .stringConvertible(r.totalSeries),
                "corrupt_records": .stringConvertible(r.corruptRecords),
            ])
        if r.corruptRecords > 0 {
            logger.warning("WAL replay skipped corrupt records", metadata: ["count": .stringConvertible(r.corruptRecords)])
        }
        await refreshGauges()
        readiness.setReady("storage")
        openedSignal.continuation.finish()

        // Serve until shutdown. Everything started after this service (maintenance, HTTP) has
        // stopped by the time the group tells this one to stop.
        try? await gracefulShutdown()

        readiness.setPending("storage", reason: "shutting down")
        metrics.storageReady.set(to: 0)
        // Drop every reference to the store but `opened`, so that RocksDB is closed (in its
        // deinit) when this function returns — before the process exits. RocksDB aborts the
        // process if it is still open while static destructors run at exit.
        state.withLock { $0 = nil }
        authority.detach()
        let flushStarted = ContinuousClock.now
        do {
            // Also when the group was cancelled (another service failed): a clean close spares
            // the next start a WAL replay.
            try await executor.runToCompletion { try opened.db.close(nowMs: nowMs()) }
            logger.info("storage flushed and closed", metadata: ["flush_ms": .stringConvertible((ContinuousClock.now - flushStarted).milliseconds)])
        } catch {
            logger.error("storage flush at shutdown failed; the WAL will be replayed at next start", metadata: ["error": .string("\(error)")])
            throw error
        }
    }

    /// Waits until storage has opened (returns true) or failed to (false).
    func waitUntilOpen() async -> Bool {
        for await _ in openedSignal.stream {}
        return state.withLock { $0 != nil }
    }

    /// The database, or 503 while recovering or shutting down.
    public func database() throws -> TimeSeriesDB {
        guard let db = state.withLock({ $0?.db }) else {
            let reason = readiness.pendingComponents.first { $0.component == "storage" }?.reason ?? "not open"
            throw APIError.unavailable("storage is not available (\(reason))")
        }
        return db
    }

    /// Refreshes the storage gauges from `statistics()`.
    public func refreshGauges() async {
        guard let db = state.withLock({ $0?.db }) else { return }
        guard let s = try? await executor.run({ db.statistics() }) else { return }
        metrics.storageSeries.set(to: Double(s.totalSeries))
        metrics.storageSamples.set(to: Double(s.samplesAppended))
        metrics.storageBytesOnDisk.set(to: Double(s.diskBytes))
        metrics.chunkCacheBytes.set(to: Double(s.chunkCacheBytes))
        metrics.postingsCacheBytes.set(to: Double(s.postingsCacheBytes))
        // The store reports totals since it opened; the counters get what is new since the last
        // refresh (a reopened store counts from zero again).
        func delta(_ now: UInt64, _ before: UInt64) -> UInt64 { now >= before ? now - before : now }
        let d = reportedCacheLookups.withLock { r -> [UInt64] in
            let d = [delta(s.chunkCacheHits, r.hits), delta(s.chunkCacheMisses, r.misses),
                     delta(s.postingsCacheHits, r.postingsHits), delta(s.postingsCacheMisses, r.postingsMisses)]
            r = (s.chunkCacheHits, s.chunkCacheMisses, s.postingsCacheHits, s.postingsCacheMisses)
            return d
        }
        for (counter, n) in zip([metrics.chunkCacheHits, metrics.chunkCacheMisses, metrics.postingsCacheHits, metrics.postingsCacheMisses], d) where n > 0 {
            counter.increment(by: Int64(n))
        }
    }
}

/// Runs `TimeSeriesDB.maintenance` every `interval` once storage is open (checkpoints, compaction,
/// retention). A failed pass is logged and counted; the next one retries.
public final class MaintenanceService: Service, Sendable {
    let storage: StorageService
    let interval: Duration
    let metrics: StarlingMetrics
    let executor: BlockingExecutor
    let logger: Logger
    let nowMs: @Sendable () -> Int64

    public init(storage: StorageService, interval: Duration, metrics: StarlingMetrics, executor: BlockingExecutor, logger: Logger, nowMs: @escaping @Sendable () -> Int64) {
        self.storage = storage
        self.interval = interval
        self.metrics = metrics
        self.executor = executor
        self.logger = logger
        self.nowMs = nowMs
    }

    public func run() async throws {
        // Graceful shutdown cancels the sleep; that is the normal way out, not an error.
        do {
            try await cancelWhenGracefulShutdown {
                guard await self.storage.waitUntilOpen() else { return }
                while !Task.isCancelled {
                    try await Task.sleep(for: self.interval)
                    await self.pass()
                }
            }
        } catch is CancellationError {
            return
        }
    }

    func pass() async {
        guard let db = try? storage.database() else { return }
        let nowMs = self.nowMs
        let started = ContinuousClock.now
        do {
            let r = try await executor.run { try db.maintenance(nowMs: nowMs()) }
            metrics.maintenanceRuns.increment()
            let ms = (ContinuousClock.now - started).milliseconds
            let level: Logger.Level = (r.checkpointed || r.blocksCompacted > 0 || r.blocksDropped > 0) ? .info : .debug
            logger.log(
                level: level, "storage maintenance",
                metadata: [
                    "duration_ms": .stringConvertible(ms), "checkpointed": .stringConvertible(r.checkpointed),
                    "chunks_closed": .stringConvertible(r.chunksClosed), "blocks_compacted": .stringConvertible(r.blocksCompacted),
                    "blocks_dropped": .stringConvertible(r.blocksDropped), "series_deleted": .stringConvertible(r.seriesDeleted),
                ])
        } catch {
            metrics.maintenanceFailures.increment()
            logger.error("storage maintenance failed", metadata: ["error": .string("\(error)")])
        }
        await storage.refreshGauges()
    }
}

/// API tokens in the metadata keyspace of the local store: `auth/token/<id>` → JSON record.
/// The cluster later swaps this for replicated metadata behind the same `TokenStore` protocol.
struct MetadataTokenStore: TokenStore {
    static let prefix = "auth/token/"
    let metadata: MetadataStore

    func loadAll() throws -> [TokenRecord] {
        try metadata.scan(prefix: Self.prefix).map { entry in
            do {
                return try JSONDecoder().decode(TokenRecord.self, from: Data(entry.value))
            } catch {
                throw StorageError.corrupt("token record \(entry.key) is not valid: \(error)")
            }
        }
    }

    func save(_ record: TokenRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        try metadata.put(Self.prefix + record.id, Array(try encoder.encode(record)))
    }
}
