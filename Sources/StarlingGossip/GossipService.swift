import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import StarlingMembership
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The NIO shell around `SWIMInstance`: a UDP socket for the protocol, a TCP listener for
/// push-pull on the same port number, a tick loop that sleeps until the instance's next deadline,
/// and the outlets the rest of the node consumes (member snapshots, a change stream, metadata
/// updates, graceful leave).
///
/// All protocol decisions are the instance's; this actor only feeds it events (datagrams, TCP
/// frames, ticks, push-pull outcomes) and carries out its directives. Send errors never reach the
/// instance: a failed send is a lost datagram, which the protocol already tolerates. NIO closes a
/// UDP channel on most send errors (e.g. EPERM from an nftables output drop), so the UDP socket is
/// rebound whenever it closes.
///
/// As a `Service`: `run()` owns every child task; on graceful shutdown it leaves the cluster
/// (announce `left`, wait up to `leaveTimeoutMs` for it to spread) and closes its sockets.
public actor GossipService: Service {
    public nonisolated let configuration: GossipConfiguration
    /// The address other members reach this node at (the bound port if 0 was asked).
    public nonisolated let advertisedAddress: GossipAddress
    /// The local port actually bound (UDP and TCP).
    public nonisolated let boundPort: Int
    let logger: Logger
    let group: any EventLoopGroup
    let metrics = GossipMetrics()
    /// The actor runs on one NIO event loop, not on Swift's cooperative pool: CPU-bound work
    /// elsewhere in the process (a long query, a simulation in tests) must not delay acks and
    /// ticks, or healthy nodes would be suspected.
    let loop: any EventLoop
    public nonisolated var unownedExecutor: UnownedSerialExecutor { loop.executor.asUnownedSerialExecutor() }

    var instance: SWIMInstance<Xoshiro256>
    var lastStats = SWIMStats()
    /// Instance time is milliseconds of a monotonic clock (NIODeadline uptime); `wallOffsetMs`
    /// converts it to Unix time for the API.
    let wallOffsetMs: Int64

    var udp: (any Channel)?
    let tcpServer: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
    var tickDeadlineMs: Int64 = .max
    let bell = Doorbell()

    let inbound: AsyncStream<InboundDatagram>
    let inboundContinuation: AsyncStream<InboundDatagram>.Continuation
    let jobs: AsyncStream<PushPullJob>
    let jobsContinuation: AsyncStream<PushPullJob>.Continuation
    /// Change-stream subscribers; a lock (not actor state) so a terminated stream can remove
    /// itself synchronously.
    let subscribers = Subscribers()
    var servingPushPulls = 0
    var started = false

    struct InboundDatagram: Sendable {
        var bytes: [UInt8]
        var from: GossipAddress
    }

    struct PushPullJob: Sendable {
        var to: GossipAddress
        var join: Bool
        var frame: [UInt8]
    }

    public enum StartError: Error, CustomStringConvertible {
        case invalidSettings(String)
        case noAdvertiseAddress(String)
        case bindFailed(String)

        public var description: String {
            switch self {
            case .invalidSettings(let s): "invalid gossip settings: \(s)"
            case .noAdvertiseAddress(let s): "cannot determine the gossip advertise address: \(s)"
            case .bindFailed(let s): "cannot bind gossip sockets: \(s)"
            }
        }
    }

    /// Binds the UDP and TCP sockets (so a busy port fails at startup, not later) and creates the
    /// instance. Call `run()` (directly or through a ServiceGroup) to start the protocol.
    public static func bind(_ configuration: GossipConfiguration, logger: Logger,
                            group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> GossipService {
        if let p = configuration.settings.validate() { throw StartError.invalidSettings(p) }
        let (inbound, inCont) = AsyncStream<InboundDatagram>.makeStream(
            bufferingPolicy: .bufferingNewest(configuration.inboundQueueLimit))
        // With port 0 the UDP socket picks a free port and TCP must take the same number, which
        // a TCP socket (e.g. another process's outgoing connection) may hold: try a few ports.
        let attempts = configuration.bind.port == 0 ? 16 : 1
        var bound: (udp: any Channel, port: Int, server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>)?
        for attempt in 1...attempts {
            let udp: any Channel
            do {
                udp = try await Self.bindUDP(host: configuration.bind.host, port: Int(configuration.bind.port), group: group, sink: inCont)
            } catch {
                throw StartError.bindFailed("UDP \(configuration.bind): \(error)")
            }
            let port = udp.localAddress?.port ?? Int(configuration.bind.port)
            do {
                let server = try await ServerBootstrap(group: group)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .bind(host: configuration.bind.host, port: port) { child in
                        child.eventLoop.makeCompletedFuture {
                            try child.pipeline.syncOperations.addHandler(ByteToMessageHandler(PushPullFrameDecoder()))
                            return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: child)
                        }
                    }
                bound = (udp, port, server)
                break
            } catch {
                try? await udp.close()
                if attempt == attempts {
                    throw StartError.bindFailed("TCP \(configuration.bind.host):\(port): \(error)")
                }
            }
        }
        guard let (udp, port, server) = bound else { throw StartError.bindFailed("no port") }
        let advertise: GossipAddress
        do {
            advertise = try Self.advertiseAddress(configuration, boundPort: port)
        } catch {
            try? await udp.close()
            try? await server.channel.close()
            throw error
        }
        return GossipService(configuration: configuration, advertise: advertise, port: port, udp: udp, server: server,
                             inbound: (inbound, inCont), logger: logger, group: group)
    }

    init(configuration: GossipConfiguration, advertise: GossipAddress, port: Int, udp: any Channel,
         server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>,
         inbound: (AsyncStream<InboundDatagram>, AsyncStream<InboundDatagram>.Continuation), logger: Logger,
         group: any EventLoopGroup) {
        self.configuration = configuration
        self.advertisedAddress = advertise
        self.boundPort = port
        self.udp = udp
        self.tcpServer = server
        (self.inbound, self.inboundContinuation) = inbound
        (self.jobs, self.jobsContinuation) = AsyncStream<PushPullJob>.makeStream()
        var l = logger
        l[metadataKey: "node"] = "\(configuration.name)"
        self.logger = l
        self.group = group
        self.loop = group.next()
        let now = Self.monotonicMs()
        var sys = SystemRandomNumberGenerator()
        self.wallOffsetMs = Self.wallClockMs() - now
        self.instance = SWIMInstance(id: configuration.nodeID, name: configuration.name, address: advertise,
                                     metadata: configuration.metadata, settings: configuration.settings,
                                     cluster: configuration.cluster, keyring: configuration.keyring,
                                     incarnation: configuration.initialIncarnation ?? UInt64(max(0, Self.wallClockMs() / 1_000)),
                                     seed: sys.next(), nowMs: now)
    }

    // MARK: Public API (for the node, placement and the HTTP route)

    /// All members including this node, sorted by node ID.
    public func members() -> [Member] { instance.allMembers }

    /// This node as announced.
    public func localMember() -> Member { instance.myself }

    /// Counters, as the instance keeps them.
    public func stats() -> SWIMStats { instance.stats }

    /// Unix time (ms) of a member's `lastChangeMs`.
    public func wallClockMs(ofInstanceMs ms: Int64) -> Int64 { ms + wallOffsetMs }

    /// A stream of membership changes from now on (each subscriber gets every change; up to
    /// 4,096 undelivered changes are buffered, then the oldest are dropped). Take a `members()`
    /// snapshot after subscribing to start from a consistent view.
    public func subscribe() -> AsyncStream<MembershipChange> {
        subscribers.add(bufferLimit: 4_096)
    }

    /// Whether this node is part of a cluster: it had no seeds to join, a join push-pull
    /// succeeded, or other members reached it first (they joined through it).
    public var hasJoined: Bool { !instance.isJoining || instance.liveCount > 1 }

    /// Returns true once `hasJoined` holds; false if the service stopped or the calling task was
    /// cancelled first. Join attempts are retried with backoff (`joinRetryInitialMs` …
    /// `joinRetryMaxMs`) for as long as it takes. A join always changes the view (the seed's
    /// members appear), so waking on membership changes is enough.
    public nonisolated func waitUntilJoined() async -> Bool {
        let changes = await subscribe()
        if await hasJoined { return true }
        for await _ in changes {
            if await hasJoined { return true }
        }
        return false
    }

    /// Sets this node's lifecycle state (joining → active → leaving) and disseminates it.
    public func setState(_ state: NodeState) {
        var m = instance.myself.metadata
        m.state = state
        updateMetadata(m)
    }

    /// Replaces this node's metadata and disseminates it with a higher incarnation.
    public func updateMetadata(_ metadata: NodeMetadata) {
        execute(instance.updateMetadata(metadata, nowMs: Self.monotonicMs()))
    }

    /// Leaves the cluster gracefully and waits (at most `leaveTimeoutMs`) until the announcement
    /// has been disseminated. `run()` does this on graceful shutdown; calling it earlier is fine.
    public func leave() async {
        guard instance.myself.status != .left else { return }
        logger.notice("leaving the cluster", metadata: ["incarnation": "\(instance.myself.incarnation + 1)"])
        execute(instance.leave(nowMs: Self.monotonicMs()))
        // The tick loop keeps gossiping the announcement; check back once per gossip round.
        let deadline = Self.monotonicMs() + configuration.leaveTimeoutMs
        while !instance.isLeaveComplete && Self.monotonicMs() < deadline && started {
            try? await Task.sleep(for: .milliseconds(configuration.settings.gossipIntervalMs))
        }
    }

    // MARK: Service

    public func run() async throws {
        precondition(!started, "GossipService.run() called twice")
        started = true
        logger.info("gossip started", metadata: [
            "id": "\(configuration.nodeID)", "advertise": "\(advertisedAddress)", "port": "\(boundPort)",
            "cluster": "\(configuration.cluster)", "encrypted": "\(configuration.keyring.isEncrypting)",
            "seeds": "\(configuration.seeds.map(\.description).joined(separator: ","))",
        ])
        execute(instance.join(seeds: configuration.seeds, nowMs: Self.monotonicMs()))

        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.datagramLoop() }
            group.addTask { await self.tickLoop() }
            group.addTask { await self.udpWatchLoop() }
            group.addTask { await self.acceptLoop() }
            group.addTask { await self.pushPullLoop() }

            // Run until graceful shutdown (leave first) or cancellation (just stop).
            do {
                try await gracefulShutdown()
                await self.leave()
            } catch {}
            await self.stop()
            group.cancelAll()
        }
        logger.info("gossip stopped")
    }

    func stop() async {
        started = false
        bell.ring()
        inboundContinuation.finish()
        jobsContinuation.finish()
        subscribers.finishAll()
        let u = udp
        udp = nil
        try? await u?.close()
        try? await tcpServer.channel.close()
    }

    // MARK: Loops

    func datagramLoop() async {
        for await d in inbound {
            execute(instance.onDatagram(d.bytes, from: d.from, nowMs: Self.monotonicMs()))
        }
    }

    func tickLoop() async {
        while !Task.isCancelled && started {
            let now = Self.monotonicMs()
            if now >= tickDeadlineMs {
                tickDeadlineMs = .max
                execute(instance.onTick(nowMs: now))
                continue
            }
            let target = tickDeadlineMs == .max ? now + 1_000 : tickDeadlineMs
            await bell.wait(until: .uptimeNanoseconds(UInt64(max(0, target)) * 1_000_000), on: group.next())
        }
    }

    /// Rebinds the UDP socket whenever NIO closes it (send errors close UDP channels).
    func udpWatchLoop() async {
        var backoffMs: Int64 = 50
        var lastLogMs: Int64 = .min / 2
        var unlogged = 0
        while !Task.isCancelled && started {
            if let ch = udp {
                try? await ch.closeFuture.get()
                guard started else { return }
                udp = nil
                metrics.udpRebinds.increment()
                // Under an output drop every send to the blocked peer closes the socket: log at
                // most every 10 s, with the count, instead of once per datagram.
                unlogged += 1
                let now = Self.monotonicMs()
                if now - lastLogMs >= 10_000 {
                    logger.warning("gossip UDP socket closed by a send error; rebinding",
                                   metadata: ["port": "\(boundPort)", "rebinds": "\(unlogged)"])
                    lastLogMs = now
                    unlogged = 0
                }
            }
            do {
                udp = try await Self.bindUDP(host: configuration.bind.host, port: boundPort, group: group, sink: inboundContinuation)
                backoffMs = 50
            } catch {
                logger.error("gossip UDP rebind failed", metadata: ["error": "\(error)", "retry_ms": "\(backoffMs)"])
                try? await Task.sleep(for: .milliseconds(backoffMs))
                backoffMs = min(backoffMs * 2, 2_000)
            }
        }
    }

    func acceptLoop() async {
        do {
            try await tcpServer.executeThenClose { connections in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await conn in connections {
                        guard self.reservePushPullSlot() else {
                            self.metrics.dropped["pushpull_limit"]!.increment()
                            try? await conn.channel.close()
                            continue
                        }
                        group.addTask {
                            await self.serve(conn)
                            await self.releasePushPullSlot()
                        }
                    }
                }
            }
        } catch is CancellationError {
        } catch {
            if started { logger.error("gossip TCP listener failed", metadata: ["error": "\(error)"]) }
        }
    }

    func reservePushPullSlot() -> Bool {
        guard servingPushPulls < configuration.maxConcurrentPushPulls else { return false }
        servingPushPulls += 1
        return true
    }

    func releasePushPullSlot() { servingPushPulls -= 1 }

    nonisolated func serve(_ conn: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        let remote = conn.channel.remoteAddress
        do {
            try await withDeadline(ms: configuration.pushPullTimeoutMs) {
                try await conn.executeThenClose { inbound, outbound in
                    var it = inbound.makeAsyncIterator()
                    guard let frame = try await it.next() else { return }
                    let from = remote.flatMap { a in a.ipAddress.map { GossipAddress(host: $0, port: UInt16(a.port ?? 0)) } }
                        ?? GossipAddress(host: "unknown", port: 1)
                    if let reply = await self.handlePushPullRequest(Array(buffer: frame), from: from) {
                        try await outbound.write(framed(reply, allocator: conn.channel.allocator))
                    }
                }
            }
        } catch {
            if error is PushPullFrameDecoder.FrameTooLarge { metrics.dropped["pushpull_frame_too_large"]!.increment() }
            logger.debug("push-pull request failed", metadata: ["remote": "\(remote.map { "\($0)" } ?? "?")", "error": "\(error)"])
            try? await conn.channel.close()
        }
    }

    func handlePushPullRequest(_ frame: [UInt8], from: GossipAddress) -> [UInt8]? {
        let (reply, d) = instance.onPushPullRequest(frame, from: from, nowMs: Self.monotonicMs())
        execute(d)
        return reply
    }

    func pushPullLoop() async {
        await withDiscardingTaskGroup { group in
            for await job in jobs {
                group.addTask { await self.performPushPull(job) }
            }
        }
    }

    nonisolated func performPushPull(_ job: PushPullJob) async {
        let addresses: [SocketAddress]
        do {
            addresses = try await resolve(job.to)
        } catch PushPullError.onlySelf {
            // The name resolves to this node alone (Compose's first service, a headless
            // service listing only this pod): tell the state machine, which may start a
            // cluster of one instead of joining forever.
            await pushPullReachedSelf(job)
            return
        } catch {
            logger.debug("cannot resolve push-pull peer", metadata: ["peer": "\(job.to)", "error": "\(error)"])
            await pushPullFailed(job)
            return
        }
        for address in addresses {
            do {
                let reply = try await exchange(job.frame, with: address)
                let from = GossipAddress(host: address.ipAddress ?? job.to.host, port: UInt16(address.port ?? Int(job.to.port)))
                await pushPullSucceeded(job, reply: reply, from: from)
                return
            } catch {
                logger.debug("push-pull failed", metadata: ["peer": "\(address)", "join": "\(job.join)", "error": "\(error)"])
            }
        }
        await pushPullFailed(job)
    }

    func pushPullSucceeded(_ job: PushPullJob, reply: [UInt8], from: GossipAddress) {
        let wasJoining = instance.isJoining
        execute(instance.onPushPullResponse(reply, from: from, join: job.join, nowMs: Self.monotonicMs()))
        if job.join && wasJoining && !instance.isJoining {
            if instance.liveCount > 1 {
                logger.info("joined the cluster", metadata: ["via": "\(from)", "members": "\(instance.liveCount)"])
            } else {
                logStartedAlone()
            }
        }
    }

    /// A join ended with only this node reachable. Said once at notice level; while alone the
    /// node keeps retrying its seeds, and each later round is only worth a debug line.
    func logStartedAlone() {
        let seeds = configuration.seeds.map(\.description).joined(separator: ",")
        if instance.liveCount > 1 {
            logger.info("join ended: the seeds reach only this node, and other members already joined through it",
                        metadata: ["seeds": "\(seeds)", "members": "\(instance.liveCount)"])
        } else if instance.stats.joinsEndedAlone <= 1 {
            logger.notice("the seeds reach only this node: starting a new cluster; the seeds stay polled with backoff, so peers that start later merge",
                          metadata: ["seeds": "\(seeds)"])
        } else {
            logger.debug("still alone: the seeds reach only this node", metadata: ["seeds": "\(seeds)", "rounds": "\(instance.stats.joinsEndedAlone)"])
        }
    }

    func pushPullReachedSelf(_ job: PushPullJob) {
        let wasJoining = instance.isJoining
        execute(instance.onPushPullReachedSelf(to: job.to, join: job.join, nowMs: Self.monotonicMs()))
        if job.join && wasJoining && !instance.isJoining { logStartedAlone() }
    }

    func pushPullFailed(_ job: PushPullJob) {
        let wasJoining = instance.isJoining
        if job.join {
            logger.warning("join attempt through seed failed", metadata: ["seed": "\(job.to)"])
        }
        execute(instance.onPushPullFailed(to: job.to, join: job.join, nowMs: Self.monotonicMs()))
        if job.join && wasJoining && !instance.isJoining { logStartedAlone() }
    }

    nonisolated func exchange(_ frame: [UInt8], with address: SocketAddress) async throws -> [UInt8] {
        try await withDeadline(ms: configuration.pushPullTimeoutMs) {
            let ch = try await ClientBootstrap(group: self.group)
                .connectTimeout(.milliseconds(self.configuration.pushPullTimeoutMs))
                .connect(to: address) { ch in
                    ch.eventLoop.makeCompletedFuture {
                        try ch.pipeline.syncOperations.addHandler(ByteToMessageHandler(PushPullFrameDecoder()))
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: ch)
                    }
                }
            return try await ch.executeThenClose { inbound, outbound in
                try await outbound.write(framed(frame, allocator: ch.channel.allocator))
                var it = inbound.makeAsyncIterator()
                guard let reply = try await it.next() else { throw PushPullError.closedWithoutReply }
                return Array(buffer: reply)
            }
        }
    }

    enum PushPullError: Error { case closedWithoutReply, timedOut, noAddress, onlySelf }

    /// All addresses of `peer` (a literal, or every A/AAAA record of a name), minus this node's
    /// own address, at most `maxAddressesPerSeed`, in random order.
    nonisolated func resolve(_ peer: GossipAddress) async throws -> [SocketAddress] {
        if let literal = try? SocketAddress(ipAddress: peer.host, port: Int(peer.port)) { return [literal] }
        let host = peer.host, port = Int(peer.port)
        let all = try await NIOThreadPool.singleton.runIfActive { try Self.getaddrinfo(host: host, port: port) }
        let own = advertisedAddress
        var out = all.filter { !($0.ipAddress == own.host && $0.port == Int(own.port)) }
        out.shuffle()
        if out.count > configuration.maxAddressesPerSeed { out.removeLast(out.count - configuration.maxAddressesPerSeed) }
        guard !out.isEmpty else { throw all.isEmpty ? PushPullError.noAddress : PushPullError.onlySelf }
        return out
    }

    static func getaddrinfo(host: String, port: Int) throws -> [SocketAddress] {
        var hints = addrinfo()
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = Glibc.getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let first = result else { throw PushPullError.noAddress }
        defer { freeaddrinfo(first) }
        var out: [SocketAddress] = []
        var cur: UnsafeMutablePointer<addrinfo>? = first
        while let ai = cur {
            if let sa = ai.pointee.ai_addr {
                switch ai.pointee.ai_family {
                case AF_INET:
                    let a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
                    out.append(SocketAddress(a, host: host))
                case AF_INET6:
                    let a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }
                    out.append(SocketAddress(a, host: host))
                default: break
                }
            }
            cur = ai.pointee.ai_next
        }
        var seen = Set<String>()
        return out.filter { seen.insert("\($0.ipAddress ?? "")|\($0.port ?? 0)").inserted }
    }

    // MARK: Directives

    func execute(_ directives: [SWIMDirective]) {
        var viewChanged = false
        for d in directives {
            switch d {
            case .send(let to, let datagram, _):
                send(datagram, to: to)
            case .pushPull(let to, let join, let frame):
                jobsContinuation.yield(PushPullJob(to: to, join: join, frame: frame))
            case .memberChanged(let change):
                viewChanged = true
                log(change)
                subscribers.yield(change)
            case .scheduleTick(let at):
                if at < tickDeadlineMs {
                    tickDeadlineMs = at
                    bell.ring()
                }
            }
        }
        let s = instance.stats
        if s.duplicateNodeID > lastStats.duplicateNodeID {
            logger.error("another node uses this node's ID (copied data directory?)", metadata: ["id": "\(configuration.nodeID)"])
        }
        if s != lastStats || viewChanged || !metricsRecorded {
            metricsRecorded = true
            metrics.record(from: lastStats, to: s, counts: instance.countsByStatus, health: instance.health)
            lastStats = s
        }
    }

    /// Whether the gauges were set at least once (a lone node's stats may never change).
    var metricsRecorded = false
    var addressCache: [GossipAddress: SocketAddress] = [:]

    func send(_ datagram: [UInt8], to: GossipAddress) {
        guard let ch = udp else {
            metrics.dropped["send_error"]!.increment()
            return
        }
        let address: SocketAddress
        if let a = addressCache[to] {
            address = a
        } else {
            guard let a = try? SocketAddress(ipAddress: to.host, port: Int(to.port)) else {
                metrics.dropped["send_error"]!.increment()
                logger.debug("member address is not an IP literal", metadata: ["address": "\(to)"])
                return
            }
            if addressCache.count > 65_536 { addressCache.removeAll() }
            addressCache[to] = a
            address = a
        }
        var buffer = ch.allocator.buffer(capacity: datagram.count)
        buffer.writeBytes(datagram)
        metrics.datagramBytes.record(datagram.count)
        let promise = ch.eventLoop.makePromise(of: Void.self)
        let dropped = metrics.dropped["send_error"]!
        promise.futureResult.whenFailure { _ in dropped.increment() }
        ch.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: buffer), promise: promise)
    }

    func log(_ c: MembershipChange) {
        let md: Logger.Metadata = [
            "member": "\(c.member.name)", "member_id": "\(c.member.id)", "address": "\(c.member.address)",
            "incarnation": "\(c.member.incarnation)", "state": "\(c.member.metadata.state)",
            "previous": "\(c.previousStatus.map(\.description) ?? "none")",
        ]
        switch c.kind {
        case .dead: logger.warning("member dead", metadata: md)
        case .suspect: logger.notice("member suspect", metadata: md)
        case .joined: logger.info("member joined", metadata: md)
        case .alive: logger.notice("member alive again", metadata: md)
        case .left: logger.info("member left", metadata: md)
        case .removed: logger.info("member removed", metadata: md)
        case .metadataChanged: logger.info("member metadata changed", metadata: md)
        }
    }

    // MARK: Helpers

    static func bindUDP(host: String, port: Int, group: any EventLoopGroup,
                        sink: AsyncStream<InboundDatagram>.Continuation) async throws -> any Channel {
        try await DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHandler(DatagramInboundHandler(sink: sink))
                }
            }
            .bind(host: host, port: port).get()
    }

    static func advertiseAddress(_ c: GossipConfiguration, boundPort: Int) throws -> GossipAddress {
        if let a = c.advertise {
            guard (try? SocketAddress(ipAddress: a.host, port: Int(a.port))) != nil else {
                throw StartError.noAdvertiseAddress("advertise host \(a.host) is not an IP address")
            }
            // Port 0: the port actually bound (the advertised IP differs, the port does not).
            return a.port == 0 ? GossipAddress(host: a.host, port: UInt16(boundPort)) : a
        }
        let host = c.bind.host
        if host != "0.0.0.0" && host != "::" && host != "" {
            guard (try? SocketAddress(ipAddress: host, port: boundPort)) != nil else {
                throw StartError.noAdvertiseAddress("bind host \(host) is not an IP address; set an advertise address")
            }
            return GossipAddress(host: host, port: UInt16(boundPort))
        }
        let devices = (try? System.enumerateDevices()) ?? []
        for d in devices {
            if let a = d.address, case .v4 = a, let ip = a.ipAddress, !ip.hasPrefix("127.") {
                return GossipAddress(host: ip, port: UInt16(boundPort))
            }
        }
        // A host with no network but loopback can still be a cluster of one (a laptop offline,
        // a sandbox): nobody else could reach it anyway. With seeds it must be reachable.
        if c.seeds.isEmpty { return GossipAddress(host: "127.0.0.1", port: UInt16(boundPort)) }
        throw StartError.noAdvertiseAddress("no non-loopback IPv4 interface; set an advertise address")
    }

    static func monotonicMs() -> Int64 { Int64(NIODeadline.now().uptimeNanoseconds / 1_000_000) }

    static func wallClockMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

final class Subscribers: Sendable {
    private let table = Mutex<(next: Int, items: [Int: AsyncStream<MembershipChange>.Continuation])>((0, [:]))

    func add(bufferLimit: Int) -> AsyncStream<MembershipChange> {
        let (stream, cont) = AsyncStream<MembershipChange>.makeStream(bufferingPolicy: .bufferingNewest(bufferLimit))
        let key = table.withLock { t in
            let k = t.next
            t.next += 1
            t.items[k] = cont
            return k
        }
        cont.onTermination = { [weak self] _ in _ = self?.table.withLock { $0.items.removeValue(forKey: key) } }
        return stream
    }

    func yield(_ change: MembershipChange) {
        let conts = table.withLock { Array($0.items.values) }
        for c in conts { c.yield(change) }
    }

    func finishAll() {
        let conts = table.withLock { t in
            let c = Array(t.items.values)
            t.items.removeAll()
            return c
        }
        for c in conts { c.finish() }
    }
}

/// Reads datagrams off the socket into the service's bounded queue. Read errors are logged by
/// NIO and do not close the channel; the service watches for closure and rebinds.
final class DatagramInboundHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let sink: AsyncStream<GossipService.InboundDatagram>.Continuation
    static let queueFull = Metrics.Counter(label: "starling_gossip_dropped_total", dimensions: [("reason", "inbound_queue_full")])

    init(sink: AsyncStream<GossipService.InboundDatagram>.Continuation) { self.sink = sink }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let env = unwrapInboundIn(data)
        guard let ip = env.remoteAddress.ipAddress, let port = env.remoteAddress.port else { return }
        let result = sink.yield(GossipService.InboundDatagram(bytes: Array(buffer: env.data), from: GossipAddress(host: ip, port: UInt16(port))))
        if case .dropped = result { Self.queueFull.increment() }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Swallow: ICMP-induced errors (ECONNREFUSED) must not close the socket.
    }
}

/// Runs `body`, throwing `timedOut` if it takes longer than `ms`.
func withDeadline<T: Sendable>(ms: Int64, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(ms))
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw GossipService.PushPullError.timedOut
        }
        return value
    }
}

import Metrics
