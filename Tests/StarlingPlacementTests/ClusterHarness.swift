import StarlingCore
import StarlingTestKit
@testable import StarlingPlacement

/// A few nodes' `ShardOwnership` machines driven the way a composition root would: one member
/// list, placements recomputed from it, effects recorded (and member-state announcements applied
/// to the member list), bootstraps completed only when a test says so, peer reports delivered
/// only when a test says so. No I/O, manual clock.
final class ClusterHarness {
    typealias Effect = ShardOwnership.Effect

    struct Bootstrap: Equatable {
        var ticket: ShardOwnership.BootstrapTicket
        var sources: [String]
        var hasLocalData: Bool
    }

    final class Node {
        var machine: ShardOwnership
        var log: [Effect] = []
        /// Running bootstraps by shard, as the shell would track them.
        var bootstraps: [ShardID: Bootstrap] = [:]
        /// The persisted completeness flags.
        var persistedComplete = ShardSet()
        /// Shards with data on disk.
        var stored = ShardSet()
        var readyToLeave = false

        init(machine: ShardOwnership) { self.machine = machine }
    }

    let layout: ShardLayout
    let clock = ManualClock(nowMs: 1_000_000)
    let graceMs: Int64 = 600_000
    var members: [String: PlacementMember] = [:]
    var nodes: [String: Node] = [:]
    private(set) var placement: Placement

    init(shards: Int = 64) {
        layout = ShardLayout(shardCount: shards)
        placement = Placement(members: [], layout: layout)
    }

    var now: Int64 { clock.nowMs }

    /// Starts a node process (new, or restarted with what its store holds) as a member in `state`.
    func start(_ id: String, state: PlacementMember.State, zone: String = "",
               restored: [ShardID: ShardOwnership.Restored] = [:]) {
        let node = Node(machine: ShardOwnership(
            nodeID: id, layout: layout, settings: .init(handoffGraceMs: graceMs), restored: restored))
        for (s, r) in restored {
            node.stored.insert(s)
            if r == .complete { node.persistedComplete.insert(s) }
        }
        nodes[id] = node
        members[id] = PlacementMember(nodeID: id, zone: zone, state: state)
    }

    /// Recomputes placement from the member list and feeds it to every node (what the composition
    /// root does on every membership change).
    @discardableResult
    func publish() -> [String: [Effect]] {
        placement = Placement(members: members.values, layout: layout)
        var out: [String: [Effect]] = [:]
        for id in nodes.keys.sorted() {
            out[id] = run(id) { $0.onPlacementChanged(placement, nowMs: now) }
        }
        return out
    }

    /// Feeds only `id` a placement (e.g. a node whose view lags).
    @discardableResult
    func feed(_ id: String, _ p: Placement) -> [Effect] {
        run(id) { $0.onPlacementChanged(p, nowMs: now) }
    }

    /// Every node tells every other its complete shards (the ShardState RPC / gossip).
    @discardableResult
    func exchangeReports() -> [String: [Effect]] {
        var out: [String: [Effect]] = [:]
        for from in nodes.keys.sorted() {
            let complete = nodes[from]!.machine.completeShards
            for to in nodes.keys.sorted() where to != from {
                out[to, default: []] += run(to) { $0.onPeerShardStates(nodeID: from, complete: complete, nowMs: now) }
            }
        }
        return out
    }

    @discardableResult
    func report(from: String, to: String) -> [Effect] {
        let complete = nodes[from]!.machine.completeShards
        return run(to) { $0.onPeerShardStates(nodeID: from, complete: complete, nowMs: now) }
    }

    /// Completes `id`'s running bootstraps (all, or those passing `filter`).
    @discardableResult
    func completeBootstraps(_ id: String, where filter: (ShardID) -> Bool = { _ in true }) -> [Effect] {
        let node = nodes[id]!
        var effects: [Effect] = []
        for (shard, b) in node.bootstraps.sorted(by: { $0.key < $1.key }) where filter(shard) {
            effects += run(id) { $0.onBootstrapCompleted(b.ticket, nowMs: now) }
        }
        return effects
    }

    @discardableResult
    func tick(_ id: String) -> [Effect] { run(id) { $0.onTick(nowMs: now) } }

    @discardableResult
    func run(_ id: String, _ event: (inout ShardOwnership) -> [Effect]) -> [Effect] {
        let node = nodes[id]!
        let effects = event(&node.machine)
        node.log += effects
        for e in effects { execute(id, node, e) }
        return effects
    }

    /// The shell's side of each effect.
    private func execute(_ id: String, _ node: Node, _ e: Effect) {
        switch e {
        case let .markComplete(s):
            node.persistedComplete.insert(s)
            node.stored.insert(s)
        case let .markIncomplete(s):
            node.persistedComplete.remove(s)
        case let .startBootstrap(t, sources, local):
            precondition(node.bootstraps[t.shard] == nil, "\(id): second bootstrap of \(t.shard)")
            precondition(local == node.stored.contains(t.shard), "\(id): hasLocalData \(local) for \(t.shard)")
            node.bootstraps[t.shard] = Bootstrap(ticket: t, sources: sources, hasLocalData: local)
            node.stored.insert(t.shard)
        case let .updateBootstrapSources(t, sources):
            precondition(node.bootstraps[t.shard]?.ticket == t, "\(id): update of unknown bootstrap \(t)")
            node.bootstraps[t.shard]!.sources = sources
        case let .cancelBootstrap(t):
            precondition(node.bootstraps[t.shard]?.ticket == t, "\(id): cancel of unknown bootstrap \(t)")
            node.bootstraps[t.shard] = nil
        case let .dropShard(s):
            precondition(!node.persistedComplete.contains(s), "\(id): dropping \(s) still marked complete")
            node.stored.remove(s)
        case let .announceMemberState(state):
            members[id]?.state = state
        case .readyToLeave:
            node.readyToLeave = true
        }
        if case let .markComplete(s) = e { node.bootstraps[s] = nil }
    }

    func states(_ id: String) -> [ShardOwnership.LocalState: Int] { nodes[id]!.machine.stateCounts }

    func shards(_ id: String, in state: ShardOwnership.LocalState) -> [ShardID] {
        (0..<layout.shardCount).map(ShardID.init).filter { nodes[id]!.machine.state(of: $0) == state }
    }

    /// Brings up `ids` as a new cluster (everyone joining, nothing stored) and lets them settle
    /// into all-active.
    func bootstrapNewCluster(_ ids: [String]) {
        for id in ids { start(id, state: .joining) }
        publish()  // nothing to copy from anywhere: shards go active, joiners announce active
        publish()
        exchangeReports()
    }
}
