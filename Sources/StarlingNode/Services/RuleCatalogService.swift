import Foundation
import Logging
import ServiceLifecycle
import StarlingAlerting
import StarlingCluster
import StarlingCore
import StarlingPeerWire
import Synchronization

/// Keeps this node's copy of the rule catalog (the groups managed through the rules API,
/// docs/alerting.md) and converges it with the cluster's.
///
/// Changes are made by one node, the coordinator: the leader of the shard `starling/rules`
/// hashes to. Any node takes the API call and forwards it (peer `rules_op`). The coordinator
/// applies the change to its copy, bumping the version, writes the copy to
/// `<data_dir>/rules-catalog.json`, and pushes it to every live node before it answers. Every
/// node also asks the coordinator for its version every `syncInterval`, so a node that was down
/// or partitioned catches up, and a new coordinator that missed a change is sent it by a node
/// that has it: between two copies the higher `(version, digest)` wins.
final class RuleCatalogService: Service, Sendable {
    static let shardKey = "starling/rules"
    static let fileName = "rules-catalog.json"
    /// Most groups the catalog holds (it travels as one document between nodes).
    static let maxGroups = 10_000

    let topology: ClusterTopology
    let transport: any PeerTransport
    let path: String
    let syncInterval: Duration
    let logger: Logger
    let nowMs: @Sendable () -> Int64
    private let catalog: Mutex<RuleCatalog>
    /// Called with every new copy adopted or made here.
    private let listeners = Mutex<[@Sendable (RuleCatalog) -> Void]>([])
    /// Changes are applied one at a time (the coordinator's sequence).
    private let changeLock = AsyncSerial()

    init(dataDir: String, topology: ClusterTopology, transport: any PeerTransport, syncInterval: Duration, logger: Logger,
         nowMs: @escaping @Sendable () -> Int64) throws {
        self.topology = topology
        self.transport = transport
        self.path = (dataDir as NSString).appendingPathComponent(Self.fileName)
        self.syncInterval = syncInterval
        self.logger = logger
        self.nowMs = nowMs
        var loaded = RuleCatalog()
        if FileManager.default.fileExists(atPath: path) {
            do {
                loaded = try JSONDecoder().decode(RuleCatalog.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
            } catch {
                throw NodeError.startup("\(path): cannot read the rule catalog: \(error); move it away to start with the cluster's copy")
            }
        }
        catalog = Mutex(loaded)
    }

    var current: RuleCatalog { catalog.withLock { $0 } }

    func onChange(_ f: @escaping @Sendable (RuleCatalog) -> Void) {
        listeners.withLock { $0.append(f) }
    }

    /// The node that applies changes under the current placement.
    func coordinator() -> String? {
        let snapshot = topology.current
        let shard = snapshot.placement.layout.shard(forHash: XXH64.hash(Array(Self.shardKey.utf8)))
        return snapshot.placement.leader(of: shard, isAlive: { snapshot.isReachable($0) })
    }

    // MARK: Changes

    /// A change to the catalog, as the API asks for it.
    struct Change: Sendable {
        enum Kind: String, Sendable { case set, delete }
        var kind: Kind
        var namespace: String
        /// nil with `delete`: the whole namespace.
        var name: String?
        /// The normalised group (with `set`).
        var yaml: String?
        var by: String

        var json: [String: Any] {
            var o: [String: Any] = ["op": kind.rawValue, "namespace": namespace, "by": by]
            if let name { o["name"] = name }
            if let yaml { o["yaml"] = yaml }
            return o
        }

        init(kind: Kind, namespace: String, name: String?, yaml: String?, by: String) {
            self.kind = kind
            self.namespace = namespace
            self.name = name
            self.yaml = yaml
            self.by = by
        }

        init?(json o: [String: Any]) {
            guard let k = (o["op"] as? String).flatMap(Kind.init(rawValue:)), let ns = o["namespace"] as? String else { return nil }
            self.init(kind: k, namespace: ns, name: o["name"] as? String, yaml: o["yaml"] as? String, by: o["by"] as? String ?? "unknown")
            if k == .set, name == nil || yaml == nil { return nil }
        }
    }

    /// The outcome of a change: an HTTP status, and the catalog version or an error.
    struct ChangeResult: Sendable {
        var status: Int
        var version: UInt64 = 0
        var changed = 0
        /// Nodes holding the new version when the change was acknowledged (this one included).
        var copies = 0
        var error: String?

        static func failure(_ status: Int, _ message: String) -> ChangeResult { ChangeResult(status: status, error: message) }

        var json: [String: Any] {
            if let error { return ["status": "error", "errorType": status == 404 ? "not_found" : (status == 400 ? "bad_data" : "unavailable"), "error": error] }
            return ["status": "success", "data": ["version": NSNumber(value: version), "changed": changed, "copies": copies]]
        }

        init(status: Int, version: UInt64 = 0, changed: Int = 0, copies: Int = 0, error: String? = nil) {
            self.status = status
            self.version = version
            self.changed = changed
            self.copies = copies
            self.error = error
        }

        init(json o: [String: Any]) {
            status = (o["status_code"] as? NSNumber)?.intValue ?? 502
            version = (o["version"] as? NSNumber)?.uint64Value ?? 0
            changed = (o["changed"] as? NSNumber)?.intValue ?? 0
            copies = (o["copies"] as? NSNumber)?.intValue ?? 0
            error = o["error"] as? String
        }

        var wire: [String: Any] {
            var o: [String: Any] = ["status_code": status, "version": NSNumber(value: version), "changed": changed, "copies": copies]
            if let error { o["error"] = error }
            return o
        }
    }

    /// Applies a change where the coordinator runs.
    func change(_ c: Change) async -> ChangeResult {
        guard let node = coordinator() else { return .failure(503, "no node coordinates rule changes: no live node holds the shard of \(Self.shardKey)") }
        if node == topology.localNodeID { return await applyLocally(c) }
        do {
            return ChangeResult(json: try await call(node, c.json, timeoutMs: 15_000))
        } catch {
            return .failure(503, "rule coordinator \(node) did not answer: \(error)")
        }
    }

    private func applyLocally(_ c: Change) async -> ChangeResult {
        await changeLock.run {
            guard self.coordinator() == self.topology.localNodeID else { return .failure(503, "this node no longer coordinates rule changes; retry") }
            let now = self.nowMs()
            var copy = self.current
            let changed: Int
            switch c.kind {
            case .set:
                if copy.group(c.namespace, c.name ?? "") == nil, copy.groups.count >= Self.maxGroups {
                    return .failure(400, "the rule catalog holds \(copy.groups.count) groups, the limit")
                }
                changed = copy.set(namespace: c.namespace, name: c.name ?? "", yaml: c.yaml ?? "", by: c.by, atMs: now) ? 1 : 0
            case .delete:
                changed = copy.delete(namespace: c.namespace, name: c.name, by: c.by, atMs: now)
                if changed == 0 {
                    return .failure(404, c.name.map { "no rule group \(quoteLabelValue($0)) in namespace \(quoteLabelValue(c.namespace))" }
                        ?? "no rule groups in namespace \(quoteLabelValue(c.namespace))")
                }
            }
            if changed > 0 {
                do {
                    try self.adopt(copy)
                } catch {
                    return .failure(500, "cannot store the rule catalog: \(error)")
                }
                self.logger.info("rule catalog changed", metadata: [
                    "version": .stringConvertible(copy.version), "op": .string(c.kind.rawValue), "namespace": .string(c.namespace),
                    "group": .string(c.name ?? "*"), "by": .string(c.by),
                ])
            }
            let copies = changed > 0 ? await self.push(copy) : 0
            return ChangeResult(status: 202, version: copy.version, changed: changed, copies: copies + 1)
        }
    }

    /// Pushes `copy` to every other live node; returns how many took it (or had it already).
    private func push(_ copy: RuleCatalog) async -> Int {
        let snapshot = topology.current
        let others = snapshot.members.values.filter { $0.nodeID != topology.localNodeID && $0.isReachable }.map(\.nodeID)
        guard !others.isEmpty, let doc = try? JSONEncoder().encode(copy),
              let docObject = try? JSONSerialization.jsonObject(with: doc) else { return 0 }
        let op: [String: Any] = ["op": "sync", "version": NSNumber(value: copy.version), "digest": String(copy.digest), "catalog": docObject]
        guard let payload = try? JSONSerialization.data(withJSONObject: op).map({ $0 }) else { return 0 }
        return await withTaskGroup(of: Bool.self) { group in
            for node in others {
                group.addTask { (try? await self.call(node, json: payload, timeoutMs: 3_000)) != nil }
            }
            var n = 0
            for await ok in group where ok { n += 1 }
            return n
        }
    }

    /// Stores `copy` as this node's and tells the listeners.
    private func adopt(_ copy: RuleCatalog) throws {
        let data = try JSONEncoder().encode(copy)
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        catalog.withLock { $0 = copy }
        for f in listeners.withLock({ $0 }) { f(copy) }
    }

    /// Adopts `copy` when it supersedes this node's.
    private func offer(_ copy: RuleCatalog, from node: String) {
        guard copy.supersedes(current) else { return }
        do {
            try adopt(copy)
            logger.info("rule catalog updated", metadata: ["version": .stringConvertible(copy.version), "from": .string(node)])
        } catch {
            logger.error("cannot store the rule catalog", metadata: ["path": .string(path), "error": .string("\(error)")])
        }
    }

    // MARK: Peer RPC

    private func call(_ node: String, _ op: [String: Any], timeoutMs: UInt32) async throws -> [String: Any] {
        try await call(node, json: Array(try JSONSerialization.data(withJSONObject: op)), timeoutMs: timeoutMs)
    }

    private func call(_ node: String, json: [UInt8], timeoutMs: UInt32) async throws -> [String: Any] {
        let frames = try await transport.request(to: node, .rulesOp, payload: PostAlertsMessage(json: json).encoded(), timeoutMs: timeoutMs)
        guard let f = frames.last else { throw RuleEvaluationError(message: "no answer") }
        if f.type == .error { throw RuleEvaluationError(message: (try? ErrorMessage.decode(f.payload).message) ?? "error") }
        guard f.type == .rulesOpReply, let o = try JSONSerialization.jsonObject(with: Data(PostAlertsMessage.decode(f.payload).json)) as? [String: Any] else {
            throw RuleEvaluationError(message: "unexpected answer \(f.type)")
        }
        return o
    }

    /// A peer's `rules_op`: a change (this node coordinates) or a sync.
    func handlePeer(_ frame: PeerFrame) async -> [ClusterPeerHandler.Reply] {
        guard let m = try? PostAlertsMessage.decode(frame.payload),
              let op = (try? JSONSerialization.jsonObject(with: Data(m.json))) as? [String: Any] else {
            return [(.error, ErrorMessage(code: .malformed, message: "rules_op: undecodable body").encoded())]
        }
        let reply: [String: Any]
        switch op["op"] as? String {
        case "set", "delete":
            guard let c = Change(json: op) else {
                return [(.error, ErrorMessage(code: .malformed, message: "rules_op: malformed change").encoded())]
            }
            reply = await applyLocally(c).wire
        case "sync":
            if let doc = op["catalog"], let data = try? JSONSerialization.data(withJSONObject: doc) {
                guard let copy = try? JSONDecoder().decode(RuleCatalog.self, from: data) else {
                    return [(.error, ErrorMessage(code: .malformed, message: "rules_op: undecodable catalog").encoded())]
                }
                offer(copy, from: "peer")
            }
            let mine = current
            var r: [String: Any] = ["version": NSNumber(value: mine.version), "digest": String(mine.digest)]
            let theirs = ((op["version"] as? NSNumber)?.uint64Value ?? 0, UInt64(op["digest"] as? String ?? "") ?? 0)
            if (mine.version, mine.digest) > theirs, let data = try? JSONEncoder().encode(mine), let o = try? JSONSerialization.jsonObject(with: data) {
                r["catalog"] = o
            }
            reply = r
        default:
            return [(.error, ErrorMessage(code: .malformed, message: "rules_op: unknown operation").encoded())]
        }
        let data = (try? JSONSerialization.data(withJSONObject: reply)) ?? Data("{}".utf8)
        return [(.rulesOpReply, PostAlertsMessage(json: Array(data)).encoded())]
    }

    // MARK: Sync loop

    /// One exchange with the coordinator: takes its copy if newer, sends ours if ours is.
    func syncOnce() async {
        guard let node = coordinator(), node != topology.localNodeID else { return }
        let mine = current
        do {
            let reply = try await call(node, ["op": "sync", "version": NSNumber(value: mine.version), "digest": String(mine.digest)], timeoutMs: 5_000)
            if let doc = reply["catalog"], let data = try? JSONSerialization.data(withJSONObject: doc),
               let copy = try? JSONDecoder().decode(RuleCatalog.self, from: data) {
                offer(copy, from: node)
            } else {
                let theirs = ((reply["version"] as? NSNumber)?.uint64Value ?? 0, UInt64(reply["digest"] as? String ?? "") ?? 0)
                if (mine.version, mine.digest) > theirs, let data = try? JSONEncoder().encode(mine), let o = try? JSONSerialization.jsonObject(with: data) {
                    _ = try? await call(node, ["op": "sync", "version": NSNumber(value: mine.version), "digest": String(mine.digest), "catalog": o], timeoutMs: 5_000)
                    logger.info("sent the rule catalog to the coordinator, whose copy was older", metadata: ["coordinator": .string(node), "version": .stringConvertible(mine.version)])
                }
            }
        } catch {
            logger.debug("rule catalog sync failed", metadata: ["coordinator": .string(node), "error": .string("\(error)")])
        }
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.syncOnce()
                guard (try? await Task.sleep(for: self.syncInterval)) != nil else { return }
            }
        }
    }

}

/// Runs async closures one at a time, in call order.
actor AsyncSerial {
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func run<T: Sendable>(_ body: @Sendable () async -> T) async -> T {
        if busy {
            await withCheckedContinuation { waiters.append($0) }
        } else {
            busy = true
        }
        defer {
            if waiters.isEmpty { busy = false } else { waiters.removeFirst().resume() }
        }
        return await body()
    }
}
