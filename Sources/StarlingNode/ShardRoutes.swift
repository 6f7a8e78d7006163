import Hummingbird
import NIOCore
import StarlingCluster
import StarlingCore
import StarlingHTTP
import StarlingPlacement
import StarlingStorage

/// `GET /api/v1/cluster/shards[?shard=N…]` (role reader or admin): this node's placement — for
/// every shard its replicas (placement role, liveness, completeness), its leader and its state —
/// and `GET /api/v1/cluster/digests[?shard=N…][&until=T]`: the digests of this node's own copy
/// per shard and day block, as documented in docs/api.md.
struct ShardRoutes: Sendable {
    let topology: ClusterTopology
    let database: @Sendable () throws -> TimeSeriesDB
    let executor: BlockingExecutor
    let metrics: StarlingMetrics

    func routes() -> RouteCollection<StarlingRequestContext> {
        let r = RouteCollection(context: StarlingRequestContext.self)
            .add(middleware: OffEventLoopMiddleware())
            .add(middleware: RequirePermission(.read, metrics: metrics))
        r.get("api/v1/cluster/shards") { request, _ in
            let snapshot = topology.current
            let count = snapshot.placement.layout.shardCount
            var only: [ShardID]?
            let raw = request.uri.queryParameters.getAll("shard")
            if !raw.isEmpty {
                only = try raw.map { text in
                    guard let n = Int(text), (0..<count).contains(n) else {
                        throw APIError.badData("invalid parameter \"shard\": \(quoteLabelValue(String(text))); expected a shard number in 0...\(count - 1)")
                    }
                    return ShardID(n)
                }
            }
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(bytes: Self.render(snapshot, only: only, sync: topology.sync.snapshot))))
        }
        // This node's own copy of shards, digested per (shard, day block): what anti-entropy
        // compares. Replicas holding the same samples show the same digests.
        r.get("api/v1/cluster/digests") { request, _ in
            let count = topology.current.placement.layout.shardCount
            var only: Set<ShardID>?
            let raw = request.uri.queryParameters.getAll("shard")
            if !raw.isEmpty {
                only = Set(try raw.map { text in
                    guard let n = Int(text), (0..<count).contains(n) else {
                        throw APIError.badData("invalid parameter \"shard\": \(quoteLabelValue(String(text))); expected a shard number in 0...\(count - 1)")
                    }
                    return ShardID(n)
                })
            }
            var untilMs = Int64.max
            if let t = request.uri.queryParameters.get("until") {
                guard let seconds = Double(t), seconds.isFinite else {
                    throw APIError.badData("invalid parameter \"until\": \(quoteLabelValue(String(t))); expected a Unix time in seconds")
                }
                untilMs = Int64((seconds * 1000).rounded(.down))
            }
            let db = try database()
            let until = untilMs
            let wanted = only
            let digests: [ShardBlockDigest] = try await executor.run {
                var out: [ShardBlockDigest] = []
                for shard in try db.heldShards().sorted() where wanted?.contains(shard) ?? true {
                    for block in try db.blocks(of: shard) {
                        let d = try db.digest(of: shard, block: block, untilMs: until)
                        if d.series > 0 { out.append(d) }
                    }
                }
                return out
            }
            var w = JSONWriter(reserving: 128 + digests.count * 110)
            w.beginObject()
            w.field("status", "success")
            w.key("data")
            w.beginObject()
            w.field("node", topology.localNodeID)
            w.key("blocks")
            w.beginArray()
            for d in digests {
                w.object { w in
                    w.field("shard", Int64(d.shard.rawValue))
                    w.field("block_start_ms", Keyspace.blockStartMs(d.block))
                    w.field("digest", String(d.value, radix: 16))
                    w.field("series", Int64(d.series))
                    w.field("samples", Int64(d.samples))
                }
            }
            w.endArray()
            w.endObject()
            w.endObject()
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: w.bytes)))
        }
        return r
    }

    /// `{"status":"success","data":{"placement_version":…,"shard_count":…,"replication_factor":…,
    /// "members":[…],"shards":[{"shard":0,"state":"active","leader":…,"replicas":[…]}]}}`.
    static func render(_ s: ClusterSnapshot, only: [ShardID]?, sync: ShardCompleteness) -> [UInt8] {
        let p = s.placement
        let shards = only ?? (0..<p.layout.shardCount).map { ShardID($0) }
        var w = JSONWriter(reserving: 256 + shards.count * 220)
        w.beginObject()
        w.field("status", "success")
        w.key("data")
        w.beginObject()
        w.field("local", s.localNodeID)
        w.field("placement_version", String(p.version, radix: 16))
        w.field("shard_count", Int64(p.layout.shardCount))
        w.field("replication_factor", Int64(min(p.settings.replicationFactor, p.members.count)))
        w.field("replication_factor_configured", Int64(p.settings.replicationFactor))
        w.key("members")
        w.beginArray()
        for m in p.members {
            w.object { w in
                w.field("id", m.nodeID)
                w.field("zone", m.zone)
                w.field("state", m.state.description)
                w.field("liveness", s.members[m.nodeID]?.liveness.description ?? (m.nodeID == s.localNodeID ? "alive" : "unknown"))
                var replicas = 0
                for shard in 0..<p.layout.shardCount where p.writeSet(of: ShardID(shard)).contains(m.nodeID) { replicas += 1 }
                w.field("shard_replicas", Int64(replicas))
            }
        }
        w.endArray()
        w.key("shards")
        w.beginArray()
        for shard in shards {
            let replicas = p.replicas(of: shard)
            w.object { w in
                w.field("shard", Int64(shard.rawValue))
                let complete = { (node: String) in sync.isComplete(node, shard, localNodeID: s.localNodeID) }
                let state = replicas.contains { $0.role == .joining } ? "joining"
                    : replicas.contains { $0.role == .handingOff } ? "handing_off"
                    : replicas.contains { s.isReachable($0.nodeID) && !complete($0.nodeID) } ? "syncing" : "active"
                w.field("state", state)
                w.key("leader")
                if let leader = p.leader(of: shard, isAlive: { s.isReachable($0) }) { w.string(leader) } else { w.null() }
                w.key("replicas")
                w.beginArray()
                for r in replicas {
                    w.object { w in
                        w.field("node", r.nodeID)
                        w.field("role", r.role.description)
                        w.field("reachable", s.isReachable(r.nodeID))
                        w.field("complete", complete(r.nodeID))
                    }
                }
                w.endArray()
            }
        }
        w.endArray()
        w.endObject()
        w.endObject()
        return w.bytes
    }
}
