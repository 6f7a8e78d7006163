// Until StarlingStorage lands on main the node has no storage engine: it serves health, metrics
// and the admin API, and /readyz reports the storage component as pending with this reason.
// Replaced by StorageService.swift (RocksDB + TimeSeriesDB) once the engine is on main.
import Hummingbird
import Logging
import ServiceLifecycle
import StarlingHTTP

final class StorageService: Service, Sendable {
    let readiness: Readiness
    init(config: NodeConfig, metrics: StarlingMetrics, readiness: Readiness, authority: TokenAuthority, executor: BlockingExecutor, logger: Logger, nowMs: @escaping @Sendable () -> Int64) {
        self.readiness = readiness
    }
    func run() async throws {
        readiness.setPending("storage", reason: "storage engine not integrated in this build")
        try? await gracefulShutdown()
    }
    func refreshGauges() async {}
    func routeFeatures() -> [RouteCollection<StarlingRequestContext>] { [] }
}

final class MaintenanceService: Service, Sendable {
    init(storage: StorageService, interval: Duration, metrics: StarlingMetrics, executor: BlockingExecutor, logger: Logger, nowMs: @escaping @Sendable () -> Int64) {}
    func run() async throws { try? await gracefulShutdown() }
}
