import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import StarlingMembership
import StarlingPeerWire
import Synchronization

/// Why `PeerPool.request` failed without an answer. An `error` frame from the peer is an answer
/// (returned as the response), not one of these.
public enum PeerPoolError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No connection to the node: its address is unknown or malformed, the dial failed (refused,
    /// connect timeout, no route), or the pool is backing off after such failures — then the
    /// call fails at once instead of waiting. `reason` says which, with the last dial error.
    case unreachable(String, reason: String)
    /// No final answer within the request's `timeoutMs` (which includes waiting for a dial).
    case timedOut(String, timeoutMs: UInt32)
    /// The connection already has `limit` requests awaiting answers (`PeerRequestTracker`).
    case overloaded(String, inFlight: Int, limit: Int)
    /// The connection closed before the answer; `reason` is the frame-level error that closed
    /// it, or that the peer closed it.
    case connectionClosed(String, reason: String)
    /// `close()` was called (the node is shutting down).
    case poolClosed(String)

    /// The node the request was for.
    public var nodeID: String {
        switch self {
        case let .unreachable(n, _), let .timedOut(n, _), let .overloaded(n, _, _), let .connectionClosed(n, _),
             let .poolClosed(n): n
        }
    }

    /// The failure kind as counted in `PeerPool.LinkStats` (a metrics label value).
    public var kind: String {
        switch self {
        case .unreachable: "unreachable"
        case .timedOut: "timeout"
        case .overloaded: "overloaded"
        case .connectionClosed, .poolClosed: "closed"
        }
    }

    public var description: String {
        switch self {
        case let .unreachable(n, reason): "peer \(n) unreachable: \(reason)"
        case let .timedOut(n, ms): "peer \(n) did not answer within \(ms) ms"
        case let .overloaded(n, inFlight, limit): "peer \(n): \(inFlight) requests in flight on its connection (limit \(limit))"
        case let .connectionClosed(n, reason): "connection to peer \(n) closed before the answer: \(reason)"
        case let .poolClosed(n): "request to peer \(n) refused: the peer pool is closed"
        }
    }
}

/// The client side of peer RPC: one persistent, pipelined connection per peer node.
///
/// - **Lazy and shared.** The first request to a node dials it; concurrent requests share that
///   one connection (pipelined by request ID); requests arriving during the dial wait for it.
/// - **Addresses from gossip.** Every request asks `address(nodeID)` for the node's current
///   `host:port`. When it differs from the connected one (the node restarted elsewhere) the old
///   connection is closed — its requests in flight fail with `connectionClosed` — and the new
///   address is dialled.
/// - **Failures back off.** A failed dial, or a connection the peer closes before answering
///   anything (wrong cluster key, its connection limit), puts the link in backoff
///   (`PeerBackoff`, capped exponential with jitter); until it expires, requests fail at once
///   with `PeerPoolError.unreachable` naming the last error, so callers move on to another
///   replica or a hint instead of waiting. The first request after the backoff dials again.
///   A connection that worked and then closed (a peer restart) is redialled by the next
///   request without delay.
/// - **Bidirectional.** The peer may send requests on a connection this pool dialled; they are
///   served by `handler`, as `PeerServer` serves accepted ones.
///
/// Each connection runs in a task owned by the pool (kept in a table, joined by `close()`). As a
/// `Service`, `run()` waits for graceful shutdown or cancellation and then closes the pool.
public actor PeerPool: Service {
    public struct Settings: Sendable {
        /// Per-connection behaviour: in-flight bound, handler bound, placement version stamp.
        public var connection: PeerConnection.Settings
        /// How long a dial may take, in ms. Default 1_000: a LAN or loopback handshake takes
        /// well under a millisecond, so a peer that does not answer a SYN in a second is down or
        /// cut off; requests waiting for the dial fail with `unreachable` after at most this.
        /// Larger tolerates congested WAN links at the price of callers blocked that long.
        public var connectTimeoutMs: Int64
        /// Redial delays after consecutive failures. Default 100 ms doubling to 5_000 ms (with
        /// jitter to half): a restarting peer is found again within ~5 s of it listening, while
        /// a dead one costs at most one dial per 2.5–5 s per node. SWIM removes a dead member
        /// from live views in ~10 s, after which the cluster layer stops asking for it.
        public var backoff: PeerBackoff
        /// Nodes the pool keeps a link (and stats) for. Default 4_096, far above any cluster
        /// size: node IDs come from placement, so only a bug could ask for more; beyond it
        /// requests to new nodes fail `unreachable` and are counted in `refusedPeers`. `forget`
        /// frees a slot.
        public var maxPeers: Int

        /// The placement version stamped on outgoing frames (`connection.placementVersion`).
        public var placementVersion: @Sendable () -> UInt64 {
            get { connection.placementVersion }
            set { connection.placementVersion = newValue }
        }

        public init(connection: PeerConnection.Settings = .init(), connectTimeoutMs: Int64 = 1_000,
                    backoff: PeerBackoff = PeerBackoff(initialMs: 100, maxMs: 5_000), maxPeers: Int = 4_096) {
            precondition(connectTimeoutMs >= 1, "connectTimeoutMs \(connectTimeoutMs) must be at least 1")
            precondition(maxPeers >= 1, "maxPeers \(maxPeers) must be at least 1")
            self.connection = connection
            self.connectTimeoutMs = connectTimeoutMs
            self.backoff = backoff
            self.maxPeers = maxPeers
        }
    }

    public enum LinkState: String, Sendable, Equatable {
        /// No connection and none being made (never dialled, or the last one closed cleanly).
        case idle
        case connecting
        case connected
        /// Requests fail at once until the backoff expires.
        case backingOff = "backing_off"
    }

    /// One peer's counters, for `/metrics` (all monotonic except `state`, `address`,
    /// `consecutiveFailures`).
    public struct LinkStats: Sendable, Equatable {
        /// The address of the current or last connection attempt.
        public var address: String?
        public var state: LinkState = .idle
        /// Requests asked of this peer, including those that failed.
        public var requests: UInt64 = 0
        /// Requests failed `unreachable` (no address, dial failed, backing off).
        public var unreachable: UInt64 = 0
        /// Requests failed `timedOut`.
        public var timedOut: UInt64 = 0
        /// Requests refused locally (`overloaded`) plus answers `error(overloaded)` from the peer.
        public var overloaded: UInt64 = 0
        /// Requests failed `connectionClosed` or `poolClosed`.
        public var closed: UInt64 = 0
        /// Connections established.
        public var connects: UInt64 = 0
        /// Connections established after an earlier one was lost or a dial failed.
        public var reconnects: UInt64 = 0
        /// Dials that failed (refused, timeout, no route).
        public var dialFailures: UInt64 = 0
        /// Failed attempts since the last connection that worked (drives the backoff).
        public var consecutiveFailures: Int = 0

        public init() {}
    }

    private typealias Framed = NIOAsyncChannel<PeerFrame, PeerFrame>

    fileprivate struct Ready: Sendable {
        var connection: PeerConnection
        var generation: UInt64
        /// The link still counts failures from before this connection: the first answer on
        /// it clears them (a hop to the actor only then, not on every request).
        var clearsFailures = false
    }

    private enum Phase {
        case idle
        /// `waiters`: ids in `dialWaiters` of the requests waiting for this dial.
        case dialing(generation: UInt64, address: String, waiters: [UInt64])
        case connected(generation: UInt64, address: String, connection: PeerConnection, channel: any Channel)
        case backingOff(untilNs: UInt64, address: String, reason: String)
    }

    private enum Acquired {
        case ready(Ready)
        /// Wait for the dial in `dialWaiters` under this id.
        case waiting(UInt64)
    }

    private struct Link {
        var phase: Phase = .idle
        var stats = LinkStats()
    }

    /// How a connection ended, gathered by its task.
    private struct Ending: Sendable {
        var answered: Bool
        var reason: String?
    }

    public nonisolated let settings: Settings
    private let configuration: PeerWireConfiguration
    private let group: any EventLoopGroup
    private let address: @Sendable (String) -> String?
    private let handler: PeerRequestHandler
    private let logger: Logger
    private var links: [String: Link] = [:]
    /// Connection tasks by generation (one per dial); each removes itself when done.
    private var tasks: [UInt64: Task<Void, Never>] = [:]
    private var nextGeneration: UInt64 = 1
    private var closed = false
    private var random = SystemRandomNumberGenerator()
    private nonisolated let dialWaiters = DialWaiters()
    /// Requests refused because `maxPeers` links exist.
    public private(set) var refusedPeers: UInt64 = 0

    /// Answers every request on a dialled connection with `error(unsupported)`: for a pool whose
    /// node serves nothing over its outgoing connections.
    public static let refusingHandler: PeerRequestHandler = { frame in
        [(.error, ErrorMessage(code: .unsupported, message: "\(frame.type) is not served on this connection").encoded())]
    }

    /// - Parameters:
    ///   - address: the node's current `host:port` (IPv6 as `[addr]:port`), nil when unknown;
    ///     asked on every request, so it should be a cheap lookup (gossip metadata).
    ///   - handler: serves requests the peers send on connections this pool dialled.
    public init(configuration: PeerWireConfiguration, settings: Settings = .init(),
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                address: @escaping @Sendable (String) -> String?,
                handler: @escaping PeerRequestHandler = PeerPool.refusingHandler, logger: Logger) {
        self.configuration = configuration
        self.settings = settings
        self.group = group
        self.address = address
        self.handler = handler
        self.logger = logger
    }

    // MARK: Requests

    /// Sends a request to `nodeID` over its pooled connection (dialling it if needed) and
    /// collects the answer: one frame, a stream ending with `stream_end`, or an `error` frame.
    /// `timeoutMs` (0 = none) covers the wait for a dial in progress as well as the answer (a
    /// dial is itself bounded by `connectTimeoutMs` and goes on for later requests when one
    /// gives up). Throws `PeerPoolError`, or `CancellationError` when the calling task is
    /// cancelled.
    public nonisolated func request(to nodeID: String, _ type: PeerMessageType, payload: [UInt8],
                                    timeoutMs: UInt32) async throws -> [PeerFrame] {
        let started = NIODeadline.now()
        // A second attempt only when the pooled connection turned out to be closed already (the
        // peer's close was not processed yet): the request never left, so retrying on a fresh
        // dial cannot duplicate it.
        var attempt = 0
        while true {
            attempt += 1
            let ready: Ready
            do {
                switch try await acquire(nodeID) {
                case let .ready(r): ready = r
                case let .waiting(id): ready = try await awaitDial(nodeID, id, timeoutMs: timeoutMs, started: started)
                }
            } catch let e as PeerPoolError {
                await record(e)
                throw e
            }
            var remaining = timeoutMs
            if timeoutMs > 0 {
                let elapsedMs = (NIODeadline.now() - started).nanoseconds / 1_000_000
                guard elapsedMs < Int64(timeoutMs) else {
                    let e = PeerPoolError.timedOut(nodeID, timeoutMs: timeoutMs)
                    await record(e)
                    throw e
                }
                remaining = timeoutMs - UInt32(elapsedMs)
            }
            do {
                let frames = try await ready.connection.request(type, payload: payload, timeoutMs: remaining)
                if ready.clearsFailures { await answered(nodeID, ready.generation) }
                if let last = frames.last, last.type == .error, (try? ErrorMessage.decode(last.payload))?.code == .overloaded {
                    await recordRemoteOverload(nodeID)
                }
                return frames
            } catch let e as PeerRequestError {
                let mapped: PeerPoolError
                switch e {
                case let .overloaded(n, limit): mapped = .overloaded(nodeID, inFlight: n, limit: limit)
                case .timedOut: mapped = .timedOut(nodeID, timeoutMs: timeoutMs)
                case .notConnected where attempt == 1:
                    await connectionFound(closed: nodeID, ready.generation)
                    continue
                case .connectionClosed, .notConnected:
                    let why = await ready.connection.closeReason
                    mapped = .connectionClosed(nodeID, reason: why ?? "closed by the peer or locally")
                }
                await record(mapped)
                throw mapped
            }
        }
    }

    /// Waits for the dial a request joined, at most until the request's deadline.
    private nonisolated func awaitDial(_ node: String, _ id: UInt64, timeoutMs: UInt32, started: NIODeadline) async throws -> Ready {
        guard timeoutMs > 0 else { return try await dialWaiters.wait(id) }
        let leftNs = Int64(timeoutMs) * 1_000_000 - (NIODeadline.now() - started).nanoseconds
        return try await withThrowingTaskGroup(of: Ready?.self) { group in
            group.addTask { try await self.dialWaiters.wait(id) }
            group.addTask {
                try? await Task.sleep(for: .nanoseconds(max(0, leftNs)))
                return nil
            }
            // Either way the other child is cancelled: the sleep ends, the waiter leaves.
            defer { group.cancelAll() }
            guard let first = try await group.next(), let ready = first else {
                // The sleep also ends early when the caller's task is cancelled: that is a
                // cancellation, not a deadline.
                try Task.checkCancellation()
                throw PeerPoolError.timedOut(node, timeoutMs: timeoutMs)
            }
            return ready
        }
    }

    /// Closes the connection to `nodeID` (its requests in flight fail with `connectionClosed`,
    /// those waiting for a dial with `unreachable`) and drops its stats: for a node removed from
    /// the cluster. A later request starts afresh.
    public func forget(_ nodeID: String) {
        guard let link = links.removeValue(forKey: nodeID) else { return }
        drop(link.phase, failing: PeerPoolError.unreachable(nodeID, reason: "the pool forgot the node"))
        logger.debug("peer forgotten", metadata: ["peer": "\(nodeID)"])
    }

    /// Closes every connection and waits for their tasks; later requests fail `poolClosed`.
    /// Stats stay readable.
    public func close() async {
        if !closed {
            closed = true
            for (node, var link) in links {
                drop(link.phase, failing: PeerPoolError.poolClosed(node))
                link.phase = .idle
                link.stats.state = .idle
                links[node] = link
            }
        }
        while let (generation, task) = tasks.first {
            tasks[generation] = nil
            await task.value
        }
    }

    /// Counters of one peer, nil if the pool has no link to it.
    public func stats(for nodeID: String) -> LinkStats? { links[nodeID]?.stats }

    /// Counters of every peer the pool has a link to.
    public func allStats() -> [String: LinkStats] { links.mapValues(\.stats) }

    // MARK: Service

    /// Waits for graceful shutdown (or cancellation), then `close()`s the pool.
    public func run() async throws {
        do {
            try await gracefulShutdown()
        } catch {}
        await close()
    }

    // MARK: Link state machine (actor-isolated)

    private func acquire(_ node: String) throws(PeerPoolError) -> Acquired {
        guard !closed else { throw PeerPoolError.poolClosed(node) }
        if links[node] == nil {
            guard links.count < settings.maxPeers else {
                refusedPeers += 1
                throw PeerPoolError.unreachable(node, reason: "the pool already holds links to \(settings.maxPeers) peers (max_peers)")
            }
            links[node] = Link()
        }
        links[node]!.stats.requests += 1
        guard let target = address(node) else {
            throw PeerPoolError.unreachable(node, reason: "no address known for the node")
        }
        switch links[node]!.phase {
        case let .connected(generation, current, connection, channel):
            if current == target {
                return .ready(Ready(connection: connection, generation: generation,
                                    clearsFailures: links[node]!.stats.consecutiveFailures > 0))
            }
            logger.info("peer address changed; redialling", metadata: ["peer": "\(node)", "from": "\(current)", "to": "\(target)"])
            channel.close(promise: nil)
            links[node]!.stats.consecutiveFailures = 0
            return try dial(node, target)
        case let .dialing(_, current, waiters):
            if current == target { return .waiting(joinDial(node)) }
            // The dial in progress is for an old address: its outcome will be ignored (stale
            // generation); its waiters move to the new dial.
            links[node]!.stats.consecutiveFailures = 0
            return try dial(node, target, waiters: waiters)
        case let .backingOff(untilNs, current, reason):
            let now = NIODeadline.now().uptimeNanoseconds
            if current == target, now < untilNs {
                let leftMs = (untilNs - now) / 1_000_000
                let failures = links[node]!.stats.consecutiveFailures
                throw PeerPoolError.unreachable(
                    node, reason: "backing off \(leftMs) ms more after \(failures) failed attempt\(failures == 1 ? "" : "s") to \(current): \(reason)")
            }
            if current != target { links[node]!.stats.consecutiveFailures = 0 }
            return try dial(node, target)
        case .idle:
            return try dial(node, target)
        }
    }

    /// Starts a dial of `target` in a new connection task; the request joins its waiters.
    private func dial(_ node: String, _ target: String, waiters: [UInt64] = []) throws(PeerPoolError) -> Acquired {
        guard let parsed = GossipAddress(parsing: target) else {
            links[node]!.phase = .idle
            links[node]!.stats.state = .idle
            let e = PeerPoolError.unreachable(node, reason: "malformed address \"\(target)\" (expected host:port or [v6]:port)")
            dialWaiters.complete(waiters, with: .failure(e))
            throw e
        }
        let generation = nextGeneration
        nextGeneration += 1
        links[node]!.phase = .dialing(generation: generation, address: target, waiters: waiters)
        links[node]!.stats.state = .connecting
        links[node]!.stats.address = target
        let (host, port) = (parsed.host, Int(parsed.port))
        tasks[generation] = Task {
            await self.runConnection(node: node, generation: generation, address: target, host: host, port: port)
            self.taskEnded(generation)
        }
        return .waiting(joinDial(node))
    }

    /// Registers a waiter for the link's dial in progress.
    private func joinDial(_ node: String) -> UInt64 {
        guard case .dialing(let g, let a, var waiters) = links[node]?.phase else {
            preconditionFailure("joinDial(\(node)) without a dial in progress")
        }
        let id = dialWaiters.register()
        waiters.append(id)
        links[node]!.phase = .dialing(generation: g, address: a, waiters: waiters)
        return id
    }

    /// Runs one connection from dial to close, outside the actor.
    private nonisolated func runConnection(node: String, generation: UInt64, address: String, host: String, port: Int) async {
        let configuration = self.configuration
        let channel: Framed
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(.milliseconds(settings.connectTimeoutMs))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connect(host: host, port: port) { configuration.framedChannel($0) }
        } catch {
            await dialFailed(node, generation, address: address, error: describe(error))
            return
        }
        let raw = channel.channel
        var ending = Ending(answered: false, reason: nil)
        do {
            ending = try await PeerConnection.run(channel: channel, settings: settings.connection, handler: handler) { connection in
                guard await self.dialSucceeded(node, generation, connection: connection, channel: raw) else {
                    return Ending(answered: false, reason: nil)
                }
                await connection.waitUntilClosed()
                return Ending(answered: await connection.answersReceived > 0, reason: await connection.closeReason)
            } ?? ending
        } catch {
            ending.reason = "\(error)"
        }
        await connectionEnded(node, generation, ending)
    }

    private func taskEnded(_ generation: UInt64) { tasks[generation] = nil }

    private func dialSucceeded(_ node: String, _ generation: UInt64, connection: PeerConnection, channel: any Channel) -> Bool {
        guard !closed, case let .dialing(g, address, waiters)? = links[node]?.phase, g == generation else {
            return false
        }
        var link = links[node]!
        link.phase = .connected(generation: generation, address: address, connection: connection, channel: channel)
        link.stats.state = .connected
        link.stats.connects += 1
        if link.stats.connects > 1 || link.stats.dialFailures > 0 { link.stats.reconnects += 1 }
        links[node] = link
        // Back after failures is worth a line; routine (re)connects are not.
        logger.log(level: link.stats.consecutiveFailures > 0 ? .info : .debug, "peer connected", metadata: [
            "peer": "\(node)", "address": "\(address)", "after_failures": "\(link.stats.consecutiveFailures)",
        ])
        let ready = Ready(connection: connection, generation: generation, clearsFailures: link.stats.consecutiveFailures > 0)
        dialWaiters.complete(waiters, with: .success(ready))
        return true
    }

    /// A request found the connection closed before its task reported it: forget it now so the
    /// retry dials. (Its task's report is then ignored as stale.)
    private func connectionFound(closed node: String, _ generation: UInt64) {
        guard case let .connected(g, _, _, _)? = links[node]?.phase, g == generation else { return }
        links[node]!.phase = .idle
        links[node]!.stats.state = .idle
    }

    private func answered(_ node: String, _ generation: UInt64) {
        guard case let .connected(g, _, _, _)? = links[node]?.phase, g == generation else { return }
        links[node]!.stats.consecutiveFailures = 0
    }

    private func dialFailed(_ node: String, _ generation: UInt64, address: String, error: String) {
        guard !closed, case let .dialing(g, _, waiters)? = links[node]?.phase, g == generation else { return }
        var link = links[node]!
        link.stats.dialFailures += 1
        link.stats.consecutiveFailures += 1
        let failures = link.stats.consecutiveFailures
        let delayMs = settings.backoff.delayMs(failures: failures, random: &random)
        link.phase = .backingOff(untilNs: NIODeadline.now().uptimeNanoseconds + UInt64(delayMs) * 1_000_000,
                                 address: address, reason: "dial failed: \(error)")
        link.stats.state = .backingOff
        links[node] = link
        // The first failure of a run is news; repeats while the peer stays down are not.
        let level: Logger.Level = failures == 1 ? .warning : .debug
        logger.log(level: level, "cannot connect to peer", metadata: [
            "peer": "\(node)", "address": "\(address)", "error": "\(error)", "failures": "\(failures)", "retry_ms": "\(delayMs)",
        ])
        let e = PeerPoolError.unreachable(node, reason: "cannot connect to \(address): \(error)")
        dialWaiters.complete(waiters, with: .failure(e))
    }

    private func connectionEnded(_ node: String, _ generation: UInt64, _ ending: Ending) {
        guard !closed, case let .connected(g, address, _, _)? = links[node]?.phase, g == generation else { return }
        var link = links[node]!
        if ending.answered {
            // It worked: the peer restarted or went away. Redial on the next request.
            link.stats.consecutiveFailures = 0
            link.phase = .idle
            link.stats.state = .idle
            logger.info("peer connection closed", metadata: [
                "peer": "\(node)", "address": "\(address)", "reason": "\(ending.reason ?? "closed")",
            ])
        } else {
            // Dropped before answering anything: the peer refuses us (wrong cluster key, its
            // connection limit) or dies at once. Redialling per request would hammer it.
            link.stats.consecutiveFailures += 1
            let failures = link.stats.consecutiveFailures
            let delayMs = settings.backoff.delayMs(failures: failures, random: &random)
            let reason = ending.reason.map { "connection closed: \($0)" }
                ?? "the peer closed the connection before answering (another cluster key, or its connection limit?)"
            link.phase = .backingOff(untilNs: NIODeadline.now().uptimeNanoseconds + UInt64(delayMs) * 1_000_000,
                                     address: address, reason: reason)
            link.stats.state = .backingOff
            logger.log(level: failures == 1 ? .warning : .debug, "peer connection lost before any answer", metadata: [
                "peer": "\(node)", "address": "\(address)", "reason": "\(reason)", "failures": "\(failures)", "retry_ms": "\(delayMs)",
            ])
        }
        links[node] = link
    }

    private func drop(_ phase: Phase, failing error: PeerPoolError) {
        switch phase {
        case let .connected(_, _, _, channel): channel.close(promise: nil)
        case let .dialing(_, _, waiters): dialWaiters.complete(waiters, with: .failure(error))
        case .idle, .backingOff: break
        }
    }

    private func record(_ error: PeerPoolError) {
        guard var link = links[error.nodeID] else { return }
        switch error {
        case .unreachable: link.stats.unreachable += 1
        case .timedOut: link.stats.timedOut += 1
        case .overloaded: link.stats.overloaded += 1
        case .connectionClosed, .poolClosed: link.stats.closed += 1
        }
        links[error.nodeID] = link
    }

    private func recordRemoteOverload(_ node: String) { links[node]?.stats.overloaded += 1 }
}

/// A dial error in a line: NIO's connect errors nest the per-address errors.
private func describe(_ error: any Error) -> String {
    if let e = error as? NIOConnectionError {
        let tried = e.connectionErrors.map { "\($0.target): \($0.error)" }
        if let first = tried.first { return tried.count == 1 ? first : tried.joined(separator: "; ") }
        if let dns = e.dnsAAAAError ?? e.dnsAError { return "cannot resolve \(e.host): \(dns)" }
    }
    if case ChannelError.connectTimeout(let after)? = error as? ChannelError { return "connect timeout after \(after)" }
    return "\(error)"
}

/// Requests waiting for a dial, by waiter id. A lock rather than actor state so that a waiter
/// whose deadline passed (or whose task was cancelled) leaves at once from its cancellation
/// handler; the pool completes the ids its dial collected, and a waiter that has not started
/// waiting yet finds its result stored.
private final class DialWaiters: Sendable {
    typealias Ready = PeerPool.Ready

    private enum Slot {
        /// Registered; the continuation once the request waits.
        case waiting(CheckedContinuation<Ready, any Error>?)
        /// Completed before the request started waiting.
        case done(Result<Ready, PeerPoolError>)
    }

    private let state = Mutex<(next: UInt64, slots: [UInt64: Slot])>((1, [:]))

    func register() -> UInt64 {
        state.withLock { s in
            let id = s.next
            s.next += 1
            s.slots[id] = .waiting(nil)
            return id
        }
    }

    /// Delivers a dial's outcome to its waiters (ids that already left are skipped).
    func complete(_ ids: [UInt64], with result: Result<Ready, PeerPoolError>) {
        let waiting = state.withLock { s -> [CheckedContinuation<Ready, any Error>] in
            var out: [CheckedContinuation<Ready, any Error>] = []
            for id in ids {
                guard case let .waiting(c)? = s.slots[id] else { continue }
                if let c {
                    s.slots[id] = nil
                    out.append(c)
                } else {
                    s.slots[id] = .done(result)
                }
            }
            return out
        }
        for c in waiting { c.resume(with: result.mapError { $0 }) }
    }

    /// The dial's outcome; `CancellationError` when the calling task is cancelled first.
    func wait(_ id: UInt64) async throws -> Ready {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Ready, any Error>) in
                let now: Result<Ready, any Error>? = state.withLock { s in
                    switch s.slots[id] {
                    case let .done(result)?:
                        s.slots[id] = nil
                        return result.mapError { $0 }
                    case .waiting?:
                        if Task.isCancelled {
                            s.slots[id] = nil
                            return .failure(CancellationError())
                        }
                        s.slots[id] = .waiting(c)
                        return nil
                    case nil:
                        return .failure(CancellationError())
                    }
                }
                if let now { c.resume(with: now) }
            }
        } onCancel: {
            let c = state.withLock { s -> CheckedContinuation<Ready, any Error>? in
                guard case let .waiting(c)? = s.slots[id] else { return nil }
                s.slots[id] = nil
                return c
            }
            c?.resume(throwing: CancellationError())
        }
    }

    /// Waiters registered and not yet gone (for tests).
    var count: Int { state.withLock { $0.slots.count } }
}
