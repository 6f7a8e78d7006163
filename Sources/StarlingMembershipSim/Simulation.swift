import StarlingMembership

/// A deterministic simulation of N membership instances over a simulated network and clock.
///
/// One seed drives everything: each node's generator, network delays, loss, duplication and
/// reordering. Events are processed in (time, sequence) order from one heap, so a run with the
/// same seed, configuration and fault script replays exactly — a failing run prints its seed and
/// `STARLING_SIM_SEED=<seed>` replays it (see `SimulationScenario`).
///
/// The simulated datagrams are the real sealed bytes: the codec and envelope run on every hop,
/// so byte counts in the figures are the real ones.
public final class Simulation {
    public struct Network: Sendable {
        /// One-way delay, uniformly drawn in `minDelayMs...maxDelayMs` per datagram. A spread
        /// wider than the interval between two sends reorders them.
        public var minDelayMs: Int64 = 1
        public var maxDelayMs: Int64 = 5
        /// Probability a datagram is lost (each direction independently).
        public var lossRate: Double = 0
        /// Probability a datagram is delivered twice (the copy gets its own delay).
        public var duplicateRate: Double = 0
        /// Time for a push-pull (TCP) exchange to fail when the peer is unreachable.
        public var pushPullTimeoutMs: Int64 = 2_000

        public init() {}
    }

    public struct Config: Sendable {
        public var nodeCount: Int
        public var seed: UInt64
        public var settings: SWIMSettings = .lan
        public var network = Network()
        public var keyring = Keyring()
        /// Start every node with the full, converged view (as after a completed join) instead of
        /// joining through node 0. Large-n figures use this to skip the join storm.
        public var startConverged = false
        /// Spread node starts over this many ms when joining through node 0.
        public var startSpreadMs: Int64 = 1_000

        public init(nodeCount: Int, seed: UInt64) {
            self.nodeCount = nodeCount
            self.seed = seed
        }
    }

    /// A membership change observed by node `observer` at `timeMs`.
    public struct Observation: Sendable {
        public var timeMs: Int64
        public var observer: Int
        public var change: MembershipChange
    }

    public enum NodeRun: Sendable, Equatable {
        case running
        /// Like SIGSTOP: no ticks, datagrams queue up (bounded) and are handled on `thaw`.
        case frozen
        /// Like kill -9: gone; datagrams to it vanish, push-pulls to it fail.
        case killed
        /// Left gracefully and stopped.
        case stopped
    }

    public struct Node {
        public var id: NodeID
        public var address: GossipAddress
        public var swim: SWIMInstance<Xoshiro256>
        public var run: NodeRun = .running
        var tickAtMs: Int64 = .max
        var tickGeneration: UInt64 = 0
        var frozenInbox: [Event.Kind] = []
        /// Restart count, to derive a fresh instance seed.
        var lives = 0
    }

    struct Event: Comparable {
        enum Kind {
            case tick(node: Int, generation: UInt64)
            case datagram(to: Int, from: GossipAddress, bytes: [UInt8])
            case pushPullRequest(to: Int, from: Int, frame: [UInt8], join: Bool, target: GossipAddress)
            case pushPullResponse(to: Int, from: GossipAddress, frame: [UInt8], join: Bool)
            case pushPullFailed(node: Int, target: GossipAddress, join: Bool)
            case action(Int)
        }
        var timeMs: Int64
        var seq: UInt64
        var kind: Kind

        static func < (a: Event, b: Event) -> Bool { (a.timeMs, a.seq) < (b.timeMs, b.seq) }
        static func == (a: Event, b: Event) -> Bool { a.timeMs == b.timeMs && a.seq == b.seq }
    }

    public let config: Config
    public private(set) var nowMs: Int64 = 0
    public private(set) var nodes: [Node] = []
    public private(set) var observations: [Observation] = []
    /// Directed links that drop everything: `blocked.contains(Link(from, to))`.
    public private(set) var blocked: Set<Link> = []
    public var network: Network
    /// Hook called for every datagram sent (sender index, destination, packet, sealed size). Used by figures.
    public var onSend: ((_ sender: Int, _ to: GossipAddress, _ packet: SWIMPacket, _ bytes: Int) -> Void)?
    /// Hook called after every membership change, for checkers that run after each step.
    public var onObservation: ((Observation) -> Void)?

    /// Set whenever any fault was injected (loss, partition, freeze); the "no false death while
    /// healthy" checker only applies to runs that never had one.
    public private(set) var hadNetworkFault = false

    /// `dead` observations whose subject was running (not killed, frozen, stopped) at the time.
    public private(set) var deathsOfRunningNodes: [Observation] = []
    public private(set) var indexOfID: [NodeID: Int] = [:]

    var heap = Heap<Event>()
    var eventSeq: UInt64 = 0
    var netRandom: Xoshiro256
    var actions: [(Simulation) -> Void] = []
    var addressIndex: [GossipAddress: Int] = [:]
    public static let frozenInboxLimit = 512

    public struct Link: Hashable, Sendable {
        public var from: Int
        public var to: Int
        public init(_ from: Int, _ to: Int) { self.from = from; self.to = to }
    }

    public init(_ config: Config) {
        self.config = config
        self.network = config.network
        self.netRandom = Xoshiro256(seed: config.seed ^ 0xA5A5_5A5A_1234_8765)
        if config.network.lossRate > 0 || config.network.duplicateRate > 0 { hadNetworkFault = true }
        var idRandom = Xoshiro256(seed: config.seed)
        for i in 0..<config.nodeCount {
            let id = NodeID.random(using: &idRandom)
            let address = Self.address(of: i)
            let swim = Self.makeInstance(id: id, index: i, address: address, config: config, life: 0, nowMs: 0)
            nodes.append(Node(id: id, address: address, swim: swim))
            addressIndex[address] = i
            indexOfID[id] = i
        }
        if config.startConverged {
            let records = nodes.map {
                MemberRecord(id: $0.id, name: $0.swim.myself.name, address: $0.address, incarnation: 0, status: .alive,
                             metadata: $0.swim.myself.metadata)
            }
            for i in nodes.indices {
                let d = nodes[i].swim.seedView(records, from: nodes[(i + 1) % nodes.count].id, nowMs: 0, disseminate: false)
                execute(d, node: i, record: false)
            }
        } else {
            // Node 0 starts alone; the others join through it, spread over startSpreadMs.
            for i in nodes.indices {
                let at = i == 0 ? 0 : Int64(netRandom.next() % UInt64(max(1, config.startSpreadMs)))
                schedule(at: at) { sim in
                    let seeds = i == 0 ? [] : [Self.address(of: 0)]
                    let d = sim.nodes[i].swim.join(seeds: seeds, nowMs: sim.nowMs)
                    sim.execute(d, node: i)
                }
            }
        }
    }

    public static func address(of i: Int) -> GossipAddress { GossipAddress(host: "node\(i)", port: 7946) }

    static func makeInstance(id: NodeID, index: Int, address: GossipAddress, config: Config, life: Int, nowMs: Int64) -> SWIMInstance<Xoshiro256> {
        SWIMInstance(id: id, name: "node\(index)", address: address,
                     metadata: NodeMetadata(httpAddress: "node\(index):9090", peerAddress: "node\(index):9091",
                                            zone: "zone\(index % 3)", state: .active, version: "sim"),
                     settings: config.settings, cluster: ClusterID("sim"), keyring: config.keyring,
                     seed: config.seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(life) &* 0xD1B5_4A32_D192_ED03,
                     nowMs: nowMs)
    }

    // MARK: Running

    /// Processes events until simulated time reaches `untilMs` (inclusive).
    public func run(untilMs: Int64) {
        while let e = heap.min, e.timeMs <= untilMs {
            _ = heap.pop()
            nowMs = e.timeMs
            handle(e.kind)
        }
        nowMs = max(nowMs, untilMs)
    }

    public func run(forMs ms: Int64) { run(untilMs: nowMs + ms) }

    /// Runs until `condition` holds (checked every `checkEveryMs` of simulated time, or after
    /// every event when 0) or `deadlineMs`; returns whether it held. Observation timestamps are
    /// exact either way; a coarser check only saves work at large n.
    @discardableResult
    public func run(untilMs deadlineMs: Int64, checkEveryMs: Int64 = 0, until condition: (Simulation) -> Bool) -> Bool {
        if condition(self) { return true }
        if checkEveryMs > 0 {
            while nowMs < deadlineMs {
                run(untilMs: min(deadlineMs, nowMs + checkEveryMs))
                if condition(self) { return true }
            }
            return false
        }
        while let e = heap.min, e.timeMs <= deadlineMs {
            _ = heap.pop()
            nowMs = e.timeMs
            handle(e.kind)
            if condition(self) { return true }
        }
        nowMs = max(nowMs, deadlineMs)
        return condition(self)
    }

    /// Schedules `action` at absolute time `at`, in order with network events.
    public func schedule(at: Int64, _ action: @escaping (Simulation) -> Void) {
        actions.append(action)
        push(at: at, .action(actions.count - 1))
    }

    // MARK: Faults

    public func kill(_ i: Int) {
        nodes[i].run = .killed
        nodes[i].frozenInbox.removeAll()
    }

    public func freeze(_ i: Int) {
        guard nodes[i].run == .running else { return }
        hadNetworkFault = true
        nodes[i].run = .frozen
    }

    /// Continues a frozen node: it handles what queued up, then ticks (it sees time jump).
    public func thaw(_ i: Int) {
        guard nodes[i].run == .frozen else { return }
        nodes[i].run = .running
        let inbox = nodes[i].frozenInbox
        nodes[i].frozenInbox.removeAll()
        for k in inbox { handle(k) }
        let d = nodes[i].swim.onTick(nowMs: nowMs)
        execute(d, node: i)
    }

    /// Restarts a killed node with the same ID, a fresh instance at incarnation 0, joining
    /// through node `seed`.
    public func restart(_ i: Int, joiningThrough seed: Int = 0) {
        nodes[i].lives += 1
        nodes[i].run = .running
        nodes[i].frozenInbox.removeAll()
        nodes[i].tickAtMs = .max
        nodes[i].swim = Self.makeInstance(id: nodes[i].id, index: i, address: nodes[i].address, config: config,
                                          life: nodes[i].lives, nowMs: nowMs)
        let d = nodes[i].swim.join(seeds: [Self.address(of: seed)], nowMs: nowMs)
        execute(d, node: i)
    }

    /// Graceful leave: the node announces `left` and is stopped once it has disseminated it (or
    /// after `timeoutMs`).
    public func leave(_ i: Int, timeoutMs: Int64 = 5_000) {
        let d = nodes[i].swim.leave(nowMs: nowMs)
        execute(d, node: i)
        let deadline = nowMs + timeoutMs
        func check(_ sim: Simulation) {
            if sim.nodes[i].swim.isLeaveComplete || sim.nowMs >= deadline {
                sim.nodes[i].run = .stopped
            } else {
                sim.schedule(at: sim.nowMs + 50, check)
            }
        }
        schedule(at: nowMs + 50, check)
    }

    /// Runs a command on node `i`'s instance now (e.g. `updateMetadata`) and executes its
    /// directives.
    public func command(_ i: Int, _ body: (inout SWIMInstance<Xoshiro256>, Int64) -> [SWIMDirective]) {
        let d = body(&nodes[i].swim, nowMs)
        execute(d, node: i)
    }

    /// Blocks traffic both ways between the two groups.
    public func partition(_ a: [Int], _ b: [Int]) {
        hadNetworkFault = true
        for x in a { for y in b { blocked.insert(Link(x, y)); blocked.insert(Link(y, x)) } }
    }

    /// Blocks traffic from `from` to `to` only.
    public func blockOneWay(from: [Int], to: [Int]) {
        hadNetworkFault = true
        for x in from { for y in to { blocked.insert(Link(x, y)) } }
    }

    public func heal() { blocked.removeAll() }

    // MARK: Views

    public var liveIndices: [Int] { nodes.indices.filter { nodes[$0].run == .running } }

    /// Status of `subject` in `observer`'s view (nil if unknown or reclaimed).
    public func status(of subject: Int, seenBy observer: Int) -> MemberStatus? {
        nodes[observer].swim.member(nodes[subject].id)?.status
    }

    // MARK: Event handling

    func push(at: Int64, _ kind: Event.Kind) {
        eventSeq += 1
        heap.push(Event(timeMs: at, seq: eventSeq, kind: kind))
    }

    func handle(_ kind: Event.Kind) {
        switch kind {
        case .action(let i):
            actions[i](self)
        case .tick(let n, let generation):
            guard generation == nodes[n].tickGeneration else { return }
            nodes[n].tickAtMs = .max
            guard nodes[n].run == .running else { return }
            let d = nodes[n].swim.onTick(nowMs: nowMs)
            execute(d, node: n)
        case .datagram(let to, let from, let bytes):
            switch nodes[to].run {
            case .running:
                let d = nodes[to].swim.onDatagram(bytes, from: from, nowMs: nowMs)
                execute(d, node: to)
            case .frozen:
                if nodes[to].frozenInbox.count < Self.frozenInboxLimit { nodes[to].frozenInbox.append(kind) }
            case .killed, .stopped:
                break
            }
        case .pushPullRequest(let to, let from, let frame, let join, let target):
            // Modelled as one TCP exchange: request and reply each take one network delay. A
            // frozen or dead peer, or a blocked link, makes the exchange fail after a timeout.
            guard nodes[to].run == .running, !blocked.contains(Link(from, to)), !blocked.contains(Link(to, from)) else {
                let failAt = nodes[to].run == .killed ? nowMs + delay() : nowMs + network.pushPullTimeoutMs
                push(at: failAt, .pushPullFailed(node: from, target: target, join: join))
                return
            }
            let (reply, d) = nodes[to].swim.onPushPullRequest(frame, from: nodes[from].address, nowMs: nowMs)
            execute(d, node: to)
            if let reply {
                push(at: nowMs + delay(), .pushPullResponse(to: from, from: target, frame: reply, join: join))
            } else {
                push(at: nowMs + delay(), .pushPullFailed(node: from, target: target, join: join))
            }
        case .pushPullResponse(let to, let from, let frame, let join):
            guard nodes[to].run == .running else { return }
            let d = nodes[to].swim.onPushPullResponse(frame, from: from, join: join, nowMs: nowMs)
            execute(d, node: to)
        case .pushPullFailed(let n, let target, let join):
            guard nodes[n].run == .running else { return }
            let d = nodes[n].swim.onPushPullFailed(to: target, join: join, nowMs: nowMs)
            execute(d, node: n)
        }
    }

    func delay() -> Int64 {
        let span = UInt64(max(0, network.maxDelayMs - network.minDelayMs) + 1)
        return network.minDelayMs + Int64(netRandom.next() % span)
    }

    func chance(_ p: Double) -> Bool {
        p > 0 && Double(netRandom.next() >> 11) * 0x1.0p-53 < p
    }

    func execute(_ directives: [SWIMDirective], node n: Int, record: Bool = true) {
        for d in directives {
            switch d {
            case .send(let to, let datagram, let packet):
                onSend?(n, to, packet, datagram.count)
                guard let dst = addressIndex[to] else { continue }
                if blocked.contains(Link(n, dst)) { continue }
                if chance(network.lossRate) { continue }
                push(at: nowMs + delay(), .datagram(to: dst, from: nodes[n].address, bytes: datagram))
                if chance(network.duplicateRate) {
                    push(at: nowMs + delay(), .datagram(to: dst, from: nodes[n].address, bytes: datagram))
                }
            case .pushPull(let to, let join, let frame):
                guard let dst = addressIndex[to] else {
                    push(at: nowMs + delay(), .pushPullFailed(node: n, target: to, join: join))
                    continue
                }
                push(at: nowMs + delay(), .pushPullRequest(to: dst, from: n, frame: frame, join: join, target: to))
            case .memberChanged(let change):
                guard record else { continue }
                let o = Observation(timeMs: nowMs, observer: n, change: change)
                observations.append(o)
                if change.kind == .dead, let subject = indexOfID[change.member.id], nodes[subject].run == .running {
                    deathsOfRunningNodes.append(o)
                }
                onObservation?(o)
            case .scheduleTick(let at):
                // Keep an earlier pending tick (an early tick is harmless: the instance just
                // answers with the next deadline); only an earlier deadline needs a new event.
                let when = max(at, nowMs)
                guard when < nodes[n].tickAtMs else { continue }
                nodes[n].tickGeneration += 1
                nodes[n].tickAtMs = when
                push(at: when, .tick(node: n, generation: nodes[n].tickGeneration))
            }
        }
    }
}
