import Foundation
import Hummingbird
import NIOCore
import StarlingAlerting
import StarlingCluster
import StarlingCore
import StarlingHTTP
import StarlingPeerWire
import StarlingPromQL

/// `GET /api/v1/rules` and `GET /api/v1/alerts` in Prometheus's shapes, on every node: groups
/// this node evaluates come from its own `RuleService`, the others from their evaluating node
/// over peer RPC (`rule_groups`). A group whose evaluating node cannot be reached is listed with
/// health `unknown` and the reason as `lastError`, never silently left out.
struct RuleRoutes: Sendable {
    let rules: RuleService
    let transport: any PeerTransport
    let metrics: StarlingMetrics
    let timeoutMs: UInt32

    func routes() -> RouteCollection<StarlingRequestContext> {
        let r = RouteCollection(context: StarlingRequestContext.self)
            .add(middleware: OffEventLoopMiddleware())
            .add(middleware: RequirePermission(.read, metrics: metrics))
        r.get("api/v1/rules") { request, _ in
            let type: String? = request.uri.queryParameters.get("type").map { String($0) }
            guard type == nil || type == "alert" || type == "record" else {
                throw APIError.badData("invalid parameter \"type\": \(quoteLabelValue(type!)); expected alert or record")
            }
            let groups = await self.groups().map { g -> [String: Any] in
                guard let type else { return g }
                var g = g
                g["rules"] = (g["rules"] as? [[String: Any]] ?? []).filter { ($0["type"] as? String) == (type == "alert" ? "alerting" : "recording") }
                return g
            }
            return Self.json(["status": "success", "data": ["groups": groups]])
        }
        r.get("api/v1/alerts") { _, _ in
            var alerts: [[String: Any]] = []
            for g in await self.groups() {
                for rule in g["rules"] as? [[String: Any]] ?? [] { alerts += rule["alerts"] as? [[String: Any]] ?? [] }
            }
            return Self.json(["status": "success", "data": ["alerts": alerts]])
        }
        return r
    }

    static func json(_ object: [String: Any]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Every group in file order, from wherever it is evaluated.
    func groups() async -> [[String: Any]] {
        let local = rules.snapshot
        var byKey: [String: [String: Any]] = [:]
        var remote: [String: [String]] = [:]
        var unreachable: [String: String] = [:]
        for rt in local {
            let key = rt.state.spec.key
            if rt.leading {
                byKey[key] = Self.render(rt.state, defaultIntervalMs: rules.settings.defaultIntervalMs)
            } else if let leader = rules.leader(of: key) {
                remote[leader, default: []].append(key)
            } else {
                unreachable[key] = "no live node holds the group's shard"
            }
        }
        let answers = await withTaskGroup(of: (String, Result<[UInt8], any Error>).self) { group in
            for node in remote.keys {
                group.addTask {
                    do {
                        let frames = try await transport.request(to: node, .ruleGroups, payload: RuleGroupsMessage().encoded(), timeoutMs: timeoutMs)
                        guard let f = frames.last, f.type == .ruleGroupsReply else {
                            throw RuleEvaluationError(message: "unexpected answer \(frames.last?.type.description ?? "none")")
                        }
                        return (node, .success(try RuleGroupsReplyMessage.decode(f.payload).json))
                    } catch {
                        return (node, .failure(error))
                    }
                }
            }
            var out: [(String, Result<[UInt8], any Error>)] = []
            for await a in group { out.append(a) }
            return out
        }
        for (node, result) in answers {
            switch result {
            case .success(let json):
                let obj = (try? JSONSerialization.jsonObject(with: Data(json))) as? [String: Any]
                for g in obj?["groups"] as? [[String: Any]] ?? [] { if let key = g["key"] as? String { byKey[key] = g } }
            case .failure(let e):
                for key in remote[node] ?? [] { unreachable[key] = "evaluating node \(node) did not answer: \(e)" }
            }
        }
        return local.map { rt in
            let key = rt.state.spec.key
            if var g = byKey[key] {
                g["key"] = nil
                return g
            }
            // Listed from its definition: nobody answered for it (or it moved meanwhile).
            var g = Self.render(RuleGroupState(spec: rt.state.spec), defaultIntervalMs: rules.settings.defaultIntervalMs)
            g["key"] = nil
            let reason = unreachable[key] ?? "evaluating node changed while answering"
            g["rules"] = (g["rules"] as? [[String: Any]] ?? []).map { r in
                var r = r
                r["health"] = "unknown"
                r["lastError"] = reason
                return r
            }
            return g
        }
    }

    /// The JSON of the groups this node evaluates, for a peer's `rule_groups` request.
    static func localGroupsJSON(_ rules: RuleService) -> [UInt8] {
        let groups = rules.snapshot.filter(\.leading).map { render($0.state, defaultIntervalMs: rules.settings.defaultIntervalMs) }
        let data = (try? JSONSerialization.data(withJSONObject: ["groups": groups], options: [.sortedKeys])) ?? Data()
        return Array(data)
    }

    /// One group as Prometheus's `/api/v1/rules` renders it, plus its `key`.
    static func render(_ state: RuleGroupState, defaultIntervalMs: Int64) -> [String: Any] {
        let spec = state.spec
        var rules: [[String: Any]] = []
        for (i, rule) in spec.rules.enumerated() {
            let h = state.health[i]
            var r: [String: Any] = [
                "name": rule.name, "query": rule.expr, "health": h.status.rawValue, "lastError": h.lastError ?? "",
                "evaluationTime": h.evaluationSeconds,
                "lastEvaluation": h.lastEvaluationMs.map { rfc3339(ms: $0) } ?? "0001-01-01T00:00:00Z",
            ]
            switch rule {
            case .recording(let rec):
                r["type"] = "recording"
                r["labels"] = Dictionary(rec.labels, uniquingKeysWith: { $1 })
            case .alerting(let a):
                r["type"] = "alerting"
                r["duration"] = Double(a.forMs) / 1000
                r["keepFiringFor"] = Double(a.keepFiringForMs) / 1000
                r["labels"] = Dictionary(a.labels.map { ($0.0, $0.1.source) }, uniquingKeysWith: { $1 })
                r["annotations"] = Dictionary(a.annotations.map { ($0.0, $0.1.source) }, uniquingKeysWith: { $1 })
                let alerts = state.alerting[i]?.active ?? []
                r["alerts"] = alerts.map(renderAlert)
                r["state"] = alerts.contains { $0.state == .firing } ? "firing" : (alerts.isEmpty ? "inactive" : "pending")
            }
            rules.append(r)
        }
        return [
            "key": spec.key, "name": spec.name, "file": spec.source, "rules": rules,
            "interval": Double(spec.intervalMs ?? defaultIntervalMs) / 1000, "limit": spec.limit,
            "evaluationTime": state.lastEvaluationSeconds,
            "lastEvaluation": state.lastEvaluationMs.map { rfc3339(ms: $0) } ?? "0001-01-01T00:00:00Z",
        ]
    }

    static func renderAlert(_ a: RuleAlert) -> [String: Any] {
        var labels: [String: String] = [:]
        for l in a.labels.array { labels[l.name] = l.value }
        var annotations: [String: String] = [:]
        for l in a.annotations.array { annotations[l.name] = l.value }
        return [
            "labels": labels, "annotations": annotations, "state": a.state.rawValue,
            "activeAt": rfc3339(ms: a.activeAtMs), "value": goFormatE(a.value),
        ]
    }

    /// Go's `strconv.FormatFloat(v, 'e', -1, 64)`: how Prometheus prints an alert's value
    /// (`1e+00`, `5e-01`, `1.2325e+02`): the shortest digits that read back exactly.
    static func goFormatE(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == 0 { return v.sign == .minus ? "-0e+00" : "0e+00" }
        // Swift's description is the shortest representation that round-trips; count its
        // significant digits.
        var text = "\(abs(v))"
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) { text = String(text[..<e]) }
        var digits = text.filter(\.isNumber)
        while digits.hasPrefix("0") { digits.removeFirst() }
        while digits.hasSuffix("0") { digits.removeLast() }
        return String(format: "%.\(max(0, digits.count - 1))e", v)
    }
}
