import StarlingCore
import StarlingPlacement
import Synchronization

/// Which shards each node holds **complete** — every acknowledged write of the shard is in its
/// copy — as this node knows it (docs/cluster.md, "Completeness").
///
/// This node's own set follows placement: a shard this node gains (it enters the shard's write
/// set) is incomplete until an anti-entropy pass that started after the gain has pulled it from a
/// complete source; a shard it loses (leaves the write set) stops being complete at once, since
/// writes no longer reach it. Other nodes' sets come from `shard_state` exchanges.
///
/// Readers use it to ask complete replicas first, the anti-entropy pass to pull from complete
/// sources, a joining node to wait until the other new owners of its shards are complete before
/// it turns active, and a leaving node to wait until its shards' new owners are.
///
/// A value type fed placements and reports; `ShardSync` wraps it for concurrent use.
public struct ShardCompleteness: Sendable {
    /// Shards this node holds complete.
    public private(set) var local: ShardSet
    /// Shards in this node's write set under the last placement applied; nil before the first.
    public private(set) var owned: ShardSet?
    /// Bumped by every placement that gave this node a shard.
    public private(set) var generation: UInt64 = 0
    /// Bumped by every change to what `isComplete` answers (this node's or a peer's set): a
    /// read plan computed at one revision stays right until the next.
    public private(set) var revision: UInt64 = 0
    /// The generation in which each incomplete owned shard was (last) gained.
    private var gainedIn: [ShardID: UInt64] = [:]
    private var peers: [String: PeerReport] = [:]

    public struct PeerReport: Sendable, Equatable {
        public var complete: ShardSet
        public var placementVersion: UInt64
        public var receivedMs: Int64
    }

    /// - Parameter restored: shards this node held complete before it started: for a restarted
    ///   member, the shards it has data of (hints and anti-entropy bring what it missed while
    ///   down, as for any replica that was briefly away); for a new data directory, none.
    public init(restored: ShardSet) {
        local = restored
    }

    /// Applies a new placement. Shards that entered this node's write set become incomplete
    /// (unless the copy was kept complete, i.e. it never left the write set); shards that left
    /// it are no longer complete. On the first placement, restored shards this node does not own
    /// are dropped from the set and owned ones not restored are incomplete.
    /// - Returns: the shards gained and lost.
    @discardableResult
    public mutating func apply(_ placement: Placement, localNodeID: String) -> (gained: ShardSet, lost: ShardSet) {
        var now = ShardSet()
        for s in 0..<placement.layout.shardCount where placement.writeSet(of: ShardID(s)).contains(localNodeID) {
            now.insert(ShardID(s))
        }
        var gained = ShardSet()
        var lost = ShardSet()
        if let before = owned {
            for s in now where !before.contains(s) { gained.insert(s) }
            for s in before where !now.contains(s) { lost.insert(s) }
        } else {
            for s in now where !local.contains(s) { gained.insert(s) }
            for s in local where !now.contains(s) { lost.insert(s) }
        }
        if !gained.isEmpty { generation += 1 }
        for s in gained {
            local.remove(s)
            gainedIn[s] = generation
        }
        for s in lost {
            local.remove(s)
            gainedIn[s] = nil
        }
        owned = now
        revision += 1
        return (gained, lost)
    }

    /// A sync that began at `startedIn` (the generation then) pulled `shards` from a complete
    /// source (or found none needed): those still owned and not gained again since become
    /// complete.
    /// - Returns: the shards that became complete.
    @discardableResult
    public mutating func completed(_ shards: some Sequence<ShardID>, startedIn: UInt64) -> ShardSet {
        var done = ShardSet()
        for s in shards {
            guard owned?.contains(s) ?? false, !local.contains(s), let g = gainedIn[s], g <= startedIn else { continue }
            local.insert(s)
            gainedIn[s] = nil
            done.insert(s)
        }
        if !done.isEmpty { revision += 1 }
        return done
    }

    /// Keeps complete only shards in `held` (a restarted node, once its store is open: shards
    /// without data on disk are pulled before they count as complete).
    public mutating func restrict(to held: ShardSet) {
        for s in local where !held.contains(s) {
            local.remove(s)
            if owned?.contains(s) ?? false { gainedIn[s] = generation }
            revision += 1
        }
    }

    /// Owned shards not complete yet.
    public var incomplete: ShardSet {
        var out = ShardSet()
        for s in owned ?? ShardSet() where !local.contains(s) { out.insert(s) }
        return out
    }

    public mutating func peerReported(_ nodeID: String, complete: ShardSet, placementVersion: UInt64, nowMs: Int64) {
        if peers[nodeID]?.complete != complete { revision += 1 }
        peers[nodeID] = PeerReport(complete: complete, placementVersion: placementVersion, receivedMs: nowMs)
    }

    public mutating func forget(_ nodeID: String) {
        if peers.removeValue(forKey: nodeID) != nil { revision += 1 }
    }

    public func report(of nodeID: String) -> PeerReport? { peers[nodeID] }

    /// Whether `nodeID` holds `shard` complete, as last reported (this node: its own set).
    public func isComplete(_ nodeID: String, _ shard: ShardID, localNodeID: String) -> Bool {
        nodeID == localNodeID ? local.contains(shard) : (peers[nodeID]?.complete.contains(shard) ?? false)
    }
}

/// `ShardCompleteness` shared by the node's services, the querier and the peer handler.
public final class ShardSync: Sendable {
    public let localNodeID: String
    private let state: Mutex<ShardCompleteness>
    private let appliedVersion = Mutex<UInt64?>(nil)

    public init(localNodeID: String, restored: ShardSet) {
        self.localNodeID = localNodeID
        state = Mutex(ShardCompleteness(restored: restored))
    }

    public var snapshot: ShardCompleteness { state.withLock { $0 } }

    /// Applies `placement` unless it is the one applied last.
    @discardableResult
    public func apply(_ placement: Placement) -> (gained: ShardSet, lost: ShardSet) {
        let fresh = appliedVersion.withLock { v -> Bool in
            defer { v = placement.version }
            return v != placement.version
        }
        guard fresh else { return (ShardSet(), ShardSet()) }
        return state.withLock { $0.apply(placement, localNodeID: localNodeID) }
    }

    public var generation: UInt64 { state.withLock { $0.generation } }
    public var localComplete: ShardSet { state.withLock { $0.local } }

    @discardableResult
    public func completed(_ shards: some Sequence<ShardID>, startedIn: UInt64) -> ShardSet {
        state.withLock { $0.completed(shards, startedIn: startedIn) }
    }

    public func peerReported(_ nodeID: String, complete: ShardSet, placementVersion: UInt64, nowMs: Int64) {
        state.withLock { $0.peerReported(nodeID, complete: complete, placementVersion: placementVersion, nowMs: nowMs) }
    }

    public func forget(_ nodeID: String) { state.withLock { $0.forget(nodeID) } }

    public func restrict(to held: ShardSet) { state.withLock { $0.restrict(to: held) } }

    public func isComplete(_ nodeID: String, _ shard: ShardID) -> Bool {
        state.withLock { $0.isComplete(nodeID, shard, localNodeID: localNodeID) }
    }
}
