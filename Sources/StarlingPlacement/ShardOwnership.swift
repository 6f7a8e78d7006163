import StarlingCore

/// One node's view of the shards it holds: which to fetch, which it serves as complete, which to
/// keep for a while and which to delete — a pure state machine fed events with `nowMs`, returning
/// effects for the shell (storage, peer RPC, membership) to carry out in order.
///
/// Per shard:
///
/// ```
///                 in P_write, no complete copy             bootstrap completed
///   notOwned ───────────────────────────────► bootstrapping ───────────────────► active
///      ▲                                          │  ▲                          │   ▲
///      │ dropShard: grace passed and              │  │ in P_write again         │   │ in P_write
///      │ every P_write(s) member reports          ▼  │ (stale: re-sync)         ▼   │ again
///      │ the shard complete                     retired ◄──────────────── handingOff
///      └───────────────────────────────────────────┘     out of P_read    (in P_read only:
///                                                          and P_write     leaving, still
///                                                                          complete, serving)
/// ```
/// (`active` goes straight to `retired` when it leaves both tables at once.)
///
/// - **active / handingOff** are *complete*: the copy holds every acknowledged write (modulo
///   hints in flight) because the node received the shard's writes without interruption since
///   its copy was complete. Only these serve reads as complete and count as bootstrap sources.
/// - **retired**: data kept but no longer receiving writes, so stale from the moment it retired;
///   it is never served as complete again. Getting the shard back means a bootstrap (which can
///   be incremental: `hasLocalData`).
/// - A bootstrap with nobody to copy from (no complete replica exists: a brand-new cluster)
///   completes at once.
///
/// Member state: a `joining` node is told to announce `active` once every shard it owns in
/// `P_write` is active; a `leaving` node is told it may go once every `P_write(s)` member reports
/// every shard it still holds as complete. Both also wait until every other member that is a new
/// owner of some shard (in `P_write(s)`, not `P_read(s)`: a balancing move between uninvolved
/// members) reports that shard complete, because their announcement ends the handover for the
/// whole cluster and retires the old owners.
///
/// Completeness survives restarts through `markComplete` / `markIncomplete`, which the shell
/// persists (a flag per shard in the store) and passes back as `restored` after a restart.
public struct ShardOwnership: Sendable {
    public struct Settings: Sendable, Hashable {
        /// How long a former owner keeps a shard's data after it stopped being a replica, in
        /// milliseconds, and only if every new owner also reports the shard complete. Default
        /// 600_000 (10 minutes): long enough to ride out placement flapping (a member that
        /// comes back within the grace re-syncs incrementally instead of from scratch), short
        /// enough that disk space returns soon after a rebalance. `cluster.handoff_grace`.
        public var handoffGraceMs: Int64

        public static let `default` = Settings(handoffGraceMs: 600_000)

        public init(handoffGraceMs: Int64) {
            self.handoffGraceMs = handoffGraceMs
        }
    }

    /// This node's state for one shard.
    public enum LocalState: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
        /// No data, not a replica.
        case notOwned = 0
        /// A new owner (in `P_write(s)`) fetching the shard; receives writes, not complete.
        case bootstrapping = 1
        /// Owner with a complete copy.
        case active = 2
        /// In `P_read(s)` but not `P_write(s)` (this node is leaving): complete, still serving
        /// and receiving writes while the new owners bootstrap.
        case handingOff = 3
        /// No longer a replica (or a stale copy): data kept until the handoff grace has passed
        /// and every new owner is complete, then dropped. Never served as complete.
        case retired = 4

        /// Whether the copy is complete: may answer reads as complete and serve bootstraps.
        public var isComplete: Bool { self == .active || self == .handingOff }

        public var description: String {
            switch self {
            case .notOwned: "not_owned"
            case .bootstrapping: "bootstrapping"
            case .active: "active"
            case .handingOff: "handing_off"
            case .retired: "retired"
            }
        }
    }

    /// What the store holds for a shard at startup.
    public enum Restored: Sendable, Hashable {
        /// The shard was complete when the node stopped (the persisted `markComplete` flag).
        /// Trusted only if the first placement still lists this node in `P_read(s)`, i.e. the
        /// cluster kept counting it as a complete replica while it was down (hints and
        /// anti-entropy fill the gap). Otherwise it is a stale copy.
        case complete
        /// Some data without the completeness flag: an interrupted bootstrap or a retired copy.
        case partial
    }

    /// Identifies one bootstrap attempt. A completion carrying an older generation is ignored:
    /// the shard left and re-entered this node's `P_write` meanwhile, so writes were missed.
    public struct BootstrapTicket: Hashable, Sendable, CustomStringConvertible {
        public var shard: ShardID
        public var generation: UInt64

        public init(shard: ShardID, generation: UInt64) {
            self.shard = shard
            self.generation = generation
        }

        public var description: String { "shard \(shard) #\(generation)" }
    }

    /// What the shell must do, in the order given.
    public enum Effect: Hashable, Sendable, CustomStringConvertible {
        /// Persist "my copy of this shard is complete" (before serving it as such after a restart).
        case markComplete(ShardID)
        /// Persist "my copy is not complete" — always emitted before the copy is treated as
        /// incomplete, so a crash can never resurrect a stale copy as complete.
        case markIncomplete(ShardID)
        /// Fetch the shard from the first source that answers, in order (complete replicas;
        /// those that reported the shard complete first, spread over replicas by shard number).
        /// `hasLocalData`: data is already present (a stale or partial copy), so an
        /// anti-entropy style digest sync is enough. Report the end with `onBootstrapCompleted`.
        case startBootstrap(BootstrapTicket, sources: [String], hasLocalData: Bool)
        /// A running bootstrap's candidate sources changed; continue from a listed source.
        case updateBootstrapSources(BootstrapTicket, sources: [String])
        /// Stop a running bootstrap; keep what was fetched (it is retired data now).
        case cancelBootstrap(BootstrapTicket)
        /// Delete the shard's data (range delete of its keys).
        case dropShard(ShardID)
        /// Announce this member state in gossip metadata: `active` when a joiner has caught up,
        /// `joining` after the cluster removed this node (it must re-sync before serving).
        case announceMemberState(PlacementMember.State)
        /// A leaving node has handed everything off and may leave the cluster now.
        case readyToLeave

        public var description: String {
            switch self {
            case let .markComplete(s): "markComplete(\(s))"
            case let .markIncomplete(s): "markIncomplete(\(s))"
            case let .startBootstrap(t, sources, local):
                "startBootstrap(\(t), from: \(sources)\(local ? ", incremental" : ""))"
            case let .updateBootstrapSources(t, sources): "updateBootstrapSources(\(t), \(sources))"
            case let .cancelBootstrap(t): "cancelBootstrap(\(t))"
            case let .dropShard(s): "dropShard(\(s))"
            case let .announceMemberState(state): "announceMemberState(\(state))"
            case .readyToLeave: "readyToLeave"
            }
        }
    }

    private struct Record: Sendable {
        var state: LocalState = .notOwned
        /// The persisted completeness flag, as last emitted (or restored).
        var markedComplete = false
        /// Restored as complete and not yet confirmed by a first placement.
        var restoredComplete = false
        var generation: UInt64 = 0
        var sources: [String] = []
        /// When the copy retired; nil for a restored copy until the first placement.
        var retiredAtMs: Int64?
    }

    public let nodeID: String
    public let layout: ShardLayout
    public let settings: Settings

    private var records: [Record]
    private var placement: Placement?
    /// The last reported complete shards of each peer.
    private var peerComplete: [String: ShardSet] = [:]
    private var nextGeneration: UInt64 = 1
    /// The cluster removed this node: nothing counts as owned again until a placement lists this
    /// node as `joining`.
    private var awaitingRejoin = false
    /// Member-state effects already emitted for a placement version (emitted once per version).
    private var announced: (effect: Effect, version: UInt64)?
    private var lastNowMs: Int64 = .min

    /// - Parameter restored: what the store holds at startup (empty for a new node).
    public init(nodeID: String, layout: ShardLayout, settings: Settings = .default,
                restored: [ShardID: Restored] = [:]) {
        self.nodeID = nodeID
        self.layout = layout
        self.settings = settings
        records = Array(repeating: Record(), count: layout.shardCount)
        for (shard, what) in restored {
            let s = Int(shard.rawValue)
            precondition(s < layout.shardCount, "restored shard \(s) outside the layout's \(layout.shardCount) shards")
            records[s].state = .retired
            records[s].markedComplete = what == .complete
            records[s].restoredComplete = what == .complete
        }
    }

    // MARK: Queries

    /// This node's state for `shard` (for `GET /api/v1/cluster/shards`, and for read responses:
    /// `isComplete` says whether this copy may be trusted as complete).
    public func state(of shard: ShardID) -> LocalState { records[Int(shard.rawValue)].state }

    /// Shards whose copy here is complete — what this node reports to its peers.
    public var completeShards: ShardSet {
        var set = ShardSet()
        for s in 0..<records.count where records[s].state.isComplete { set.insert(ShardID(s)) }
        return set
    }

    /// How many shards are in each state (for metrics).
    public var stateCounts: [LocalState: Int] {
        var counts: [LocalState: Int] = [:]
        for r in records { counts[r.state, default: 0] += 1 }
        return counts
    }

    /// The placement last applied.
    public var currentPlacement: Placement? { placement }

    /// The ticket of the running bootstrap of `shard`, if any.
    public func bootstrapTicket(of shard: ShardID) -> BootstrapTicket? {
        let r = records[Int(shard.rawValue)]
        return r.state == .bootstrapping ? BootstrapTicket(shard: shard, generation: r.generation) : nil
    }

    /// Current candidate sources for fetching `shard` (also for a shell retrying a bootstrap).
    public func bootstrapSources(for shard: ShardID) -> [String] {
        guard let placement else { return [] }
        return sources(Int(shard.rawValue), placement)
    }

    /// When `onTick` has something to do next (a retired copy's grace ends), or nil. Returns only
    /// deadlines after the last event's `nowMs`; a copy whose grace has passed but whose new
    /// owners are not all complete waits for `onPeerShardStates` instead.
    public var nextTickMs: Int64? {
        var next: Int64?
        for r in records where r.state == .retired {
            guard let at = r.retiredAtMs else { continue }
            let deadline = at + settings.handoffGraceMs
            if deadline > lastNowMs, deadline < next ?? .max { next = deadline }
        }
        return next
    }

    // MARK: Events

    /// A new placement (any change of the member list, states or settings). Call it with the
    /// same placement again and nothing happens.
    public mutating func onPlacementChanged(_ placement: Placement, nowMs: Int64) -> [Effect] {
        precondition(placement.layout == layout, "placement layout \(placement.layout.shardCount) != node layout \(layout.shardCount)")
        lastNowMs = Swift.max(lastNowMs, nowMs)
        self.placement = placement
        let myState = placement.member(nodeID)?.state
        if awaitingRejoin, myState == .joining { awaitingRejoin = false }
        var effects: [Effect] = []
        let readIndex = awaitingRejoin ? nil : placement.read.nodeIndex(nodeID)
        let writeIndex = awaitingRejoin ? nil : placement.write.nodeIndex(nodeID)
        for s in 0..<records.count {
            let inRead = readIndex.map { placement.read.holds(node: $0, shard: s) } ?? false
            let inWrite = writeIndex.map { placement.write.holds(node: $0, shard: s) } ?? false
            apply(s, inWrite: inWrite, inRead: inRead, placement, nowMs, &effects)
            records[s].restoredComplete = false
        }
        settle(nowMs, &effects)
        return effects
    }

    /// The bootstrap `ticket` finished: every block was fetched and the shell's final digest pass
    /// found nothing missing. Stale tickets (cancelled or superseded) are ignored.
    public mutating func onBootstrapCompleted(_ ticket: BootstrapTicket, nowMs: Int64) -> [Effect] {
        lastNowMs = Swift.max(lastNowMs, nowMs)
        let s = Int(ticket.shard.rawValue)
        guard s < records.count, records[s].state == .bootstrapping, records[s].generation == ticket.generation else {
            return []
        }
        var effects: [Effect] = []
        becomeComplete(s, .active, &effects)
        settle(nowMs, &effects)
        return effects
    }

    /// A peer's report of the shards it holds complete (`completeShards` on that peer), replacing
    /// its previous report. Reports about this node itself are ignored.
    public mutating func onPeerShardStates(nodeID peer: String, complete: ShardSet, nowMs: Int64) -> [Effect] {
        lastNowMs = Swift.max(lastNowMs, nowMs)
        guard peer != nodeID else { return [] }
        if peerComplete[peer] == complete { return tick(nowMs) }
        peerComplete[peer] = complete
        var effects: [Effect] = []
        if let placement {
            // Sources are ordered by reports: refresh running bootstraps.
            for s in 0..<records.count where records[s].state == .bootstrapping {
                let fresh = sources(s, placement)
                if fresh != records[s].sources, !fresh.isEmpty {
                    records[s].sources = fresh
                    effects.append(.updateBootstrapSources(ticket(s), sources: fresh))
                }
            }
        }
        settle(nowMs, &effects)
        return effects
    }

    /// Time passed (call at `nextTickMs`, or periodically).
    public mutating func onTick(nowMs: Int64) -> [Effect] {
        lastNowMs = Swift.max(lastNowMs, nowMs)
        return tick(nowMs)
    }

    /// The membership layer removed `nodeID` (dead past the removal timeout, or left). The new
    /// placement comes separately through `onPlacementChanged`.
    ///
    /// If it is this node — the cluster declared it dead while it was partitioned or stopped —
    /// every copy it holds missed writes: all become `retired`, running bootstraps are cancelled,
    /// and the node must announce `joining`; its shards are bootstrapped again (incrementally)
    /// once a placement lists it as joining. Until then it owns nothing.
    public mutating func onMemberRemoved(nodeID removed: String, nowMs: Int64) -> [Effect] {
        lastNowMs = Swift.max(lastNowMs, nowMs)
        guard removed == nodeID else {
            peerComplete[removed] = nil
            return tick(nowMs)
        }
        awaitingRejoin = true
        announced = nil
        var effects: [Effect] = []
        for s in 0..<records.count { retire(s, nowMs, &effects) }
        effects.append(.announceMemberState(.joining))
        return effects
    }

    // MARK: Transitions

    private mutating func apply(_ s: Int, inWrite: Bool, inRead: Bool, _ placement: Placement, _ nowMs: Int64,
                                _ effects: inout [Effect]) {
        let r = records[s]
        guard inWrite || inRead else {
            retire(s, nowMs, &effects)
            return
        }
        // Complete and receiving writes without a gap: stays complete.
        if r.state.isComplete || (r.restoredComplete && inRead) {
            becomeComplete(s, inWrite ? .active : .handingOff, &effects)
            return
        }
        guard inWrite else {
            // In P_read only (this node is leaving) without a complete copy: not worth fetching.
            retire(s, nowMs, &effects)
            return
        }
        let fresh = sources(s, placement)
        if fresh.isEmpty {
            // No complete copy anywhere (a new cluster, or every holder gone): nothing to fetch.
            if r.state == .bootstrapping { effects.append(.cancelBootstrap(ticket(s))) }
            becomeComplete(s, .active, &effects)
            return
        }
        if r.state == .bootstrapping {
            if fresh != r.sources {
                records[s].sources = fresh
                effects.append(.updateBootstrapSources(ticket(s), sources: fresh))
            }
            return
        }
        if r.markedComplete {
            records[s].markedComplete = false
            effects.append(.markIncomplete(ShardID(s)))
        }
        let hasLocalData = r.state != .notOwned
        records[s].state = .bootstrapping
        records[s].generation = nextGeneration
        nextGeneration += 1
        records[s].sources = fresh
        records[s].retiredAtMs = nil
        effects.append(.startBootstrap(ticket(s), sources: fresh, hasLocalData: hasLocalData))
    }

    private mutating func becomeComplete(_ s: Int, _ state: LocalState, _ effects: inout [Effect]) {
        if !records[s].markedComplete {
            records[s].markedComplete = true
            effects.append(.markComplete(ShardID(s)))
        }
        records[s].state = state
        records[s].retiredAtMs = nil
        records[s].sources = []
    }

    /// Keeps whatever data is here as a stale copy (or nothing, if there is none).
    private mutating func retire(_ s: Int, _ nowMs: Int64, _ effects: inout [Effect]) {
        let r = records[s]
        if r.markedComplete {
            records[s].markedComplete = false
            effects.append(.markIncomplete(ShardID(s)))
        }
        switch r.state {
        case .notOwned:
            return
        case .bootstrapping:
            effects.append(.cancelBootstrap(ticket(s)))
        case .active, .handingOff, .retired:
            break
        }
        records[s].state = .retired
        records[s].sources = []
        if records[s].retiredAtMs == nil || r.state != .retired { records[s].retiredAtMs = nowMs }
    }

    private func ticket(_ s: Int) -> BootstrapTicket {
        BootstrapTicket(shard: ShardID(s), generation: records[s].generation)
    }

    private func reportsComplete(_ peer: String, _ s: Int) -> Bool {
        peerComplete[peer]?.contains(ShardID(s)) ?? false
    }

    /// Complete copies to fetch `s` from: `P_read(s)` members (rotated by shard number so a joiner
    /// spreads its fetches), then `P_write(s)` members not in `P_read(s)`, never this node — those
    /// that reported the shard complete first. `P_write`-only members are listed only if they
    /// reported it complete: a joiner's copy is otherwise incomplete.
    private func sources(_ s: Int, _ placement: Placement) -> [String] {
        let shard = ShardID(s)
        let readers = placement.read.replicas(of: shard)
        var reported: [String] = []
        var unreported: [String] = []
        for i in 0..<readers.count {
            let node = readers[(i + s) % readers.count]
            guard node != nodeID else { continue }
            if reportsComplete(node, s) { reported.append(node) } else { unreported.append(node) }
        }
        for node in placement.write.replicas(of: shard) where node != nodeID && !readers.contains(node) {
            if reportsComplete(node, s) { reported.append(node) }
        }
        return reported + unreported
    }

    // MARK: Deferred checks

    private mutating func tick(_ nowMs: Int64) -> [Effect] {
        var effects: [Effect] = []
        settle(nowMs, &effects)
        return effects
    }

    /// Drops that became due and member-state announcements that became true.
    private mutating func settle(_ nowMs: Int64, _ effects: inout [Effect]) {
        guard let placement else { return }
        let readIndex = placement.read.nodeIndex(nodeID)
        let writeIndex = placement.write.nodeIndex(nodeID)
        for s in 0..<records.count where records[s].state == .retired {
            guard let at = records[s].retiredAtMs, nowMs - at >= settings.handoffGraceMs else { continue }
            // Never while the placement (even one this node is not acting on yet) lists it.
            if let i = readIndex, placement.read.holds(node: i, shard: s) { continue }
            if let i = writeIndex, placement.write.holds(node: i, shard: s) { continue }
            let owners = placement.write.replicas(of: ShardID(s))
            guard !owners.isEmpty, owners.allSatisfy({ reportsComplete($0, s) }) else { continue }
            records[s] = Record()
            effects.append(.dropShard(ShardID(s)))
        }
        guard !awaitingRejoin, let me = placement.member(nodeID) else { return }
        switch me.state {
        case .joining:
            guard let i = writeIndex else { break }
            for s in 0..<records.count where placement.write.holds(node: i, shard: s) {
                if records[s].state != .active { return }
            }
            guard othersCaughtUp(placement) else { return }
            announce(.announceMemberState(.active), placement.version, &effects)
        case .leaving:
            for s in 0..<records.count where records[s].state != .notOwned {
                for owner in placement.write.replicas(of: ShardID(s)) where owner != nodeID {
                    if !reportsComplete(owner, s) { return }
                }
            }
            guard othersCaughtUp(placement) else { return }
            announce(.readyToLeave, placement.version, &effects)
        case .active:
            break
        }
    }

    /// Whether every *other* new owner — a member in `P_write(s)` but not in `P_read(s)` — of
    /// every shard whose handover retires a copy reports the shard complete.
    ///
    /// A joiner's activation (or a leaver's departure) makes `P_read` equal `P_write`, which
    /// retires every member that is in `P_read(s)` only. The balancing pass can move a few
    /// replicas between members not involved in the change; waiting for those new owners too
    /// means the switch never removes a complete copy before its replacement is complete.
    private func othersCaughtUp(_ placement: Placement) -> Bool {
        guard placement.read.nodes != placement.write.nodes else { return true }
        for s in 0..<records.count {
            let shard = ShardID(s)
            let write = placement.write.replicas(of: shard)
            // Only shards that will lose a (complete) P_read-only copy need to wait.
            guard placement.read.replicas(of: shard).contains(where: { !write.contains($0) }) else { continue }
            for owner in write where owner != nodeID {
                if !placement.read.contains(owner, shard: shard), !reportsComplete(owner, s) { return false }
            }
        }
        return true
    }

    private mutating func announce(_ effect: Effect, _ version: UInt64, _ effects: inout [Effect]) {
        if let a = announced, a.effect == effect, a.version == version { return }
        announced = (effect, version)
        effects.append(effect)
    }
}
