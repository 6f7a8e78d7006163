import Foundation
import Hummingbird
import NIOCore
import StarlingAlerting
import StarlingCluster
import StarlingCore
import StarlingHTTP
import StarlingPeerWire

// The Alertmanager v2 API on every node (docs/api.md, "Alertmanager API"): requests are carried
// out by the node that runs the alertmanager — here, or over peer RPC (`alertmanager_op`) — so
// `amtool` and an external Prometheus can use any node.

extension AlertmanagerService {
    /// Runs an API operation where the alertmanager runs; returns HTTP status and JSON body.
    func call(_ op: [String: Any]) async -> (Int, [UInt8]) {
        let request = Array((try? JSONSerialization.data(withJSONObject: op)) ?? Data())
        guard let node = leader() else { return Self.failure(503, "no alertmanager node reachable: no live node holds its shard") }
        if node == topology.localNodeID { return execute(request) }
        do {
            let frames = try await transport.request(to: node, .alertmanagerOp, payload: PostAlertsMessage(json: request).encoded(), timeoutMs: 10_000)
            guard let f = frames.last, f.type == .alertmanagerOpReply else {
                if let f = frames.last, f.type == .error { return Self.failure(503, "alertmanager node \(node): \((try? ErrorMessage.decode(f.payload).message) ?? "error")") }
                return Self.failure(503, "alertmanager node \(node) gave no answer")
            }
            let reply = try PostAlertsMessage.decode(f.payload).json
            guard let o = try JSONSerialization.jsonObject(with: Data(reply)) as? [String: Any], let status = o["status"] as? Int else {
                return Self.failure(502, "alertmanager node \(node): undecodable answer")
            }
            let body = (try? JSONSerialization.data(withJSONObject: o["body"] ?? NSNull(), options: [.fragmentsAllowed, .sortedKeys, .withoutEscapingSlashes])) ?? Data()
            return (status, Array(body))
        } catch {
            return Self.failure(503, "alertmanager node \(node) did not answer: \(error)")
        }
    }

    static func failure(_ status: Int, _ message: String) -> (Int, [UInt8]) {
        (status, Array((try? JSONSerialization.data(withJSONObject: message, options: .fragmentsAllowed)) ?? Data()))
    }

    /// A peer's `alertmanager_op`.
    func executeForPeer(_ request: [UInt8]) -> ClusterPeerHandler.Reply {
        let (status, body) = execute(request)
        let bodyObject = (try? JSONSerialization.jsonObject(with: Data(body), options: .fragmentsAllowed)) ?? NSNull()
        let reply = (try? JSONSerialization.data(withJSONObject: ["status": status, "body": bodyObject])) ?? Data()
        return (.alertmanagerOpReply, PostAlertsMessage(json: Array(reply)).encoded())
    }

    /// Carries out an operation on this node, which must run the alertmanager.
    func execute(_ request: [UInt8]) -> (Int, [UInt8]) {
        guard isLeader else { return Self.failure(503, "this node does not run the alertmanager now; retry") }
        guard let op = (try? JSONSerialization.jsonObject(with: Data(request))) as? [String: Any], let name = op["op"] as? String else {
            return Self.failure(400, "malformed alertmanager operation")
        }
        let now = nowMs()
        func json(_ o: Any) -> [UInt8] {
            Array((try? JSONSerialization.data(withJSONObject: o, options: [.fragmentsAllowed, .sortedKeys, .withoutEscapingSlashes])) ?? Data())
        }
        switch name {
        case "list_alerts":
            let filter = (op["filter"] as? [String]) ?? []
            let matchers: [LabelMatcher]
            do {
                matchers = try filter.flatMap { try MatcherParser().parseList($0) }
            } catch {
                return Self.failure(400, "bad filter: \(error)")
            }
            let wantActive = op["active"] as? Bool ?? true
            let wantSilenced = op["silenced"] as? Bool ?? true
            let wantInhibited = op["inhibited"] as? Bool ?? true
            let receiverFilter = op["receiver"] as? String
            let windows = settings.windows
            let list: [[String: Any]] = state.withLock { s in
                guard let d = s.dispatcher else { return [] }
                let sup = Suppressor(dispatcher: d, silences: s.silences, windows: windows, nowMs: now)
                return d.alerts.values.sorted { $0.fingerprint < $1.fingerprint }.compactMap { a -> [String: Any]? in
                    guard matchers.allSatisfy({ $0.matches(a.labels.get($0.name) ?? "") }) else { return nil }
                    let st = sup.status(of: a, nowMs: now)
                    let inhibited = !st.inhibitedBy.isEmpty
                    let silenced = !st.silencedBy.isEmpty
                    if st.state == .active && !wantActive { return nil }
                    if silenced && !wantSilenced { return nil }
                    if inhibited && !wantInhibited { return nil }
                    let receivers = d.config.tree.match(a.labels).map(\.receiver)
                    if let r = receiverFilter, !receivers.contains(where: { $0.range(of: "^(?:\(r))$", options: .regularExpression) != nil }) { return nil }
                    return Self.gettable(a, status: st, receivers: receivers)
                }
            }
            return (200, json(list))
        case "list_silences":
            let filter = (op["filter"] as? [String]) ?? []
            let matchers: [LabelMatcher]
            do {
                matchers = try filter.flatMap { try MatcherParser().parseList($0) }
            } catch {
                return Self.failure(400, "bad filter: \(error)")
            }
            let list = state.withLock { s in s.silences.list(nowMs: now) }.filter { sil in
                // amtool's filter: every filter matcher must match one of the silence's matchers' label pairs.
                matchers.allSatisfy { m in sil.matchers.contains { $0.name == m.name && m.matches($0.value) } }
            }
            return (200, json(list.map { Self.gettable($0, nowMs: now) }))
        case "get_silence":
            guard let id = op["id"] as? String, let sil = state.withLock({ $0.silences.byID[id] }) else {
                return Self.failure(404, "silence not found")
            }
            return (200, json(Self.gettable(sil, nowMs: now)))
        case "post_silence":
            guard let body = op["silence"] as? [String: Any] else { return Self.failure(400, "missing silence") }
            let sil: Silence
            do {
                sil = try Self.parseSilence(body)
            } catch {
                return Self.failure(400, "\(error)")
            }
            var rng = SystemRandomNumberGenerator()
            let result: Result<(String, Silence), SilenceError> = state.withLock { s in
                do {
                    let id = try s.silences.upsert(sil, nowMs: now, using: &rng)
                    return .success((id, s.silences.byID[id]!))
                } catch let e as SilenceError {
                    return .failure(e)
                } catch {
                    return .failure(.noMatchers)
                }
            }
            switch result {
            case .success(let (id, stored)):
                replicateSilences(stored.id == sil.id ? [stored] : [stored] + (sil.id.isEmpty ? [] : state.withLock { $0.silences.byID[sil.id].map { [$0] } ?? [] }))
                wakeup.signal()
                return (200, json(["silenceID": id]))
            case .failure(let e):
                if case .notFound = e { return Self.failure(404, "\(e)") }
                return Self.failure(400, "\(e)")
            }
        case "expire_silence":
            guard let id = op["id"] as? String else { return Self.failure(400, "missing id") }
            let result: Result<Silence, SilenceError> = state.withLock { s in
                do {
                    try s.silences.expire(id: id, nowMs: now)
                    return .success(s.silences.byID[id]!)
                } catch let e as SilenceError {
                    return .failure(e)
                } catch {
                    return .failure(.noMatchers)
                }
            }
            switch result {
            case .success(let stored):
                replicateSilences([stored])
                return (200, json([String: String]()))
            case .failure(let e):
                if case .notFound = e { return Self.failure(404, "\(e)") }
                return Self.failure(400, "\(e)")
            }
        case "list_incidents", "incident_action":
            let (status, body) = executeIncidentOp(name, op, nowMs: now)
            if status >= 300, let m = body as? String { return Self.failure(status, m) }
            return (status, json(body))
        default:
            return Self.failure(400, "unknown operation \(name)")
        }
    }

    /// Writes silences as series (`starling_silence{id, spec}` = update time), the record a node
    /// that takes over reads back. Fire-and-forget on the service's own queue of writes.
    func replicateSilences(_ list: [Silence]) {
        let series = list.map { sil -> SeriesSamples in
            let spec = (try? JSONSerialization.data(withJSONObject: Self.gettable(sil, nowMs: sil.updatedAtMs), options: [.sortedKeys])) ?? Data()
            let labels = Labels(["__name__": "starling_silence", "id": sil.id, "spec": String(decoding: spec, as: UTF8.self)])
            return SeriesSamples(labels: labels, samples: [Sample(sil.updatedAtMs, Double(sil.updatedAtMs))])
        }
        pendingSilenceWrites.withLock { $0 += series }
        wakeup.signal()
    }

    /// Reads the latest record of every silence (raw samples of `starling_silence`).
    static func readSilences(_ q: any Querier, nowMs: Int64, lookbackMs: Int64) async throws -> Silences {
        var out = Silences()
        let set = try await q.select([.eq("__name__", "starling_silence")], hints: SelectHints(startMs: nowMs - lookbackMs, endMs: nowMs))
        var latest: [String: (Int64, String)] = [:]
        while let s = try await set.next() {
            guard let id = s.labels.get("id"), let spec = s.labels.get("spec") else { continue }
            let last = s.chunks.map(\.maxTimeMs).max() ?? 0
            if (latest[id]?.0 ?? .min) < last { latest[id] = (last, spec) }
        }
        for (_, (_, spec)) in latest {
            guard let o = (try? JSONSerialization.jsonObject(with: Data(spec.utf8))) as? [String: Any], var sil = try? parseSilence(o) else { continue }
            sil.id = o["id"] as? String ?? ""
            sil.updatedAtMs = (o["updatedAt"] as? String).flatMap(parseTime) ?? 0
            if !sil.id.isEmpty { out.adopt(sil) }
        }
        return out
    }

    static func parseTime(_ s: String) -> Int64? {
        if let d = try? Date(s, strategy: .iso8601) { return Int64((d.timeIntervalSince1970 * 1000).rounded()) }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: s).map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) }
    }

    /// A postable silence: `{id?, matchers:[{name,value,isRegex,isEqual?}], startsAt, endsAt, createdBy, comment}`.
    static func parseSilence(_ o: [String: Any]) throws -> Silence {
        guard let ms = o["matchers"] as? [[String: Any]] else { throw RuleEvaluationError(message: "silence: matchers missing") }
        var matchers: [LabelMatcher] = []
        for m in ms {
            guard let name = m["name"] as? String, let value = m["value"] as? String else {
                throw RuleEvaluationError(message: "silence: a matcher needs name and value")
            }
            let regex = m["isRegex"] as? Bool ?? false
            let equal = m["isEqual"] as? Bool ?? true
            let kind: LabelMatcher.Kind = regex ? (equal ? .regexMatch : .regexNoMatch) : (equal ? .equal : .notEqual)
            do {
                matchers.append(try LabelMatcher(kind, name, value))
            } catch {
                throw RuleEvaluationError(message: "silence: matcher \(name): \(error)")
            }
        }
        guard let start = (o["startsAt"] as? String).flatMap(parseTime), let end = (o["endsAt"] as? String).flatMap(parseTime) else {
            throw RuleEvaluationError(message: "silence: startsAt and endsAt must be RFC 3339 times")
        }
        return Silence(id: o["id"] as? String ?? "", matchers: matchers, startsAtMs: start, endsAtMs: end,
                       createdBy: o["createdBy"] as? String ?? "", comment: o["comment"] as? String ?? "")
    }

    static func gettable(_ s: Silence, nowMs: Int64) -> [String: Any] {
        [
            "id": s.id, "status": ["state": s.state(atMs: nowMs).rawValue],
            "updatedAt": rfc3339(ms: s.updatedAtMs), "startsAt": rfc3339(ms: s.startsAtMs),
            "endsAt": rfc3339(ms: s.endsAtMs), "createdBy": s.createdBy, "comment": s.comment,
            "matchers": s.matchers.map { m -> [String: Any] in
                ["name": m.name, "value": m.value, "isRegex": m.kind == .regexMatch || m.kind == .regexNoMatch,
                 "isEqual": m.kind == .equal || m.kind == .regexMatch]
            },
        ]
    }

    static func gettable(_ a: StarlingAlerting.Alert, status: AlertStatus, receivers: [String]) -> [String: Any] {
        func object(_ l: Labels) -> [String: String] {
            var out: [String: String] = [:]
            for x in l.array { out[x.name] = x.value }
            return out
        }
        let state: String = switch status.state {
        case .active: "active"
        case .suppressed: "suppressed"
        case .resolved: "unprocessed"
        }
        var cause: Any = NSNull()
        if let c = status.probableCause {
            cause = ["fingerprint": c.fingerprint.description, "labels": object(c.labels), "via": c.via]
        }
        return [
            "probableCause": cause,
            "labels": object(a.labels), "annotations": object(a.annotations), "fingerprint": a.fingerprint.description,
            "startsAt": rfc3339(ms: a.startsAtMs), "endsAt": rfc3339(ms: a.endsAtMs),
            "updatedAt": rfc3339(ms: a.updatedAtMs), "generatorURL": a.generatorURL,
            "receivers": receivers.map { ["name": $0] },
            "status": ["state": state, "silencedBy": status.silencedBy, "inhibitedBy": status.inhibitedBy.map(\.description), "mutedBy": status.mutedByWindows],
        ]
    }
}

/// `/api/v2/…`: Alertmanager's API v2 (alerts, silences, receivers, status).
struct AlertmanagerRoutes: Sendable {
    /// The Alertmanager release whose v2 API these routes reproduce.
    static let emulatedAlertmanagerVersion = "0.25.0"

    let alertmanager: AlertmanagerService
    let metrics: StarlingMetrics
    let configText: String
    let startedMs: Int64

    static func respond(_ status: Int, _ body: [UInt8]) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    func routes() -> RouteCollection<StarlingRequestContext> {
        let r = RouteCollection(context: StarlingRequestContext.self)
            .add(middleware: OffEventLoopMiddleware())
        let read = r.group("api/v2").add(middleware: RequirePermission(.read, metrics: metrics))
        let write = r.group("api/v2").add(middleware: RequirePermission(.write, metrics: metrics))
        read.get("alerts") { request, _ in
            let q = request.uri.queryParameters
            var op: [String: Any] = ["op": "list_alerts", "filter": q.getAll("filter").map { String($0) }]
            for flag in ["active", "silenced", "inhibited"] {
                if let v = q.get(flag) { op[flag] = v == "true" }
            }
            if let recv = q.get("receiver") { op["receiver"] = String(recv) }
            let (status, body) = await alertmanager.call(op)
            return Self.respond(status, body)
        }
        write.post("alerts") { request, context in
            let buffer = try await request.body.collect(upTo: 16 << 20)
            guard let list = (try? JSONSerialization.jsonObject(with: Data(buffer: buffer))) as? [[String: Any]] else {
                throw APIError.badData("the body must be a JSON array of alerts")
            }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            var alerts: [StarlingAlerting.Alert] = []
            for (i, o) in list.enumerated() {
                guard let labels = o["labels"] as? [String: String], !labels.isEmpty else {
                    throw APIError.badData("alert \(i): labels missing or empty")
                }
                let start = (o["startsAt"] as? String).flatMap(AlertmanagerService.parseTime)
                let end = (o["endsAt"] as? String).flatMap(AlertmanagerService.parseTime)
                let a = StarlingAlerting.Alert.received(
                    labels: Labels(labels), annotations: Labels(o["annotations"] as? [String: String] ?? [:]), startsAtMs: start,
                    endsAtMs: end, generatorURL: o["generatorURL"] as? String ?? "", nowMs: now,
                    resolveTimeoutMs: alertmanager.settings.resolveTimeoutMs)
                do {
                    try a.validate()
                } catch {
                    throw APIError.badData("alert \(i): \(error)")
                }
                alerts.append(a)
            }
            do {
                try await alertmanager.post(alerts)
            } catch {
                throw APIError.unavailable("\(error)")
            }
            _ = context
            return Response(status: .ok)
        }
        read.get("silences") { request, _ in
            let (status, body) = await alertmanager.call(["op": "list_silences", "filter": request.uri.queryParameters.getAll("filter").map { String($0) }])
            return Self.respond(status, body)
        }
        write.post("silences") { request, _ in
            let buffer = try await request.body.collect(upTo: 1 << 20)
            guard let o = (try? JSONSerialization.jsonObject(with: Data(buffer: buffer))) as? [String: Any] else {
                throw APIError.badData("the body must be a JSON silence")
            }
            var creator = o
            if (creator["createdBy"] as? String ?? "").isEmpty { creator["createdBy"] = "" }
            let (status, body) = await alertmanager.call(["op": "post_silence", "silence": creator])
            return Self.respond(status, body)
        }
        read.get("silence/:id") { _, context in
            let id = context.parameters.get("id") ?? ""
            let (status, body) = await alertmanager.call(["op": "get_silence", "id": id])
            return Self.respond(status, body)
        }
        write.delete("silence/:id") { _, context in
            let id = context.parameters.get("id") ?? ""
            let (status, body) = await alertmanager.call(["op": "expire_silence", "id": id])
            return Self.respond(status, body)
        }
        read.get("receivers") { _, _ in
            let names = alertmanager.config.receivers.map { ["name": $0.name] }
            return Self.respond(200, Array((try? JSONSerialization.data(withJSONObject: names)) ?? Data()))
        }
        read.get("status") { _, _ in
            let status: [String: Any] = [
                "cluster": ["name": alertmanager.topology.localNodeID, "status": "ready",
                            "peers": alertmanager.topology.current.members.values.filter(\.isReachable).map { ["name": $0.nodeID, "address": $0.peerAddress] }],
                "config": ["original": configText],
                "uptime": rfc3339(ms: startedMs),
                // `version` is the Alertmanager API version Starling reproduces (amtool compares
                // it with its own); Starling's own is `starlingVersion`.
                "versionInfo": ["version": Self.emulatedAlertmanagerVersion, "starlingVersion": StarlingVersion.version,
                                "revision": StarlingVersion.commit ?? "unknown", "branch": "", "buildUser": "", "buildDate": "",
                                "goVersion": StarlingVersion.swift],
            ]
            return Self.respond(200, Array((try? JSONSerialization.data(withJSONObject: status, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()))
        }
        return r
    }
}

// MARK: - Incidents (alert lifecycle)

extension AlertmanagerService {
    /// Follows every alert of the dispatcher with its lifecycle: a firing alert without an open
    /// incident opens one (New); an open incident whose alert resolved (or left the store) is
    /// resolved unless manual resolution is required; timers escalate. Returns the incidents
    /// that changed (to replicate).
    /// An incident whose alert is not in the store resolves only once this node has run the
    /// alertmanager for `absentResolvesAfterMs` (the resolve timeout): right after a takeover
    /// the store is empty until senders post their alerts again.
    static func followIncidents(_ s: inout State, dispatcher d: Dispatcher, policy: EscalationPolicy, absentResolvesAfterMs: Int64,
                                nowMs now: Int64) -> [AlertLifecycle] {
        var changed: [AlertLifecycle] = []
        var seen = Set<UInt64>()
        for a in d.alerts.values {
            let fp = a.fingerprint.rawValue
            seen.insert(fp)
            let firing = !a.isResolved(atMs: now)
            if var inc = s.incidents[fp], inc.isOpen {
                let before = inc
                if firing { inc.onConditionFiring(nowMs: now) } else { inc.onConditionCleared(nowMs: now) }
                _ = inc.tick(nowMs: now)
                s.incidents[fp] = inc
                if inc != before { changed.append(inc) }
            } else if firing {
                // One incident per firing episode: the id names the alert and when it started,
                // so a successor rebuilding from the same alert opens the same incident.
                let id = "\(a.fingerprint)-\(a.startsAtMs)"
                guard s.incidents[fp]?.id != id else { continue }
                // The first escalation policy matching the alert sets its timers.
                let inc = AlertLifecycle(id: id, policy: d.config.escalation(for: a.labels, base: policy).0, nowMs: now)
                s.incidents[fp] = inc
                changed.append(inc)
            }
        }
        for (fp, var inc) in s.incidents where inc.isOpen && !seen.contains(fp) {
            guard now - s.leadingSinceMs >= absentResolvesAfterMs else {
                // Timers still run while the alert is waited for.
                let before = inc
                _ = inc.tick(nowMs: now)
                s.incidents[fp] = inc
                if inc != before { changed.append(inc) }
                continue
            }
            let before = inc
            inc.onConditionCleared(nowMs: now)
            s.incidents[fp] = inc
            if inc != before { changed.append(inc) }
        }
        // Resolved incidents are kept for the notification-log retention, then dropped.
        s.incidents = s.incidents.filter { $0.value.isOpen || now - $0.value.sinceMs < 120 * 3_600_000 }
        return changed
    }

    /// Writes incidents as records (`starling_incident{fp, spec}` = update time), with their
    /// last 20 transitions (the record is a label value; the node keeps the whole history).
    func replicateIncidents(_ list: [AlertLifecycle]) {
        let now = nowMs()
        let series = list.map { inc -> SeriesSamples in
            let spec = (try? JSONEncoder().encode(Self.bounded(inc))) ?? Data()
            let fp = inc.id.split(separator: "-").first.map(String.init) ?? inc.id
            let labels = Labels(["__name__": "starling_incident", "fp": fp, "spec": String(decoding: spec, as: UTF8.self)])
            return SeriesSamples(labels: labels, samples: [Sample(now, Double(now))])
        }
        pendingSilenceWrites.withLock { $0 += series }
    }

    static func bounded(_ inc: AlertLifecycle) -> AlertLifecycle {
        guard inc.history.count > 20, var o = (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(inc))) as? [String: Any],
              let h = o["history"] as? [Any] else { return inc }
        o["history"] = Array(h.suffix(20))
        o["historyDropped"] = inc.historyDropped + inc.history.count - 20
        guard let data = try? JSONSerialization.data(withJSONObject: o), let out = try? JSONDecoder().decode(AlertLifecycle.self, from: data) else { return inc }
        return out
    }

    /// The latest record of every incident.
    static func readIncidents(_ q: any Querier, nowMs: Int64, lookbackMs: Int64) async throws -> [UInt64: AlertLifecycle] {
        let set = try await q.select([.eq("__name__", "starling_incident")], hints: SelectHints(startMs: nowMs - lookbackMs, endMs: nowMs))
        var latest: [UInt64: (Int64, String)] = [:]
        while let s = try await set.next() {
            guard let fp = s.labels.get("fp").flatMap({ UInt64($0, radix: 16) }), let spec = s.labels.get("spec") else { continue }
            let last = s.chunks.map(\.maxTimeMs).max() ?? 0
            if (latest[fp]?.0 ?? .min) < last { latest[fp] = (last, spec) }
        }
        var out: [UInt64: AlertLifecycle] = [:]
        for (fp, (_, spec)) in latest {
            if let inc = try? JSONDecoder().decode(AlertLifecycle.self, from: Data(spec.utf8)) { out[fp] = inc }
        }
        return out
    }

    static func render(_ inc: AlertLifecycle, alert: StarlingAlerting.Alert?) -> [String: Any] {
        func actor(_ a: AlertLifecycle.Actor) -> String {
            switch a {
            case .system: "system"
            case .user(let u): u
            }
        }
        var labels: [String: String] = [:]
        for l in alert?.labels.array ?? [] { labels[l.name] = l.value }
        var o: [String: Any] = [
            "id": inc.id, "state": inc.state.rawValue, "severity": inc.severity.rawValue, "since": rfc3339(ms: inc.sinceMs),
            "conditionActive": inc.conditionActive, "labels": labels,
            "history": inc.history.map { t -> [String: Any] in
                ["from": t.from?.rawValue ?? NSNull(), "to": t.to.rawValue, "at": rfc3339(ms: t.atMs), "by": actor(t.actor),
                 "reason": t.reason.rawValue, "comment": t.comment, "severity": t.severity.rawValue]
            },
            "historyDropped": inc.historyDropped,
        ]
        if let from = inc.acknowledgedFrom { o["acknowledgedFrom"] = from.rawValue }
        if let exp = inc.acknowledgementExpiresAtMs { o["acknowledgementExpiresAt"] = rfc3339(ms: exp) }
        if let due = inc.nextDeadlineMs { o["nextTransitionAt"] = rfc3339(ms: due) }
        return o
    }

    /// `list_incidents` and `incident_action`, run where the alertmanager runs.
    func executeIncidentOp(_ name: String, _ op: [String: Any], nowMs now: Int64) -> (Int, Any) {
        switch name {
        case "list_incidents":
            let includeResolved = op["all"] as? Bool ?? false
            let list: [[String: Any]] = state.withLock { s in
                let inhibitor = s.dispatcher.map { d in Inhibitor(rules: d.config.dependencies, alerts: d.alerts.values, nowMs: now) }
                return s.incidents.sorted { $0.value.sinceMs > $1.value.sinceMs }.compactMap { fp, inc in
                    guard includeResolved || inc.isOpen else { return nil }
                    let alert = s.dispatcher?.alerts[AlertFingerprint(rawValue: fp)]
                    var o = Self.render(inc, alert: alert)
                    // Linked to the failed upstream it depends on (docs/alerting.md, "Dependencies").
                    if let alert, let c = inhibitor?.probableCause(alert.labels) {
                        var l: [String: String] = [:]
                        for x in c.labels.array { l[x.name] = x.value }
                        o["probableCause"] = ["fingerprint": c.fingerprint.description, "labels": l, "via": c.via]
                    }
                    if let alert, let d = s.dispatcher, let name = d.config.escalation(for: alert.labels, base: EscalationPolicy()).1 {
                        o["escalationPolicy"] = name
                    }
                    return o
                }
            }
            return (200, list)
        case "incident_action":
            guard let id = op["id"] as? String, let action = op["action"] as? String, let by = op["by"] as? String else {
                return (400, "incident action needs id, action and by")
            }
            let comment = op["comment"] as? String ?? ""
            let expires = (op["expiresInMs"] as? NSNumber)?.int64Value
            let result: Result<AlertLifecycle, LifecycleError>? = state.withLock { s in
                guard let found = s.incidents.first(where: { $0.value.id == id }) else { return nil }
                let fp = found.key
                var inc = found.value
                do {
                    switch action {
                    case "acknowledge": _ = try inc.acknowledge(by: by, comment: comment, nowMs: now, expiresAfterMs: expires)
                    case "unacknowledge": _ = try inc.unacknowledge(by: by, comment: comment, nowMs: now)
                    default: _ = try inc.resolve(by: by, comment: comment, nowMs: now)
                    }
                } catch let e as LifecycleError {
                    return .failure(e)
                } catch {
                    return .failure(.invalid(action: action, state: inc.state))
                }
                s.incidents[fp] = inc
                return .success(inc)
            }
            switch result {
            case nil: return (404, "incident \(id) not found")
            case .failure(let e)?: return (409, "\(e)")
            case .success(let inc)?:
                replicateIncidents([inc])
                wakeup.signal()
                return (200, Self.render(inc, alert: nil))
            }
        default:
            return (400, "unknown operation \(name)")
        }
    }
}

/// `/api/v1/incidents`: the alert lifecycle (New → Acknowledged → Resolved, with escalation).
struct IncidentRoutes: Sendable {
    let alertmanager: AlertmanagerService
    let metrics: StarlingMetrics

    func routes() -> RouteCollection<StarlingRequestContext> {
        let r = RouteCollection(context: StarlingRequestContext.self)
            .add(middleware: OffEventLoopMiddleware())
        r.group("api/v1/incidents").add(middleware: RequirePermission(.read, metrics: metrics)).get { request, _ in
            let all = request.uri.queryParameters.get("state") == "all"
            let (status, body) = await alertmanager.call(["op": "list_incidents", "all": all])
            return AlertmanagerRoutes.respond(status, body)
        }
        for action in ["acknowledge", "unacknowledge", "resolve"] {
            r.group("api/v1/incidents").add(middleware: RequirePermission(.write, metrics: metrics)).post(":id/\(action)") { request, context in
                let id = context.parameters.get("id") ?? ""
                let buffer = try await request.body.collect(upTo: 64 << 10)
                let body = buffer.readableBytes == 0 ? [:] : ((try? JSONSerialization.jsonObject(with: Data(buffer: buffer))) as? [String: Any] ?? [:])
                var op: [String: Any] = ["op": "incident_action", "id": id, "action": action, "by": context.principal?.name ?? "unknown",
                                         "comment": body["comment"] as? String ?? ""]
                if let exp = body["expiresIn"] as? String {
                    guard let ms = parsePrometheusDurationMs(exp), ms > 0 else {
                        throw APIError.badData("invalid expiresIn \(quoteLabelValue(exp)): expected a duration such as 30m")
                    }
                    op["expiresInMs"] = ms
                }
                let (status, resp) = await alertmanager.call(op)
                return AlertmanagerRoutes.respond(status, resp)
            }
        }
        return r
    }
}

/// `GET /api/v1/maintenance-windows`: the configured windows, whether each is open now and since
/// when.
struct MaintenanceWindowRoutes: Sendable {
    let windows: [MaintenanceWindow]
    let metrics: StarlingMetrics
    let nowMs: @Sendable () -> Int64

    func routes() -> RouteCollection<StarlingRequestContext> {
        let r = RouteCollection(context: StarlingRequestContext.self)
            .add(middleware: OffEventLoopMiddleware())
        r.group("api/v1/maintenance-windows").add(middleware: RequirePermission(.read, metrics: metrics)).get { _, _ in
            let now = nowMs()
            let list: [[String: Any]] = windows.map { w in
                var o: [String: Any] = ["name": w.name, "matchers": formatMatchers(w.matchers), "timeZone": w.timeZone.identifier]
                switch w.schedule {
                case .weekly(let days, let start, let dur):
                    o["weekly"] = ["days": days.sorted(), "start": String(format: "%02d:%02d", start / 60, start % 60), "durationSeconds": dur / 1000]
                case .cron(let c, let dur):
                    o["cron"] = c.source
                    o["durationSeconds"] = dur / 1000
                }
                if let opened = w.openedAtMs(atMs: now) {
                    o["open"] = true
                    o["openedAt"] = rfc3339(ms: opened)
                } else {
                    o["open"] = false
                }
                return o
            }
            let data = (try? JSONSerialization.data(withJSONObject: ["status": "success", "data": list], options: [.sortedKeys])) ?? Data()
            return AlertmanagerRoutes.respond(200, Array(data))
        }
        return r
    }
}
