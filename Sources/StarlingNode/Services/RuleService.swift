import Foundation
import Logging
import Metrics
import ServiceLifecycle
import StarlingAlerting
import StarlingCluster
import StarlingCore
import StarlingPlacement
import StarlingPromQL
import Synchronization

/// Evaluates rule groups, each on exactly one node: the leader of the shard the group's key
/// hashes to (the first live replica of that shard). Every node checks once a second which
/// groups it leads; it starts an evaluation loop for a group it gained and stops one it lost.
///
/// A loop that starts restores the group's alerts from `ALERTS_FOR_STATE` (read through the
/// cluster query path), so `for` timers continue across a failover, then evaluates at the
/// group's interval, aligned to a per-group offset. Before writing it checks it still leads
/// the group under the current placement (a node that lost the lead stops writing at once).
/// Rule output (recording results, `ALERTS`, `ALERTS_FOR_STATE`) goes through the cluster write
/// coordinator, so it is replicated like any other series.
final class RuleService: Service, Sendable {
    struct Settings: Sendable {
        var defaultIntervalMs: Int64
        var externalLabels: [String: String]
        var externalURL: String
        /// Lookback when restoring `for` state; at least two intervals.
        var restoreLookbackMs: Int64 { 300_000 }
    }

    /// One group as this node knows it.
    struct Runtime: Sendable {
        var state: RuleGroupState
        /// Whether this node evaluates the group now.
        var leading = false
        /// New on every (re)start of the loop; a loop whose epoch is stale stops.
        var epoch: UInt64 = 0
        var restoredAlerts = 0
    }

    let settings: Settings
    let topology: ClusterTopology
    let engine: Engine
    let querier: @Sendable () throws -> any Querier
    let write: @Sendable ([SeriesSamples], Int64) async throws -> Void
    /// Where alerts to notify go (the alertmanager); nil: nowhere yet.
    let notify: (@Sendable ([RuleAlert], RuleGroupSpec) async -> Void)?
    let logger: Logger
    let nowMs: @Sendable () -> Int64
    private let groups: Mutex<[String: Runtime]>
    /// Group keys in listing order: rule files first, then the catalog's groups.
    private let order: Mutex<[String]>
    /// Epochs are unique across groups and their replacements, so a loop of a removed group
    /// never matches a new loop of a group re-added under the same key.
    private let epochs = Atomic<UInt64>(0)
    private func nextEpoch() -> UInt64 { epochs.add(1, ordering: .relaxed).newValue }
    private let evaluations = Counter(label: "starling_rule_evaluations_total")
    private let failures = Counter(label: "starling_rule_evaluation_failures_total")
    private let leadingGauge = Gauge(label: "starling_rule_groups_led")

    init(groups specs: [RuleGroupSpec], settings: Settings, topology: ClusterTopology, engine: Engine,
         querier: @escaping @Sendable () throws -> any Querier, write: @escaping @Sendable ([SeriesSamples], Int64) async throws -> Void,
         notify: (@Sendable ([RuleAlert], RuleGroupSpec) async -> Void)?, logger: Logger, nowMs: @escaping @Sendable () -> Int64) {
        self.settings = settings
        self.topology = topology
        self.engine = engine
        self.querier = querier
        self.write = write
        self.notify = notify
        self.logger = logger
        self.nowMs = nowMs
        var map: [String: Runtime] = [:]
        for g in specs { map[g.key] = Runtime(state: RuleGroupState(spec: g)) }
        groups = Mutex(map)
        order = Mutex(specs.map(\.key))
    }

    /// Replaces the set of groups (rule files and the rule catalog, after a catalog change).
    /// Unchanged groups keep their state and loop; a changed group starts afresh (its loop
    /// restarts and restores `for` state from `ALERTS_FOR_STATE`); a removed group stops.
    func replace(_ specs: [RuleGroupSpec]) {
        var added = 0, changed = 0, removed = 0
        groups.withLock { g in
            var next: [String: Runtime] = [:]
            for spec in specs {
                if var rt = g[spec.key] {
                    if rt.state.spec != spec {
                        // The old loop sees a new epoch and stops; the next tick starts one.
                        rt = Runtime(state: RuleGroupState(spec: spec), leading: false, epoch: nextEpoch())
                        changed += 1
                    }
                    next[spec.key] = rt
                } else {
                    next[spec.key] = Runtime(state: RuleGroupState(spec: spec))
                    added += 1
                }
            }
            removed = g.keys.filter { next[$0] == nil }.count
            g = next
        }
        order.withLock { $0 = specs.map(\.key) }
        if added + changed + removed > 0 {
            logger.info("rule groups reloaded", metadata: [
                "groups": .stringConvertible(specs.count), "added": .stringConvertible(added), "changed": .stringConvertible(changed),
                "removed": .stringConvertible(removed),
            ])
        }
    }

    /// The shard a group belongs to: XXH64 of its key, like a series' labels.
    static func shard(of key: String, layout: ShardLayout) -> ShardID {
        layout.shard(forHash: XXH64.hash(Array(key.utf8)))
    }

    /// The node that evaluates `key` under the current placement, if any is alive.
    func leader(of key: String) -> String? {
        let snapshot = topology.current
        return snapshot.placement.leader(of: Self.shard(of: key, layout: snapshot.placement.layout), isAlive: { snapshot.isReachable($0) })
    }

    func isLeader(_ key: String) -> Bool { leader(of: key) == topology.localNodeID }

    func intervalMs(_ spec: RuleGroupSpec) -> Int64 { spec.intervalMs ?? settings.defaultIntervalMs }

    /// Every group in file order with its current state (for the API).
    var snapshot: [Runtime] {
        let keys = order.withLock { $0 }
        return groups.withLock { g in keys.compactMap { g[$0] } }
    }

    func run() async throws {
        // The group's body checks leadership once a second and adds a loop for every group
        // gained (a discarding group: finished loops leave no results behind).
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { tasks in
                while !Task.isCancelled {
                    var toStart: [(String, UInt64)] = []
                    var leading = 0
                    for key in self.order.withLock({ $0 }) {
                        let lead = self.isLeader(key)
                        if lead { leading += 1 }
                        self.groups.withLock { g in
                            guard var rt = g[key] else { return }
                            if lead, !rt.leading {
                                rt.leading = true
                                rt.epoch = self.nextEpoch()
                                toStart.append((key, rt.epoch))
                            } else if !lead, rt.leading {
                                rt.leading = false
                                rt.epoch = self.nextEpoch()
                            }
                            g[key] = rt
                        }
                    }
                    self.leadingGauge.record(leading)
                    for (key, epoch) in toStart {
                        self.logger.info("evaluating rule group (this node leads its shard)", metadata: ["group": .string(key)])
                        tasks.addTask { await self.loop(key, epoch: epoch) }
                    }
                    guard (try? await Task.sleep(for: .seconds(1))) != nil else { break }
                }
                tasks.cancelAll()
            }
        }
    }

    private func current(_ key: String, epoch: UInt64) -> Bool {
        groups.withLock { $0[key]?.epoch == epoch && $0[key]?.leading == true }
    }

    /// Restores, then evaluates `key` at its interval while this node leads it.
    func loop(_ key: String, epoch: UInt64) async {
        // However the loop ends, the group is no longer evaluated here until the leadership
        // check starts it again: a loop that stopped on a brief loss of the lead (a placement
        // change while the cluster forms) must not leave the group marked as led, or nobody
        // would restart it.
        defer {
            groups.withLock { g in
                if g[key]?.epoch == epoch { g[key]?.leading = false }
            }
        }
        guard let spec = groups.withLock({ $0[key]?.state.spec }) else { return }
        let interval = intervalMs(spec)
        await restore(key, spec: spec)
        // Evaluation times are aligned to the interval with a per-group offset, so groups spread
        // and a new leader evaluates at the same times its predecessor did.
        let offset = Int64(XXH64.hash(Array(key.utf8)) % UInt64(interval))
        while !Task.isCancelled, current(key, epoch: epoch) {
            let now = nowMs()
            let next = ((now - offset) / interval + 1) * interval + offset
            guard (try? await Task.sleep(for: .milliseconds(next - now))) != nil else { return }
            guard current(key, epoch: epoch), isLeader(key) else { break }
            await evaluate(key, at: next, interval: interval, epoch: epoch)
        }
        logger.info("stopped evaluating rule group (another node leads its shard now)", metadata: ["group": .string(key)])
    }

    /// Reads `ALERTS_FOR_STATE` of every alerting rule of the group, so alerts keep their
    /// `activeAt` across a change of evaluator.
    func restore(_ key: String, spec: RuleGroupSpec) async {
        let now = nowMs()
        var byRule: [String: [(labels: Labels, activeAtMs: Int64)]] = [:]
        for rule in spec.rules {
            guard case .alerting(let a) = rule, a.forMs > 0 || a.keepFiringForMs > 0 else { continue }
            let selector = "ALERTS_FOR_STATE{alertname=\(goQuote(a.name))}"
            do {
                let q = try querier()
                let r = try await engine.instantQuery(selector, timeMs: now, querier: q)
                guard case .vector(let v) = r.value else { continue }
                byRule[a.name] = v.map { (labels: $0.labels, activeAtMs: Int64($0.value * 1000)) }
            } catch {
                logger.warning("cannot restore alert state; for timers restart", metadata: ["group": .string(key), "rule": .string(a.name), "error": .string("\(error)")])
            }
        }
        let restored = byRule.values.reduce(0) { $0 + $1.count }
        groups.withLock { g in
            g[key]?.state.restore({ byRule[$0.name] ?? [] }, nowMs: now)
            g[key]?.restoredAlerts = restored
        }
        if restored > 0 {
            logger.info("restored alert state", metadata: ["group": .string(key), "alerts": .stringConvertible(restored)])
        }
    }

    func evaluate(_ key: String, at t: Int64, interval: Int64, epoch: UInt64) async {
        guard var state = groups.withLock({ $0[key]?.state }) else { return }
        let engine = self.engine
        let querier = self.querier
        let write = self.write
        let nowMs = self.nowMs
        let stillLeading: @Sendable () -> Bool = { [weak self] in self.map { $0.current(key, epoch: epoch) && $0.isLeader(key) } ?? false }
        let clock = ContinuousClock()
        let started = clock.now
        let toSend = await state.evaluate(
            nowMs: t, intervalMs: interval, externalLabels: settings.externalLabels, externalURL: settings.externalURL,
            monotonicSeconds: { let d = clock.now - started; return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 },
            query: { expr, at in
                let r = try await engine.instantQuery(expr, timeMs: at, querier: try querier())
                switch r.value {
                case .vector(let v): return v.map { ($0.labels, $0.value) }
                case .scalar(_, let x): return [(Labels.empty, x)]
                default: throw RuleEvaluationError(message: "rule result is a \(r.value.resultType), not a vector or scalar")
                }
            },
            write: { series in
                guard !series.isEmpty else { return }
                // Fencing: a node that lost the lead while evaluating writes nothing more.
                guard stillLeading() else { throw RuleEvaluationError(message: "no longer the evaluating node of this group") }
                try await write(series, nowMs())
            })
        evaluations.increment()
        if state.health.contains(where: { $0.status == .err }) { failures.increment() }
        groups.withLock { g in
            guard g[key]?.epoch == epoch else { return }
            g[key]?.state = state
        }
        if let notify, !toSend.isEmpty, stillLeading() { await notify(toSend, state.spec) }
    }
}
