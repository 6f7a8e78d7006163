import StarlingCore
import StarlingPeerWire
import StarlingPlacement

/// When a membership change may complete (docs/cluster.md, "Membership changes"): a joining
/// node turns active, a leaving node goes, only once every new owner of the shards involved
/// holds them complete — so the switch never leaves a shard read only from copies still
/// pulling their history. Pure functions of a snapshot and completeness.
public enum Handover {
    /// Shards that still wait, with the nodes that are not complete yet for each.
    public struct Pending: Sendable, Equatable, CustomStringConvertible {
        public var waiting: [ShardID: [String]] = [:]

        public var isEmpty: Bool { waiting.isEmpty }

        public var description: String {
            guard !waiting.isEmpty else { return "nothing pending" }
            var byNode: [String: Int] = [:]
            for nodes in waiting.values { for n in nodes { byNode[n, default: 0] += 1 } }
            let nodes = byNode.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
            return "\(waiting.count) shard(s) not complete yet on their new owners (\(nodes))"
        }
    }

    /// What a joining node waits for before it announces `active`: every shard it owns is
    /// complete here, and every other reachable new owner (a `P_write(s)` member not in
    /// `P_read(s)`, moved there by the same change) of a shard this node owns reports it complete.
    public static func joinPending(_ snapshot: ClusterSnapshot, _ sync: ShardCompleteness) -> Pending {
        var out = Pending()
        let me = snapshot.localNodeID
        let p = snapshot.placement
        for s in 0..<p.layout.shardCount {
            let shard = ShardID(s)
            let owners = p.writeReplicas(of: shard)
            guard owners.contains(me) else { continue }
            let read = p.readReplicas(of: shard)
            var nodes: [String] = []
            if !sync.isComplete(me, shard, localNodeID: me) { nodes.append(me) }
            for m in owners where m != me && !read.contains(m) && snapshot.isReachable(m) && !sync.isComplete(m, shard, localNodeID: me) {
                nodes.append(m)
            }
            if !nodes.isEmpty { out.waiting[shard] = nodes }
        }
        return out
    }

    /// What a leaving node waits for before it goes: for every shard it still serves reads of
    /// but no longer owns (`P_read(s)` without `P_write(s)`), every reachable owner reports the
    /// shard complete.
    public static func leavePending(_ snapshot: ClusterSnapshot, _ sync: ShardCompleteness) -> Pending {
        var out = Pending()
        let me = snapshot.localNodeID
        let p = snapshot.placement
        for s in 0..<p.layout.shardCount {
            let shard = ShardID(s)
            let owners = p.writeReplicas(of: shard)
            guard !owners.contains(me), p.readReplicas(of: shard).contains(me) else { continue }
            let nodes = owners.filter { snapshot.isReachable($0) && !sync.isComplete($0, shard, localNodeID: me) }
            if !nodes.isEmpty { out.waiting[shard] = nodes }
        }
        return out
    }
}

/// Exchanges completeness reports (`shard_state`) with every reachable member: both sides learn
/// the other's complete shards in one round trip.
public struct ShardStateExchange: Sendable {
    public let topology: ClusterTopology
    let transport: any PeerTransport
    let timeoutMs: UInt32
    let nowMs: @Sendable () -> Int64

    public init(topology: ClusterTopology, transport: any PeerTransport, timeoutMs: UInt32 = 2_000,
                nowMs: @escaping @Sendable () -> Int64) {
        self.topology = topology
        self.transport = transport
        self.timeoutMs = timeoutMs
        self.nowMs = nowMs
    }

    /// One exchange with every reachable member; returns how many answered.
    @discardableResult
    public func exchange() async -> Int {
        let snapshot = topology.current
        let sync = topology.sync
        let others = snapshot.members.values.filter { $0.nodeID != snapshot.localNodeID && $0.isReachable }.map(\.nodeID)
        for (id, m) in snapshot.members where !m.isReachable && id != snapshot.localNodeID { sync.forget(id) }
        guard !others.isEmpty else { return 0 }
        let payload = ShardStateMessage(nodeID: snapshot.localNodeID, complete: sync.localComplete).encoded()
        let transport = self.transport
        let timeoutMs = self.timeoutMs
        return await withTaskGroup(of: Bool.self) { group in
            for node in others {
                group.addTask {
                    guard let frames = try? await transport.request(to: node, .shardState, payload: payload, timeoutMs: timeoutMs),
                          let frame = frames.last, frame.type == .shardState,
                          let report = try? ShardStateMessage.decode(frame.payload)
                    else { return false }
                    sync.peerReported(node, complete: report.complete, placementVersion: frame.placementVersion, nowMs: self.nowMs())
                    return true
                }
            }
            var n = 0
            for await ok in group where ok { n += 1 }
            return n
        }
    }
}
