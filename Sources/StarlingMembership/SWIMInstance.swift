/// What the shell must do after an event. The instance performs no I/O: it only returns these.
public enum SWIMDirective: Sendable {
    /// Send `datagram` (sealed, ≤ `maxPayloadBytes`) over UDP to `to`. `packet` is its decoded
    /// content, for logs, tests and the simulator.
    case send(to: GossipAddress, datagram: [UInt8], packet: SWIMPacket)
    /// Open a TCP connection to `to` (resolving the host if it is a name), send `frame` (a sealed
    /// `PushPullState`), read the peer's frame and report with `onPushPullResponse`, or report
    /// failure with `onPushPullFailed`. Passes `join` back unchanged.
    case pushPull(to: GossipAddress, join: Bool, frame: [UInt8])
    /// The local view changed.
    case memberChanged(MembershipChange)
    /// Call `onTick` at (or soon after) this instance time. Exactly one per returned batch,
    /// always last; it supersedes any earlier one.
    case scheduleTick(atMs: Int64)
}

/// The SWIM + Lifeguard membership protocol as a value: events in, directives out.
///
/// Vocabulary (after apple/swift-cluster-membership's HANDBOOK): a *probe* is one round of
/// `ping` → (timeout) → `ping-req` to k peers → (interval end) → suspect; *incarnation* is a
/// member's own counter, raised only by itself to refute; *suspicion* turns into *dead* after a
/// timeout that shrinks with independent confirmations (Lifeguard §4.2); *awareness* is the
/// local-health multiplier on timeouts (Lifeguard §4.1); updates are *disseminated* by
/// piggybacking on every datagram, each at most `retransmitLimit(n)` times.
///
/// Time (`nowMs`, any monotonic millisecond clock) and randomness (`Random`, seeded) are inputs.
/// Nothing here reads a clock, the system RNG, or a socket; the same inputs give the same
/// outputs, which is what the simulator relies on.
///
/// Iteration order never depends on `Dictionary` order (Swift seeds hashing per process): members
/// are kept in an insertion-ordered array next to the dictionary, and anything collected from a
/// dictionary is sorted before it drives behaviour.
public struct SWIMInstance<Random: SeededRandom>: Sendable {
    public let settings: SWIMSettings
    public let cluster: ClusterID
    public var keyring: Keyring
    public private(set) var stats = SWIMStats()

    /// This node as it announces itself. `status` is `alive`, or `left` after `leave`.
    public private(set) var myself: Member
    var random: Random

    var members: [NodeID: Member] = [:]
    /// Member IDs in insertion order: the deterministic iteration order.
    var memberOrder: [NodeID] = []
    var countByStatus: [Int] = [0, 0, 0, 0]

    // Probing
    var probeOrder: [NodeID] = []
    var probeIndex = 0
    var probe: Probe?
    var lastProbeWasSuspect = false
    var pushPullToDead = false
    var nextProbeAtMs: Int64
    var seq: UInt32 = 0
    var relays: [Relay] = []
    /// Lifeguard local health, 0...awarenessMaxMultiplier-1.
    public private(set) var health = 0

    var suspicions: [NodeID: Suspicion] = [:]
    var tombstones: [NodeID] = []
    var broadcasts = BroadcastQueue()

    var nextGossipAtMs: Int64
    var nextPushPullAtMs: Int64
    var join: JoinState?
    var seeds: [GossipAddress] = []
    var isLeaving = false

    struct Probe: Sendable {
        var seq: UInt32
        var target: NodeID
        var targetIncarnation: UInt64
        var timeoutAtMs: Int64
        var deadlineAtMs: Int64
        var indirectSent = false
        var expectedNacks = 0
        var nacks = 0
    }

    struct Relay: Sendable {
        var localSeq: UInt32
        var originSeq: UInt32
        var origin: GossipAddress
        var nackAtMs: Int64
        var expiresAtMs: Int64
        var nackSent = false
    }

    struct Suspicion: Sendable {
        var startMs: Int64
        var minMs: Int64
        var maxMs: Int64
        var expected: Int
        var initiator: NodeID
        var confirmers: Set<NodeID> = []
        var deadlineMs: Int64
        /// When this node last probed the suspect (re-probes, see `nextProbeTarget`).
        var lastProbedMs: Int64
    }

    struct JoinState: Sendable {
        var attempt = 0
        var pending = 0
        var nextAttemptAtMs: Int64
        /// A seed of the current attempt answered with this node's own ID: the seed list
        /// (a Compose service name, a Kubernetes headless service) includes this node.
        var reachedSelf = false
    }

    /// Join attempts made by the last join that ended with only this node reachable. The
    /// "alone: back to the seeds" retry continues its backoff from there instead of polling the
    /// seeds every `joinRetryInitialMs`.
    var aloneJoinAttempts = 0

    /// - Parameters:
    ///   - id: this node's stable ID (persisted by the node in its data directory).
    ///   - incarnation: starting incarnation. 0 is fine: a restarted node that others still
    ///     remember learns its old incarnation from them and refutes above it.
    ///   - seed: seeds the instance's generator (probe order, peer choice, jitter, nonces).
    public init(id: NodeID, name: String, address: GossipAddress, metadata: NodeMetadata,
                settings: SWIMSettings = .lan, cluster: ClusterID = .default, keyring: Keyring = Keyring(),
                incarnation: UInt64 = 0, seed: UInt64, nowMs: Int64) {
        if let problem = settings.validate() { preconditionFailure("invalid SWIM settings: \(problem)") }
        self.settings = settings
        self.cluster = cluster
        self.keyring = keyring
        self.random = Random(seed: seed)
        self.myself = Member(id: id, name: name, address: address, incarnation: incarnation,
                             status: .alive, metadata: metadata, lastChangeMs: nowMs)
        // Spread the first rounds so that nodes started together do not probe in lockstep.
        var r = Random(seed: seed ^ 0x5157_494D)
        nextProbeAtMs = nowMs + Int64(r.next() % UInt64(settings.probeIntervalMs))
        nextGossipAtMs = nowMs + Int64(r.next() % UInt64(settings.gossipIntervalMs))
        nextPushPullAtMs = nowMs + settings.pushPullIntervalMs
            + (settings.pushPullIntervalMs > 0 ? Int64(r.next() % UInt64(settings.pushPullIntervalMs)) : 0)
    }

    // MARK: Queries

    /// All members including this node, sorted by ID: the snapshot placement consumes.
    public var allMembers: [Member] {
        var out = memberOrder.compactMap { members[$0] }
        out.append(myself)
        out.sort { $0.id < $1.id }
        return out
    }

    public func member(_ id: NodeID) -> Member? { id == myself.id ? myself : members[id] }

    /// Members (including this node) per status.
    public var countsByStatus: [MemberStatus: Int] {
        var d: [MemberStatus: Int] = [:]
        for s in MemberStatus.allCases { d[s] = countByStatus[Int(s.rawValue)] }
        d[myself.status, default: 0] += 1
        return d
    }

    /// Alive and suspect members including this node: the n of the formulas.
    public var liveCount: Int {
        countByStatus[Int(MemberStatus.alive.rawValue)] + countByStatus[Int(MemberStatus.suspect.rawValue)]
            + (myself.status.isLive ? 1 : 0)
    }

    /// Alive and suspect members other than this node.
    var liveOthers: Int {
        countByStatus[Int(MemberStatus.alive.rawValue)] + countByStatus[Int(MemberStatus.suspect.rawValue)]
    }

    /// Whether a join is still trying to reach a seed.
    public var isJoining: Bool { join != nil }

    /// After `leave`: true once the leave announcement has been transmitted as many times as any
    /// update, or there is nobody left to tell. The shell waits for this (bounded) before exiting.
    public var isLeaveComplete: Bool {
        isLeaving && (!broadcasts.contains(subject: myself.id) || liveOthers == 0)
    }

    /// Updates waiting for dissemination.
    public var pendingBroadcasts: Int { broadcasts.count }

    func scaled(_ ms: Int64) -> Int64 { ms * Int64(health + 1) }

    // MARK: Commands

    /// Starts joining through `seeds` (possibly DNS names). Each seed gets a push-pull; if none
    /// answers, the attempt is retried with exponential backoff. Seeds are remembered: a node that
    /// later finds itself alone (every other member dead) joins through them again.
    public mutating func join(seeds: [GossipAddress], nowMs: Int64) -> [SWIMDirective] {
        var out: [SWIMDirective] = []
        self.seeds = seeds.filter { $0 != myself.address }
        if !self.seeds.isEmpty && !isLeaving {
            join = JoinState(nextAttemptAtMs: nowMs)
            startJoinAttempt(nowMs: nowMs, &out)
        }
        return finish(nowMs: nowMs, &out)
    }

    /// Announces new metadata (e.g. state joining → active) with a higher incarnation.
    public mutating func updateMetadata(_ metadata: NodeMetadata, nowMs: Int64) -> [SWIMDirective] {
        var out: [SWIMDirective] = []
        guard metadata != myself.metadata, !isLeaving else { return finish(nowMs: nowMs, &out) }
        myself.metadata = metadata
        myself.incarnation += 1
        myself.lastChangeMs = nowMs
        broadcasts.enqueue(.alive(aliveUpdate(myself)))
        out.append(.memberChanged(MembershipChange(kind: .metadataChanged, member: myself, previousStatus: .alive)))
        return finish(nowMs: nowMs, &out)
    }

    /// Leaves the cluster gracefully: announces `left` with a higher incarnation, sends it right
    /// away to `gossipFanout` members and keeps gossiping it. Probing stops; pings are still
    /// answered so nobody suspects this node before the news arrives. Wait for
    /// `isLeaveComplete` (bounded) before stopping the shell.
    public mutating func leave(nowMs: Int64) -> [SWIMDirective] {
        var out: [SWIMDirective] = []
        guard !isLeaving else { return finish(nowMs: nowMs, &out) }
        isLeaving = true
        join = nil
        probe = nil
        let previous = myself.status
        myself.incarnation += 1
        myself.status = .left
        myself.metadata.state = .leaving
        myself.lastChangeMs = nowMs
        let update = GossipUpdate.left(id: myself.id, incarnation: myself.incarnation)
        broadcasts.enqueue(update)
        out.append(.memberChanged(MembershipChange(kind: .left, member: myself, previousStatus: previous)))
        for target in randomMembers(count: settings.gossipFanout, excluding: nil, where: { $0.status.isLive }) {
            sendPacket(.gossip, to: target.address, priority: [], nowMs: nowMs, &out)
        }
        return finish(nowMs: nowMs, &out)
    }

    // MARK: Events

    /// Timer event: runs every deadline that has passed (probe steps, relays' nacks, suspicion
    /// timeouts, gossip round, push-pull, join retry, tombstone reclaim).
    public mutating func onTick(nowMs: Int64) -> [SWIMDirective] {
        var out: [SWIMDirective] = []

        if var j = join, j.pending == 0, nowMs >= j.nextAttemptAtMs {
            j.nextAttemptAtMs = nowMs
            join = j
            startJoinAttempt(nowMs: nowMs, &out)
        }

        // Probe state machine.
        if var p = probe {
            if !p.indirectSent && nowMs >= p.timeoutAtMs && nowMs < p.deadlineAtMs {
                p.indirectSent = true
                if let target = members[p.target] {
                    let peers = randomMembers(count: settings.indirectProbes, excluding: p.target, where: { $0.status == .alive })
                    for peer in peers {
                        sendPacket(.pingReq(seq: p.seq, target: target.id, targetAddress: target.address),
                                   to: peer.address, priority: [], nowMs: nowMs, &out)
                        stats.pingReqsSent += 1
                    }
                    p.expectedNacks = peers.count
                }
                probe = p
            }
            if nowMs >= p.deadlineAtMs {
                probe = nil
                probeFailed(p, nowMs: nowMs, &out)
            }
        }
        if probe == nil && !isLeaving && nowMs >= nextProbeAtMs {
            startProbe(nowMs: nowMs, &out)
        }

        // Relays: nack the origin when the target stays silent; forget expired ones.
        if !relays.isEmpty {
            for i in relays.indices where !relays[i].nackSent && nowMs >= relays[i].nackAtMs {
                relays[i].nackSent = true
                sendPacket(.nack(seq: relays[i].originSeq), to: relays[i].origin, priority: [], nowMs: nowMs, &out)
                stats.nacksSent += 1
            }
            relays.removeAll { nowMs >= $0.expiresAtMs }
        }

        // Suspicion timeouts.
        if !suspicions.isEmpty {
            let expired = suspicions.filter { nowMs >= $0.value.deadlineMs }.map(\.key).sorted()
            for id in expired {
                guard let m = members[id] else { suspicions[id] = nil; continue }
                stats.deathsDeclaredLocally += 1
                applyDead(id: id, incarnation: m.incarnation, from: myself.id, nowMs: nowMs, &out)
            }
        }

        // Gossip round.
        if nowMs >= nextGossipAtMs {
            nextGossipAtMs = nowMs + settings.gossipIntervalMs
            if !broadcasts.isEmpty {
                // Fanout goes to live members only: each update has a small transmit budget
                // (4 at n ≤ 9), and spending it on dead members left live ones uninformed.
                let targets = randomMembers(count: settings.gossipFanout, excluding: nil) { $0.status.isLive }
                for t in targets {
                    if broadcasts.isEmpty { break }
                    sendPacket(.gossip, to: t.address, priority: [], nowMs: nowMs, &out)
                }
                // Gossip to the dead: one recently dead member per round hears the news (so a
                // member wrongly declared dead learns it and refutes), without using up budget.
                let deadWindow = settings.gossipToTheDeadMs
                if !tombstones.isEmpty, !broadcasts.isEmpty,
                   let t = randomMembers(count: 1, excluding: nil, where: { $0.status == .dead && nowMs - $0.lastChangeMs < deadWindow }).first {
                    sendPacket(.gossip, to: t.address, priority: [], countTransmissions: false, nowMs: nowMs, &out)
                }
            }
        }

        // Anti-entropy.
        if settings.pushPullIntervalMs > 0 && nowMs >= nextPushPullAtMs {
            nextPushPullAtMs = nowMs + settings.scaledPushPullIntervalMs(memberCount: liveCount)
            // Every other round goes to a dead member if there is one (reconnect, like Serf):
            // after a partition heals, the two sides have declared each other dead and only
            // talk again through gossip to the dead, this, or the seeds.
            pushPullToDead.toggle()
            var peer: Member?
            if pushPullToDead && !tombstones.isEmpty {
                peer = randomMembers(count: 1, excluding: nil, where: { $0.status == .dead }).first
            }
            if peer == nil {
                peer = randomMembers(count: 1, excluding: nil, where: { $0.status == .alive }).first
            }
            if !isLeaving, let peer {
                stats.pushPullsStarted += 1
                out.append(.pushPull(to: peer.address, join: false, frame: sealedState(join: false, isResponse: false)))
            }
        }

        // Tombstone reclaim.
        if !tombstones.isEmpty {
            var kept: [NodeID] = []
            for id in tombstones {
                guard let m = members[id], !m.status.isLive else { continue }
                if nowMs - m.lastChangeMs >= settings.tombstoneReclaimMs {
                    removeMember(id)
                    out.append(.memberChanged(MembershipChange(kind: .removed, member: m, previousStatus: m.status)))
                } else {
                    kept.append(id)
                }
            }
            tombstones = kept
        }

        // Alone after having had peers (or never reached anyone): go back to the seeds.
        if join == nil && !isLeaving && !seeds.isEmpty && liveCount <= 1 {
            join = JoinState(attempt: aloneJoinAttempts, nextAttemptAtMs: nowMs + joinBackoffMs(attempt: aloneJoinAttempts + 1))
        }
        return finish(nowMs: nowMs, &out)
    }

    /// A datagram arrived from `from` (the UDP source address). It is opened, authenticated and
    /// decoded here; anything that fails is counted and dropped without further parsing.
    public mutating func onDatagram(_ bytes: [UInt8], from: GossipAddress, nowMs: Int64) -> [SWIMDirective] {
        var out: [SWIMDirective] = []
        stats.datagramsReceived += 1
        stats.bytesReceived += UInt64(bytes.count)
        guard bytes.count <= Limits.maxDatagramBytes else {
            stats.malformed += 1
            return finish(nowMs: nowMs, &out)
        }
        let packet: SWIMPacket
        do {
            let plain = try Envelope.open(bytes, keyring: keyring)
            packet = try SWIMCodec.decodePacket(plain, cluster: cluster)
        } catch let e as Envelope.OpenError {
            if case .unknownKind = e { stats.malformed += 1 } else { stats.authenticationFailures += 1 }
            return finish(nowMs: nowMs, &out)
        } catch let e as SWIMCodec.PacketError {
            count(e)
            return finish(nowMs: nowMs, &out)
        } catch {
            stats.malformed += 1
            return finish(nowMs: nowMs, &out)
        }
        onPacket(packet, from: from, nowMs: nowMs, &out)
        return finish(nowMs: nowMs, &out)
    }

    /// A peer opened a push-pull connection and sent `frame`. Returns the reply frame (this node's
    /// state before merging) or nil if the frame was rejected (the shell closes the connection).
    public mutating func onPushPullRequest(_ frame: [UInt8], from: GossipAddress, nowMs: Int64) -> (reply: [UInt8]?, directives: [SWIMDirective]) {
        var out: [SWIMDirective] = []
        guard let state = openState(frame) else {
            stats.pushPullsRejected += 1
            return (nil, finish(nowMs: nowMs, &out))
        }
        stats.pushPullsServed += 1
        let reply = sealedState(join: false, isResponse: true)
        merge(state, nowMs: nowMs, &out)
        return (reply, finish(nowMs: nowMs, &out))
    }

    /// The peer's reply to a `pushPull` directive.
    public mutating func onPushPullResponse(_ frame: [UInt8], from: GossipAddress, join isJoin: Bool, nowMs: Int64) -> [SWIMDirective] {
        var out: [SWIMDirective] = []
        guard let state = openState(frame) else {
            stats.pushPullsRejected += 1
            return pushPullFailed(join: isJoin, nowMs: nowMs, &out)
        }
        if state.sender == myself.id {
            return onPushPullReachedSelf(to: from, join: isJoin, nowMs: nowMs)
        }
        stats.pushPullsCompleted += 1
        merge(state, nowMs: nowMs, &out)
        if isJoin, join != nil {
            join = nil
            aloneJoinAttempts = 0
        }
        return finish(nowMs: nowMs, &out)
    }

    /// A `pushPull` directive reached this node itself: the seed's name resolves to this node's
    /// own address (the shell skips it), or the answer carries this node's ID. Not a join, but
    /// if no other seed answers either, this node is the first of its cluster (see
    /// `pushPullFailed`).
    public mutating func onPushPullReachedSelf(to: GossipAddress, join isJoin: Bool, nowMs: Int64) -> [SWIMDirective] {
        var out: [SWIMDirective] = []
        if isJoin { join?.reachedSelf = true }
        return pushPullFailed(join: isJoin, nowMs: nowMs, &out)
    }

    /// A `pushPull` directive could not be carried out (connect, timeout, resolve, I/O).
    public mutating func onPushPullFailed(to: GossipAddress, join isJoin: Bool, nowMs: Int64) -> [SWIMDirective] {
        var out: [SWIMDirective] = []
        return pushPullFailed(join: isJoin, nowMs: nowMs, &out)
    }

    /// Installs a view wholesale, as if received by push-pull. Used to start large simulations
    /// from a converged cluster and by tests. With `disseminate: false` the resulting updates are
    /// not queued for gossip (every node is assumed to have the same view already).
    public mutating func seedView(_ records: [MemberRecord], from sender: NodeID, nowMs: Int64,
                                  disseminate: Bool = true) -> [SWIMDirective] {
        var out: [SWIMDirective] = []
        merge(PushPullState(sender: sender, join: false, isResponse: true, members: records), nowMs: nowMs, &out)
        if !disseminate { broadcasts.removeAll() }
        join = nil
        return finish(nowMs: nowMs, &out)
    }

    // MARK: Packet handling

    mutating func onPacket(_ packet: SWIMPacket, from: GossipAddress, nowMs: Int64, _ out: inout [SWIMDirective]) {
        guard packet.sender != myself.id else {
            // Our own ID from another address: two nodes share a node ID (a copied data
            // directory). Nothing can be applied safely; make it visible.
            if from != myself.address { stats.duplicateNodeID += 1 }
            return
        }
        stats.updatesReceived += UInt64(packet.updates.count)
        for u in packet.updates { apply(u, nowMs: nowMs, &out) }
        switch packet.message {
        case .ping(let seq, let target):
            guard target == myself.id else {
                stats.pingsForOtherNode += 1
                return
            }
            sendPacket(.ack(seq: seq), to: from, priority: [], nowMs: nowMs, &out)
        case .pingReq(let seq, let target, let address):
            if target == myself.id {
                sendPacket(.ack(seq: seq), to: from, priority: [], nowMs: nowMs, &out)
                return
            }
            guard relays.count < Limits.maxRelayedProbes else {
                stats.relaysDroppedAtLimit += 1
                return
            }
            let local = nextSeq()
            relays.append(Relay(localSeq: local, originSeq: seq, origin: from,
                                nackAtMs: nowMs + Int64(Double(settings.probeTimeoutMs) * settings.nackFraction),
                                expiresAtMs: nowMs + settings.probeTimeoutMs))
            sendPacket(.ping(seq: local, target: target), to: address, priority: suspectHint(target), nowMs: nowMs, &out)
        case .ack(let seq):
            stats.acksReceived += 1
            if let p = probe, p.seq == seq {
                probe = nil
                adjustHealth(-1)
            } else if let i = relays.firstIndex(where: { $0.localSeq == seq }) {
                let r = relays.remove(at: i)
                sendPacket(.ack(seq: r.originSeq), to: r.origin, priority: [], nowMs: nowMs, &out)
            }
        case .nack(let seq):
            stats.nacksReceived += 1
            if var p = probe, p.seq == seq {
                p.nacks += 1
                probe = p
            }
        case .gossip:
            break
        }
    }

    // MARK: Probing

    mutating func startProbe(nowMs: Int64, _ out: inout [SWIMDirective]) {
        nextProbeAtMs = nowMs + scaled(settings.probeIntervalMs)
        guard let target = nextProbeTarget(nowMs: nowMs) else { return }
        let s = nextSeq()
        probe = Probe(seq: s, target: target.id, targetIncarnation: target.incarnation,
                      timeoutAtMs: nowMs + scaled(settings.probeTimeoutMs),
                      deadlineAtMs: nowMs + scaled(settings.probeIntervalMs))
        stats.probesSent += 1
        sendPacket(.ping(seq: s, target: target.id), to: target.address, priority: suspectHint(target.id), nowMs: nowMs, &out)
    }

    /// Lifeguard's buddy system: a ping to a suspect carries the suspicion first, so the member
    /// learns of it (and refutes) at the first chance instead of waiting for random gossip.
    func suspectHint(_ target: NodeID) -> [GossipUpdate] {
        guard let m = members[target], m.status == .suspect, let s = suspicions[target] else { return [] }
        return [.suspect(id: target, incarnation: m.incarnation, from: s.initiator)]
    }

    /// Randomized round robin: walk a shuffled list of members; reshuffle at the end. New
    /// members are inserted at random positions, so each member is probed once per round.
    mutating func nextProbeTarget(nowMs: Int64) -> Member? {
        // Re-probe suspects (at most every other probe, each at most every two probe intervals):
        // the ping carries the suspicion to the member (buddy system) and its ack carries the
        // refutation back, so a refutation that the epidemic missed still reaches this node well
        // before the suspicion times out; if the member really failed, a failed probe of a
        // suspicion started elsewhere is an independent confirmation.
        if !lastProbeWasSuspect, !suspicions.isEmpty {
            let due = suspicions.filter { nowMs - $0.value.lastProbedMs >= 2 * settings.probeIntervalMs }
            if let pick = due.min(by: { ($0.value.lastProbedMs, $0.key) < ($1.value.lastProbedMs, $1.key) }),
               let m = members[pick.key], m.status == .suspect {
                suspicions[pick.key]?.lastProbedMs = nowMs
                lastProbeWasSuspect = true
                return m
            }
        }
        lastProbeWasSuspect = false
        var checked = 0
        while checked <= probeOrder.count {
            if probeIndex >= probeOrder.count {
                probeOrder = memberOrder
                probeOrder.shuffle(using: &random)
                probeIndex = 0
                if probeOrder.isEmpty { return nil }
            }
            let id = probeOrder[probeIndex]
            probeIndex += 1
            checked += 1
            if let m = members[id], m.status.isLive { return m }
        }
        return nil
    }

    mutating func probeFailed(_ p: Probe, nowMs: Int64, _ out: inout [SWIMDirective]) {
        stats.probesFailed += 1
        // Lifeguard: if relays were asked, each nack that did not come back suggests the problem
        // is here (we cannot hear them either); with no relays, any failed probe counts.
        if p.expectedNacks > 0 {
            adjustHealth(max(0, p.expectedNacks - p.nacks))
        } else {
            adjustHealth(1)
        }
        guard let m = members[p.target], m.status.isLive else { return }
        if m.status == .alive { stats.suspicionsStartedLocally += 1 }
        applySuspect(id: m.id, incarnation: max(m.incarnation, p.targetIncarnation), from: myself.id, nowMs: nowMs, &out)
    }

    mutating func adjustHealth(_ delta: Int) {
        health = min(max(0, health + delta), settings.awarenessMaxMultiplier - 1)
    }

    mutating func nextSeq() -> UInt32 {
        seq &+= 1
        return seq
    }

    // MARK: Applying updates

    mutating func apply(_ u: GossipUpdate, nowMs: Int64, _ out: inout [SWIMDirective]) {
        switch u {
        case .alive(let a): applyAlive(a, nowMs: nowMs, &out)
        case .suspect(let id, let inc, let from): applySuspect(id: id, incarnation: inc, from: from, nowMs: nowMs, &out)
        case .dead(let id, let inc, let from): applyDead(id: id, incarnation: inc, from: from, nowMs: nowMs, &out)
        case .left(let id, let inc): applyLeft(id: id, incarnation: inc, nowMs: nowMs, &out)
        }
    }

    mutating func applyAlive(_ a: AliveUpdate, nowMs: Int64, _ out: inout [SWIMDirective]) {
        if a.id == myself.id {
            // Someone holds a newer or different picture of this node (e.g. from before a restart
            // on a new address): announce ourselves above it.
            if !isLeaving && (a.incarnation > myself.incarnation
                || (a.incarnation == myself.incarnation
                    && (a.address != myself.address || a.metadata != myself.metadata || a.name != myself.name))) {
                refute(observed: a.incarnation, nowMs: nowMs, &out)
            }
            return
        }
        guard let cur = members[a.id] else {
            let m = Member(id: a.id, name: a.name, address: a.address, incarnation: a.incarnation,
                           status: .alive, metadata: a.metadata, lastChangeMs: nowMs)
            addMember(m)
            broadcasts.enqueue(.alive(a))
            out.append(.memberChanged(MembershipChange(kind: .joined, member: m, previousStatus: nil)))
            return
        }
        guard a.incarnation > cur.incarnation else { return }
        var m = cur
        m.incarnation = a.incarnation
        m.name = a.name
        m.address = a.address
        m.metadata = a.metadata
        m.status = .alive
        m.lastChangeMs = nowMs
        setMember(m, previous: cur)
        broadcasts.enqueue(.alive(a))
        if cur.status != .alive {
            if cur.status == .suspect { stats.suspicionsRefuted += 1 }
            out.append(.memberChanged(MembershipChange(kind: .alive, member: m, previousStatus: cur.status)))
        } else if cur.metadata != m.metadata || cur.address != m.address || cur.name != m.name {
            out.append(.memberChanged(MembershipChange(kind: .metadataChanged, member: m, previousStatus: .alive)))
        }
    }

    mutating func applySuspect(id: NodeID, incarnation inc: UInt64, from: NodeID, nowMs: Int64, _ out: inout [SWIMDirective]) {
        if id == myself.id {
            guard !isLeaving else { return }
            if inc >= myself.incarnation {
                stats.selfRefutations += 1
                adjustHealth(1)
                refute(observed: inc, nowMs: nowMs, &out)
            } else if !broadcasts.contains(subject: myself.id) {
                // Someone still suspects an incarnation we already refuted: our refutation did not
                // reach everyone. Queue it again (same incarnation); it rides first on the ack we
                // are about to send, often straight back to the node still suspecting us.
                broadcasts.enqueue(.alive(aliveUpdate(myself)))
            }
            return
        }
        guard let cur = members[id] else { return }
        if cur.status == .left {
            reassertLeft(cur)
            return
        }
        guard cur.status.isLive, inc >= cur.incarnation else { return }
        if cur.status == .suspect {
            if inc > cur.incarnation {
                var m = cur
                m.incarnation = inc
                setMember(m, previous: cur)
            }
            // An independent confirmation shortens the timeout (Lifeguard).
            if var s = suspicions[id], from != s.initiator, from != id,
               s.confirmers.count < s.expected, !s.confirmers.contains(from) {
                s.confirmers.insert(from)
                s.deadlineMs = s.startMs + SWIMSettings.suspicionTimeoutMs(
                    confirmations: s.confirmers.count, expected: s.expected, minMs: s.minMs, maxMs: s.maxMs)
                suspicions[id] = s
                broadcasts.enqueue(.suspect(id: id, incarnation: inc, from: from))
            }
            return
        }
        var m = cur
        m.incarnation = inc
        m.status = .suspect
        m.lastChangeMs = nowMs
        setMember(m, previous: cur)
        let n = liveCount
        let minMs = settings.suspicionMinTimeoutMs(memberCount: n)
        let maxMs = settings.suspicionMaxTimeoutMs(memberCount: n)
        let k = settings.expectedConfirmations(memberCount: n)
        suspicions[id] = Suspicion(startMs: nowMs, minMs: minMs, maxMs: maxMs, expected: k, initiator: from,
                                   deadlineMs: nowMs + SWIMSettings.suspicionTimeoutMs(confirmations: 0, expected: k, minMs: minMs, maxMs: maxMs),
                                   lastProbedMs: from == myself.id ? nowMs : Int64.min / 2)
        stats.suspicionsRaised += 1
        broadcasts.enqueue(.suspect(id: id, incarnation: inc, from: from))
        out.append(.memberChanged(MembershipChange(kind: .suspect, member: m, previousStatus: cur.status)))
    }

    mutating func applyDead(id: NodeID, incarnation inc: UInt64, from: NodeID, nowMs: Int64, _ out: inout [SWIMDirective]) {
        if id == myself.id {
            if !isLeaving {
                stats.selfRefutations += 1
                adjustHealth(1)
                refute(observed: inc, nowMs: nowMs, &out)
            }
            return
        }
        guard let cur = members[id] else { return }
        if cur.status == .left {
            reassertLeft(cur)
            return
        }
        guard cur.status.isLive, inc >= cur.incarnation else { return }
        var m = cur
        m.incarnation = inc
        m.status = .dead
        m.lastChangeMs = nowMs
        setMember(m, previous: cur)
        stats.membersDeclaredDead += 1
        broadcasts.enqueue(.dead(id: id, incarnation: inc, from: from))
        out.append(.memberChanged(MembershipChange(kind: .dead, member: m, previousStatus: cur.status)))
    }

    mutating func applyLeft(id: NodeID, incarnation inc: UInt64, nowMs: Int64, _ out: inout [SWIMDirective]) {
        if id == myself.id {
            if !isLeaving && inc >= myself.incarnation {
                refute(observed: inc, nowMs: nowMs, &out)
            }
            return
        }
        guard let cur = members[id], cur.status != .left, inc >= cur.incarnation else { return }
        var m = cur
        m.incarnation = inc
        m.status = .left
        m.metadata.state = .leaving
        m.lastChangeMs = nowMs
        setMember(m, previous: cur)
        broadcasts.enqueue(.left(id: id, incarnation: inc))
        out.append(.memberChanged(MembershipChange(kind: .left, member: m, previousStatus: cur.status)))
    }

    /// Someone suspects or declares dead a member we know left gracefully: the leave
    /// announcement missed them. Gossip it again so they see `left`, not a failure.
    mutating func reassertLeft(_ m: Member) {
        if !broadcasts.contains(subject: m.id) {
            broadcasts.enqueue(.left(id: m.id, incarnation: m.incarnation))
        }
    }

    /// Raises this node's incarnation above `observed` and announces it alive.
    mutating func refute(observed: UInt64, nowMs: Int64, _ out: inout [SWIMDirective]) {
        myself.incarnation = max(myself.incarnation, observed) + 1
        myself.lastChangeMs = nowMs
        broadcasts.enqueue(.alive(aliveUpdate(myself)))
    }

    // MARK: Push-pull

    mutating func merge(_ state: PushPullState, nowMs: Int64, _ out: inout [SWIMDirective]) {
        for r in state.members {
            switch r.status {
            case .alive:
                applyAlive(AliveUpdate(id: r.id, incarnation: r.incarnation, name: r.name, address: r.address, metadata: r.metadata),
                           nowMs: nowMs, &out)
            case .suspect, .dead:
                // A remote death is only a suspicion here: if the member is alive after all it
                // gets the chance to refute (memberlist does the same). Unknown members are not
                // added from a suspicion or death.
                if r.id != myself.id && members[r.id] == nil { continue }
                if r.status == .dead && r.id == myself.id {
                    // Our former self was declared dead (we restarted): come back above it.
                    if !isLeaving && r.incarnation >= myself.incarnation { refute(observed: r.incarnation, nowMs: nowMs, &out) }
                    continue
                }
                applySuspect(id: r.id, incarnation: r.incarnation, from: state.sender, nowMs: nowMs, &out)
            case .left:
                applyLeft(id: r.id, incarnation: r.incarnation, nowMs: nowMs, &out)
            }
        }
    }

    func localState(join: Bool, isResponse: Bool) -> PushPullState {
        var records: [MemberRecord] = [MemberRecord(myself)]
        records.reserveCapacity(memberOrder.count + 1)
        for id in memberOrder {
            if let m = members[id] { records.append(MemberRecord(m)) }
        }
        return PushPullState(sender: myself.id, join: join, isResponse: isResponse, members: records)
    }

    mutating func sealedState(join: Bool, isResponse: Bool) -> [UInt8] {
        Envelope.seal(SWIMCodec.encode(localState(join: join, isResponse: isResponse), cluster: cluster),
                      keyring: keyring, random: &random)
    }

    mutating func openState(_ frame: [UInt8]) -> PushPullState? {
        do {
            let plain = try Envelope.open(frame, keyring: keyring)
            return try SWIMCodec.decodePushPull(plain, cluster: cluster)
        } catch let e as Envelope.OpenError {
            if case .unknownKind = e { stats.malformed += 1 } else { stats.authenticationFailures += 1 }
        } catch let e as SWIMCodec.PacketError {
            count(e)
        } catch {
            stats.malformed += 1
        }
        return nil
    }

    mutating func startJoinAttempt(nowMs: Int64, _ out: inout [SWIMDirective]) {
        guard var j = join else { return }
        j.attempt += 1
        j.pending = seeds.count
        j.reachedSelf = false
        join = j
        stats.joinAttempts += 1
        let frame = sealedState(join: true, isResponse: false)
        for s in seeds {
            stats.pushPullsStarted += 1
            out.append(.pushPull(to: s, join: true, frame: frame))
        }
    }

    mutating func pushPullFailed(join isJoin: Bool, nowMs: Int64, _ out: inout [SWIMDirective]) -> [SWIMDirective] {
        stats.pushPullsFailed += 1
        if isJoin, var j = join {
            j.pending = max(0, j.pending - 1)
            if j.pending == 0 && j.reachedSelf {
                // Every seed was this node or unreachable: it is the first node of its cluster
                // (the seed-0 of a Compose file or a StatefulSet that lists itself), or others
                // already joined through it. Stop joining; if alone, it keeps going back to the
                // seeds with backoff, so a peer that was merely not up yet is found and the
                // clusters merge.
                if liveOthers == 0 { stats.joinsEndedAlone += 1 }
                aloneJoinAttempts = j.attempt
                join = nil
                return finish(nowMs: nowMs, &out)
            }
            if j.pending == 0 {
                j.nextAttemptAtMs = nowMs + joinBackoffMs(attempt: j.attempt)
            }
            join = j
        }
        return finish(nowMs: nowMs, &out)
    }

    /// Delay before join attempt `attempt + 1`: exponential from `joinRetryInitialMs`, capped at
    /// `joinRetryMaxMs`, with ±20% jitter so nodes started together do not retry in lockstep.
    mutating func joinBackoffMs(attempt: Int) -> Int64 {
        let shift = min(max(attempt - 1, 0), 20)
        let base = min(settings.joinRetryMaxMs, settings.joinRetryInitialMs << Int64(shift))
        let jitter = (random.unitDouble() * 0.4 - 0.2) * Double(base)
        return max(1, base + Int64(jitter))
    }

    // MARK: Sending

    /// Builds a datagram: `message`, then `priority` updates, then as many queued updates as fit
    /// in `maxPayloadBytes` (less the envelope), and appends the send directive.
    mutating func sendPacket(_ message: SWIMMessage, to: GossipAddress, priority: [GossipUpdate],
                             countTransmissions: Bool = true, nowMs: Int64, _ out: inout [SWIMDirective]) {
        var budget = settings.maxPayloadBytes - Envelope.maxOverheadBytes - SWIMCodec.headerBytes
            - SWIMCodec.messageBytes(message) - 2  // update-count varint (≤ 2 bytes below 16,384)
        var updates: [GossipUpdate] = []
        for u in priority {
            let s = SWIMCodec.encodedSize(u)
            if s <= budget { updates.append(u); budget -= s }
        }
        let maxCount = Limits.maxUpdatesPerDatagram - updates.count
        updates += countTransmissions
            ? broadcasts.select(budget: budget, maxCount: maxCount, limit: settings.retransmitLimit(memberCount: liveCount))
            : broadcasts.peek(budget: budget, maxCount: maxCount)
        let packet = SWIMPacket(sender: myself.id, message: message, updates: updates)
        let datagram = Envelope.seal(SWIMCodec.encode(packet, cluster: cluster), keyring: keyring, random: &random)
        precondition(datagram.count <= settings.maxPayloadBytes,
                     "datagram of \(datagram.count) bytes exceeds maxPayloadBytes \(settings.maxPayloadBytes)")
        stats.datagramsSent += 1
        stats.bytesSent += UInt64(datagram.count)
        stats.updatesSent += UInt64(updates.count)
        stats.largestDatagramSent = max(stats.largestDatagramSent, datagram.count)
        out.append(.send(to: to, datagram: datagram, packet: packet))
    }

    func aliveUpdate(_ m: Member) -> AliveUpdate {
        AliveUpdate(id: m.id, incarnation: m.incarnation, name: m.name, address: m.address, metadata: m.metadata)
    }

    // MARK: Member table

    mutating func addMember(_ m: Member) {
        members[m.id] = m
        memberOrder.append(m.id)
        countByStatus[Int(m.status.rawValue)] += 1
        // Put it into the current probe round at a random position not yet passed: append, then
        // swap with a random unvisited slot (O(1); the displaced member stays unvisited).
        probeOrder.append(m.id)
        let lower = min(probeIndex, probeOrder.count - 1)
        let pos = lower + Int(random.next() % UInt64(probeOrder.count - lower))
        probeOrder.swapAt(pos, probeOrder.count - 1)
    }

    mutating func setMember(_ m: Member, previous: Member) {
        members[m.id] = m
        if m.status != previous.status {
            countByStatus[Int(previous.status.rawValue)] -= 1
            countByStatus[Int(m.status.rawValue)] += 1
            if m.status != .suspect { suspicions[m.id] = nil }
            if !m.status.isLive && previous.status.isLive { tombstones.append(m.id) }
            if m.status == .left && previous.status == .dead { /* already a tombstone */ }
        }
    }

    mutating func removeMember(_ id: NodeID) {
        guard let m = members.removeValue(forKey: id) else { return }
        countByStatus[Int(m.status.rawValue)] -= 1
        suspicions[id] = nil
        if let i = memberOrder.firstIndex(of: id) { memberOrder.remove(at: i) }
        // probeOrder entries are skipped lazily when met.
    }

    /// Up to `count` distinct random members passing `filter`, never this node or `excluding`.
    mutating func randomMembers(count: Int, excluding: NodeID?, where filter: (Member) -> Bool) -> [Member] {
        guard count > 0, !memberOrder.isEmpty else { return [] }
        var picked: [Member] = []
        var seen = Set<NodeID>()
        // Rejection sampling: cheap when most members qualify (the common case); bounded so a
        // mostly-dead view falls back to a full scan.
        var attempts = 0
        let maxAttempts = 3 * memberOrder.count + 8
        while picked.count < count && attempts < maxAttempts {
            attempts += 1
            let id = memberOrder[Int(random.next() % UInt64(memberOrder.count))]
            if id == excluding || seen.contains(id) { continue }
            seen.insert(id)
            if let m = members[id], filter(m) { picked.append(m) }
        }
        return picked
    }

    // MARK: Bookkeeping

    mutating func count(_ e: SWIMCodec.PacketError) {
        switch e {
        case .rejected(.wrongCluster): stats.wrongCluster += 1
        case .rejected(.unsupportedVersion): stats.unsupportedVersion += 1
        case .decode: stats.malformed += 1
        }
    }

    /// Appends the one `scheduleTick` with the earliest pending deadline.
    func finish(nowMs: Int64, _ out: inout [SWIMDirective]) -> [SWIMDirective] {
        var next = nextGossipAtMs
        if !isLeaving { next = min(next, nextProbeAtMs) }
        if let p = probe {
            next = min(next, p.deadlineAtMs)
            if !p.indirectSent { next = min(next, p.timeoutAtMs) }
        }
        for r in relays { next = min(next, r.nackSent ? r.expiresAtMs : r.nackAtMs) }
        for s in suspicions.values { next = min(next, s.deadlineMs) }
        if settings.pushPullIntervalMs > 0 { next = min(next, nextPushPullAtMs) }
        if let j = join, j.pending == 0 { next = min(next, j.nextAttemptAtMs) }
        for id in tombstones {
            if let m = members[id] { next = min(next, m.lastChangeMs + settings.tombstoneReclaimMs) }
        }
        out.append(.scheduleTick(atMs: max(next, nowMs)))
        return out
    }
}
