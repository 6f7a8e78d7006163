import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOCore
import ServiceLifecycle
import StarlingAlerting
import StarlingCluster
import StarlingCore
import StarlingPeerWire
import StarlingPlacement
import StarlingPromQL
import Synchronization

/// The cluster's Alertmanager: grouping, inhibition, deduplication and webhook delivery, run by
/// one node at a time — the leader of the shard `starling/alertmanager` hashes to.
///
/// - Alerts come from rule evaluation (on whichever node evaluates a group) and from the API;
///   any node forwards them to the current alertmanager node (`post_alerts`). Rule evaluators
///   resend firing alerts every minute, so a new alertmanager node rebuilds its alert store
///   within a minute of taking over.
/// - The notification log — what was sent to whom, per group — is replicated: every entry is
///   written as series (`starling_nflog`, `starling_nflog_alert`) through the cluster write
///   path, and a node that takes over reads it back before its first flush, so it decides
///   exactly as its predecessor would have and does not notify again what was already sent.
/// - Before a notification goes out its idempotency key is written (`starling_notification_intent`);
///   a successor that finds the key of a notification it is about to send treats it as sent.
///   The key is also sent as the `Idempotency-Key` header, so receivers can deduplicate the
///   one case left: a node that died between writing the intent and the delivery.
/// - Delivery retries with exponential backoff and jitter for up to `retryForMs`; a
///   notification that still fails is logged and decided again at the group's next flush.
final class AlertmanagerService: Service, Sendable {
    static let shardKey = "starling/alertmanager"

    struct Settings: Sendable {
        var resolveTimeoutMs: Int64 = 5 * 60_000
        var externalURL = ""
        /// How long a notification is retried before it counts as failed. Default 1 min.
        var retryForMs: Int64 = 60_000
        var initialBackoffMs: Int64 = 500
        var maxBackoffMs: Int64 = 10_000
        /// Deadline of one webhook request. Default 10 s.
        var requestTimeoutMs: Int64 = 10_000
        /// How far back the notification log is read when taking over (its retention).
        var logLookbackMs: Int64 = 120 * 3_600_000
        /// Escalation timers of every incident (`alerting.escalation.*`).
        var escalation = EscalationPolicy()
        /// Recurring maintenance windows (`alerting.maintenance_windows_file`).
        var windows: [MaintenanceWindow] = []
    }

    struct State {
        var dispatcher: Dispatcher?
        var leading = false
        var epoch: UInt64 = 0
        /// Idempotency keys of notifications a predecessor started to send.
        var intents: Set<UInt64> = []
        var lastGCMs: Int64 = 0
        var silences = Silences()
        /// The lifecycle of every alert that fired (open incidents, and resolved ones until
        /// garbage collection), by alert fingerprint.
        var incidents: [UInt64: AlertLifecycle] = [:]
        /// When this node took the alertmanager over.
        var leadingSinceMs: Int64 = 0
    }

    let config: AlertingConfig
    let settings: Settings
    let topology: ClusterTopology
    let transport: any PeerTransport
    let engine: Engine
    let querier: @Sendable () throws -> any Querier
    let write: @Sendable ([SeriesSamples], Int64) async throws -> Void
    let http: HTTPClient
    let logger: Logger
    let nowMs: @Sendable () -> Int64
    let state = Mutex(State())
    private let inbox = Mutex<[StarlingAlerting.Alert]>([])
    let wakeup = Wakeup()
    /// Silence records waiting to be written (replication of API changes).
    let pendingSilenceWrites = Mutex<[SeriesSamples]>([])
    private let delivered = Counter(label: "starling_notifications_total", dimensions: [("outcome", "delivered")])
    private let failed = Counter(label: "starling_notifications_total", dimensions: [("outcome", "failed")])
    private let skipped = Counter(label: "starling_notifications_total", dimensions: [("outcome", "already_sent")])
    private let attempts = Counter(label: "starling_notification_attempts_total")
    private let received = Counter(label: "starling_alertmanager_alerts_received_total")
    private let leading = Gauge(label: "starling_alertmanager_leader")

    init(config: AlertingConfig, settings: Settings, topology: ClusterTopology, transport: any PeerTransport, engine: Engine,
         querier: @escaping @Sendable () throws -> any Querier, write: @escaping @Sendable ([SeriesSamples], Int64) async throws -> Void,
         http: HTTPClient, logger: Logger, nowMs: @escaping @Sendable () -> Int64) {
        self.config = config
        self.settings = settings
        self.topology = topology
        self.transport = transport
        self.engine = engine
        self.querier = querier
        self.write = write
        self.http = http
        self.logger = logger
        self.nowMs = nowMs
    }

    /// The node running the alertmanager under the current placement.
    func leader() -> String? {
        let snapshot = topology.current
        let shard = snapshot.placement.layout.shard(forHash: XXH64.hash(Array(Self.shardKey.utf8)))
        return snapshot.placement.leader(of: shard, isAlive: { snapshot.isReachable($0) })
    }

    var isLeader: Bool { leader() == topology.localNodeID }

    /// Hands alerts to the alertmanager node (this one, or over peer RPC).
    func post(_ alerts: [StarlingAlerting.Alert]) async throws {
        guard !alerts.isEmpty else { return }
        guard let node = leader() else { throw RuleEvaluationError(message: "no alertmanager node reachable") }
        if node == topology.localNodeID {
            enqueue(alerts)
            return
        }
        let json = AlertWire.encode(alerts)
        let frames = try await transport.request(to: node, .postAlerts, payload: PostAlertsMessage(json: json).encoded(), timeoutMs: 10_000)
        guard let f = frames.last else { throw RuleEvaluationError(message: "no answer from alertmanager node \(node)") }
        if f.type == .error {
            let e = try ErrorMessage.decode(f.payload)
            throw RuleEvaluationError(message: "alertmanager node \(node): \(e.message)")
        }
    }

    /// A peer forwarded alerts to this node.
    func receiveForwarded(_ json: [UInt8]) -> ClusterPeerHandler.Reply {
        guard isLeader else {
            return (.error, ErrorMessage(code: .placementMismatch, message: "this node does not run the alertmanager now").encoded())
        }
        do {
            enqueue(try AlertWire.decode(json))
            return (.postAlertsReply, PostAlertsMessage(json: Array("{}".utf8)).encoded())
        } catch {
            return (.error, ErrorMessage(code: .malformed, message: "\(error)").encoded())
        }
    }

    private func enqueue(_ alerts: [StarlingAlerting.Alert]) {
        received.increment(by: alerts.count)
        inbox.withLock { $0 += alerts }
        wakeup.signal()
    }

    /// Converts what rule evaluation hands out into the alertmanager's alerts (Prometheus's
    /// `sendAlerts`: start = fired at, end = resolved at or valid until).
    static func alerts(from ruleAlerts: [RuleAlert], generatorURL: String, nowMs: Int64) -> [StarlingAlerting.Alert] {
        ruleAlerts.map { a in
            let resolved = a.state == .inactive
            return StarlingAlerting.Alert(
                labels: a.labels, annotations: a.annotations, startsAtMs: a.firedAtMs ?? a.activeAtMs,
                endsAtMs: resolved ? (a.resolvedAtMs ?? nowMs) : a.validUntilMs, generatorURL: generatorURL, updatedAtMs: nowMs)
        }
    }

    // MARK: Service

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { tasks in
                while !Task.isCancelled {
                    let lead = self.isLeader
                    self.leading.record(lead ? 1 : 0)
                    let (wasLeading, epoch) = self.state.withLock { ($0.leading, $0.epoch) }
                    if lead, !wasLeading {
                        await self.takeOver()
                    } else if !lead, wasLeading {
                        self.state.withLock { s in
                            s.leading = false
                            s.dispatcher = nil
                            s.epoch += 1
                        }
                        self.logger.info("alertmanager moved to another node")
                    }
                    var next: Int64 = 1_000
                    if lead {
                        let now = self.nowMs()
                        let batch = self.inbox.withLock { b -> [StarlingAlerting.Alert] in defer { b = [] }; return b }
                        let (directives, changes, wait) = self.state.withLock { s -> ([NotificationDirective], [(NotificationLogKey, NotificationLogEntry)], Int64) in
                            guard var d = s.dispatcher else { return ([], [], 1_000) }
                            let invalid = d.receive(batch, nowMs: now)
                            if !invalid.isEmpty { self.logger.warning("alerts refused", metadata: ["count": .stringConvertible(invalid.count), "first": .string("\(invalid[0].1)")]) }
                            let muter = Suppressor(dispatcher: d, silences: s.silences, windows: self.settings.windows, nowMs: now)
                            let out = d.tick(nowMs: now, muter: muter)
                            if now - s.lastGCMs > 30 * 60_000 {
                                d.collectGarbage(nowMs: now)
                                s.silences.collectGarbage(nowMs: now)
                                s.lastGCMs = now
                            }
                            let changes = d.drainLogChanges()
                            var wait = d.nextTickMs.map { max(10, min($0 - now, 1_000)) } ?? 1_000
                            s.dispatcher = d
                            let changedIncidents = Self.followIncidents(&s, dispatcher: d, policy: self.settings.escalation,
                                                                       absentResolvesAfterMs: self.settings.resolveTimeoutMs, nowMs: now)
                            if !changedIncidents.isEmpty { self.replicateIncidents(changedIncidents) }
                            if let due = s.incidents.values.compactMap(\.nextDeadlineMs).min() { wait = max(10, min(wait, due - now)) }
                            return (out, changes, wait)
                        }
                        next = wait
                        if !changes.isEmpty { await self.replicate(changes) }
                        let silenceRecords = self.pendingSilenceWrites.withLock { p -> [SeriesSamples] in defer { p = [] }; return p }
                        if !silenceRecords.isEmpty {
                            do {
                                try await self.write(silenceRecords, self.nowMs())
                            } catch {
                                self.logger.error("cannot replicate silences: another node taking over would not know them", metadata: ["error": .string("\(error)")])
                            }
                        }
                        let currentEpoch = self.state.withLock { $0.epoch }
                        for d in directives { tasks.addTask { await self.deliver(d, epoch: currentEpoch) } }
                    } else {
                        // Not the alertmanager: forward whatever was queued before a move.
                        let batch = self.inbox.withLock { b -> [StarlingAlerting.Alert] in defer { b = [] }; return b }
                        if !batch.isEmpty { try? await self.post(batch) }
                    }
                    _ = epoch
                    await self.wakeup.wait(ms: next)
                }
            }
        }
    }

    /// Becoming the alertmanager: read the replicated notification log and the intents, then
    /// start a dispatcher that decides from them.
    private func takeOver() async {
        let now = nowMs()
        var log: [NotificationLogKey: NotificationLogEntry] = [:]
        var intents: Set<UInt64> = []
        var silences = Silences()
        var incidents: [UInt64: AlertLifecycle] = [:]
        do {
            let q = try querier()
            let lookback = "\(settings.logLookbackMs / 1000)s"
            let entries = try await engine.instantQuery("last_over_time(starling_nflog[\(lookback)])", timeMs: now, querier: q)
            if case .vector(let v) = entries.value {
                for s in v {
                    guard let key = Self.logKey(s.labels) else { continue }
                    log[key] = NotificationLogEntry(firing: [], resolved: [], timestampMs: Int64(s.value))
                }
            }
            let members = try await engine.instantQuery("last_over_time(starling_nflog_alert[\(lookback)])", timeMs: now, querier: q)
            if case .vector(let v) = members.value {
                for s in v {
                    guard let key = Self.logKey(s.labels), var e = log[key], Int64(s.value) == e.timestampMs,
                          let hex = s.labels.get("fp"), let fp = UInt64(hex, radix: 16) else { continue }
                    if s.labels.get("state") == "resolved" { e.resolved.insert(AlertFingerprint(rawValue: fp)) } else { e.firing.insert(AlertFingerprint(rawValue: fp)) }
                    log[key] = e
                }
            }
            silences = try await Self.readSilences(q, nowMs: now, lookbackMs: settings.logLookbackMs + 366 * 86_400_000)
            incidents = try await Self.readIncidents(q, nowMs: now, lookbackMs: settings.logLookbackMs)
            let recent = try await engine.instantQuery("starling_notification_intent > 0", timeMs: now, querier: q)
            if case .vector(let v) = recent.value {
                for s in v { if let k = s.labels.get("key").flatMap({ UInt64($0, radix: 16) }) { intents.insert(k) } }
            }
        } catch {
            logger.warning("alertmanager: cannot read the replicated notification log; notifications may repeat", metadata: ["error": .string("\(error)")])
        }
        var d = Dispatcher(config: config)
        d.restoreLog(log)
        state.withLock { s in
            s.dispatcher = d
            s.leading = true
            s.epoch += 1
            s.intents = intents
            s.silences = silences
            s.incidents = incidents
            s.leadingSinceMs = now
        }
        logger.info("this node runs the alertmanager now", metadata: [
            "notification_log_entries": .stringConvertible(log.count), "pending_intents": .stringConvertible(intents.count),
            "silences": .stringConvertible(silences.byID.count),
        ])
    }

    static func logKey(_ l: Labels) -> NotificationLogKey? {
        guard let g = l.get("group_key"), let r = l.get("receiver"), let route = l.get("route").flatMap({ Int($0) }),
              let i = l.get("integration").flatMap({ Int($0) }) else { return nil }
        return NotificationLogKey(groupKey: g, routeIndex: route, receiver: r, integrationIndex: i)
    }

    static func keyLabels(_ k: NotificationLogKey) -> [String: String] {
        ["group_key": k.groupKey, "receiver": k.receiver, "route": String(k.routeIndex), "integration": String(k.integrationIndex)]
    }

    /// Writes log entries as series: the entry's time, and its alerts at that time.
    private func replicate(_ changes: [(NotificationLogKey, NotificationLogEntry)]) async {
        var series: [SeriesSamples] = []
        for (k, e) in changes {
            let base = Self.keyLabels(k)
            let t = Double(e.timestampMs)
            series.append(SeriesSamples(labels: Labels(base.merging(["__name__": "starling_nflog"]) { $1 }), samples: [Sample(e.timestampMs, t)]))
            for (set, state) in [(e.firing, "firing"), (e.resolved, "resolved")] {
                for fp in set {
                    let l = base.merging(["__name__": "starling_nflog_alert", "fp": fp.description, "state": state]) { $1 }
                    series.append(SeriesSamples(labels: Labels(l), samples: [Sample(e.timestampMs, t)]))
                }
            }
        }
        do {
            try await write(series, nowMs())
        } catch {
            logger.error("cannot replicate the notification log: after a failover these notifications may repeat", metadata: ["error": .string("\(error)")])
        }
    }

    private func intent(_ key: UInt64, value: Double) async throws {
        let l = Labels(["__name__": "starling_notification_intent", "key": String(key, radix: 16)])
        try await write([SeriesSamples(labels: l, samples: [Sample(nowMs(), value)])], nowMs())
    }

    /// Sends one notification with retries; reports the outcome to the dispatcher.
    private func deliver(_ d: NotificationDirective, epoch: UInt64) async {
        let known = state.withLock { $0.intents.contains(d.idempotencyKey) }
        var ok = false
        if known {
            // A predecessor wrote this notification's intent: it went out (or was about to).
            skipped.increment()
            logger.info("notification already sent by the previous alertmanager node; not sending again",
                        metadata: ["receiver": .string(d.receiver), "group": .string(d.groupKey)])
            ok = true
        } else {
            do {
                try await intent(d.idempotencyKey, value: 1)
                ok = await send(d)
                if !ok { try? await intent(d.idempotencyKey, value: 0) }
            } catch {
                logger.error("cannot record the notification intent; not sending", metadata: ["error": .string("\(error)")])
            }
        }
        let changes: [(NotificationLogKey, NotificationLogEntry)] = state.withLock { s in
            guard s.epoch == epoch, var disp = s.dispatcher else { return [] }
            if ok { disp.onDelivered(d, nowMs: nowMs()) } else { disp.onDeliveryFailed(d) }
            let c = disp.drainLogChanges()
            s.dispatcher = disp
            return c
        }
        if ok && !known { delivered.increment() } else if !ok { failed.increment() }
        if !changes.isEmpty { await replicate(changes) }
        wakeup.signal()
    }

    private func send(_ d: NotificationDirective) async -> Bool {
        let started = nowMs()
        var backoff = settings.initialBackoffMs
        var attempt = 0
        var rng = SystemRandomNumberGenerator()
        while !Task.isCancelled {
            attempt += 1
            attempts.increment()
            var request = HTTPClientRequest(url: d.webhook.url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "User-Agent", value: "Starling/\(StarlingVersion.version)")
            request.headers.add(name: "Idempotency-Key", value: String(d.idempotencyKey, radix: 16))
            request.body = .bytes(ByteBuffer(bytes: WebhookPayload.render(d, externalURL: settings.externalURL, nowMs: nowMs())))
            var reason = ""
            do {
                let response = try await http.execute(request, timeout: .milliseconds(settings.requestTimeoutMs))
                _ = try? await response.body.collect(upTo: 1 << 20)
                if (200..<300).contains(Int(response.status.code)) {
                    logger.info("notification delivered", metadata: [
                        "receiver": .string(d.receiver), "group": .string(d.groupKey), "alerts": .stringConvertible(d.alerts.count),
                        "attempts": .stringConvertible(attempt),
                    ])
                    return true
                }
                reason = "HTTP \(response.status.code)"
                // 4xx other than 429: the receiver refuses this payload; retrying will not help.
                if (400..<500).contains(Int(response.status.code)) && response.status.code != 429 { break }
            } catch {
                reason = "\(error)"
            }
            let waited = nowMs() - started
            if waited + backoff > settings.retryForMs {
                logger.error("notification failed; decided again at the group's next flush", metadata: [
                    "receiver": .string(d.receiver), "url": .string(d.webhook.url), "attempts": .stringConvertible(attempt), "last_error": .string(reason),
                ])
                return false
            }
            // Exponential backoff with ±20 % jitter, so retries of several nodes do not align.
            let jitter = Double.random(in: 0.8...1.2, using: &rng)
            try? await Task.sleep(for: .milliseconds(Int64(Double(backoff) * jitter)))
            backoff = min(backoff * 2, settings.maxBackoffMs)
        }
        logger.error("notification refused by the receiver", metadata: ["receiver": .string(d.receiver), "url": .string(d.webhook.url)])
        return false
    }
}

/// Alerts forwarded between nodes as JSON: `[{"labels":{…},"annotations":{…},"startsAt":ms,
/// "endsAt":ms,"generatorURL":"…","updatedAt":ms,"timeout":bool}]`.
enum AlertWire {
    static func encode(_ alerts: [StarlingAlerting.Alert]) -> [UInt8] {
        func object(_ l: Labels) -> [String: String] {
            var out: [String: String] = [:]
            for x in l.array { out[x.name] = x.value }
            return out
        }
        let list: [[String: Any]] = alerts.map {
            ["labels": object($0.labels), "annotations": object($0.annotations), "startsAt": $0.startsAtMs, "endsAt": $0.endsAtMs,
             "generatorURL": $0.generatorURL, "updatedAt": $0.updatedAtMs, "timeout": $0.endsAtIsTimeout]
        }
        return Array((try? JSONSerialization.data(withJSONObject: list)) ?? Data("[]".utf8))
    }

    static func decode(_ bytes: [UInt8]) throws -> [StarlingAlerting.Alert] {
        guard let list = try JSONSerialization.jsonObject(with: Data(bytes)) as? [[String: Any]] else {
            throw RuleEvaluationError(message: "forwarded alerts: expected a JSON array")
        }
        return try list.map { o in
            guard let labels = o["labels"] as? [String: String], let start = (o["startsAt"] as? NSNumber)?.int64Value,
                  let end = (o["endsAt"] as? NSNumber)?.int64Value, let updated = (o["updatedAt"] as? NSNumber)?.int64Value
            else { throw RuleEvaluationError(message: "forwarded alert without labels or times") }
            return StarlingAlerting.Alert(
                labels: Labels(labels), annotations: Labels(o["annotations"] as? [String: String] ?? [:]), startsAtMs: start, endsAtMs: end,
                generatorURL: o["generatorURL"] as? String ?? "", updatedAtMs: updated, endsAtIsTimeout: o["timeout"] as? Bool ?? false)
        }
    }
}
