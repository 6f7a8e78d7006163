import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import StarlingPeerWire
import Synchronization

/// The listening side of peer RPC: a TCP listener whose every accepted connection gets the
/// framing handlers (`PeerWireConfiguration.addHandlers`) and is served by
/// `PeerConnection.run(…, body: nil)` with one `PeerRequestHandler` until the peer closes it.
///
/// Accepted connections are bounded (`Settings.maxConnections`): one more is closed at once and
/// counted in `Stats.refused`, so a misbehaving client (or a storm of redials) cannot exhaust
/// file descriptors and tasks. A connection that ends with a frame-level error (wrong cluster
/// key, garbage, a truncated frame) is closed and counted by `PeerWireError.reason` in
/// `Stats.closedByError`; it never affects other connections.
///
/// As a `Service`: `bind` opens the socket (a busy port fails at startup); `run()` accepts until
/// graceful shutdown or cancellation, then closes the listener and every connection — requests
/// the peers still have in flight fail there with `connectionClosed`, and their coordinators
/// fall back to other replicas or hints. `run()` returns once every connection task ended.
public final class PeerServer: Service, Sendable {
    public struct Settings: Sendable {
        /// Per-connection behaviour: handler bound, requester limits, placement version stamp.
        public var connection: PeerConnection.Settings
        /// Connections served at once. Default 1_024: every other node of the cluster dials this
        /// one once (`PeerPool` keeps one connection per peer), so this allows a ~1,000-node
        /// cluster plus tooling; each connection costs a socket, a task and its buffers. One more
        /// is closed on accept and counted in `Stats.refused`.
        public var maxConnections: Int
        /// The listen backlog (connections the kernel queues before `accept`). Default 256:
        /// absorbs every peer redialling at once after this node restarts.
        public var backlog: Int

        public init(connection: PeerConnection.Settings = .init(), maxConnections: Int = 1_024, backlog: Int = 256) {
            precondition(maxConnections >= 1, "maxConnections \(maxConnections) must be at least 1")
            precondition(backlog >= 1, "backlog \(backlog) must be at least 1")
            self.connection = connection
            self.maxConnections = maxConnections
            self.backlog = backlog
        }
    }

    /// Counters for `/metrics` (monotonic except `active`).
    public struct Stats: Sendable, Equatable {
        /// Connections accepted and served.
        public var accepted: UInt64 = 0
        /// Connections closed at accept because `maxConnections` were being served.
        public var refused: UInt64 = 0
        /// Connections being served now.
        public var active: Int = 0
        /// Connections that ended with an error, by reason: `PeerWireError.reason` for frame-level
        /// errors (`authentication`, `bad_magic`, …), `truncated` for a peer that closed inside
        /// a frame, `protocol` for a protocol violation, `io` for socket errors.
        public var closedByError: [String: UInt64] = [:]

        public init() {}
    }

    public enum StartError: Error, Equatable, CustomStringConvertible {
        /// The listener could not be bound; `address` is `host:port` as asked.
        case bindFailed(address: String, reason: String)

        public var description: String {
            switch self {
            case let .bindFailed(address, reason): "cannot bind the peer listener on \(address): \(reason)"
            }
        }
    }

    private typealias Framed = NIOAsyncChannel<PeerFrame, PeerFrame>

    /// The host the listener is bound to, as given to `bind`.
    public let host: String
    /// The port actually bound (the kernel's choice when 0 was asked).
    public let boundPort: Int
    private let listener: NIOAsyncChannel<Framed, Never>
    /// Every accepted channel from its initializer on, so stopping closes even those not yet
    /// handed to the accept loop.
    private let children: ChildChannels
    private let settings: Settings
    private let handler: PeerRequestHandler
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var stats = Stats()
        var running = false
        var stopping = false
        var lastRefusalLogNs: UInt64 = 0
        var unloggedRefusals = 0
    }

    /// Binds the listener. Throws `StartError.bindFailed` naming `host:port` (port in use, no
    /// such address). Call `run()` (directly or through a ServiceGroup) to serve.
    public static func bind(host: String, port: Int, configuration: PeerWireConfiguration,
                            settings: Settings = .init(),
                            group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                            handler: @escaping PeerRequestHandler, logger: Logger) async throws -> PeerServer {
        let listener: NIOAsyncChannel<Framed, Never>
        let children = ChildChannels()
        do {
            listener = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: Int32(clamping: settings.backlog))
                // A restarted node rebinds its port while old connections sit in TIME_WAIT.
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                // Requests and answers are small frames on a long-lived connection: Nagle would
                // add up to 40 ms (delayed ACK) to every pipelined round trip.
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .bind(host: host, port: port) { child in
                    guard children.add(child) else { return child.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
                    return configuration.framedChannel(child)
                }
        } catch {
            throw StartError.bindFailed(address: formatAddress(host: host, port: port), reason: "\(error)")
        }
        guard let bound = listener.channel.localAddress?.port else {
            try? await listener.channel.close()
            throw StartError.bindFailed(address: formatAddress(host: host, port: port), reason: "no local port after bind")
        }
        return PeerServer(host: host, boundPort: bound, listener: listener, children: children, settings: settings,
                          handler: handler, logger: logger)
    }

    private init(host: String, boundPort: Int, listener: NIOAsyncChannel<Framed, Never>, children: ChildChannels,
                 settings: Settings, handler: @escaping PeerRequestHandler, logger: Logger) {
        self.children = children
        self.host = host
        self.boundPort = boundPort
        self.listener = listener
        self.settings = settings
        self.handler = handler
        var l = logger
        l[metadataKey: "peer_listener"] = "\(formatAddress(host: host, port: boundPort))"
        self.logger = l
    }

    /// `host:port` of the bound listener (IPv6 hosts in brackets).
    public var address: String { formatAddress(host: host, port: boundPort) }

    /// A snapshot of the counters.
    public func stats() -> Stats { state.withLock { $0.stats } }

    // MARK: Service

    public func run() async throws {
        let first = state.withLock { s -> Bool in
            defer { s.running = true }
            return !s.running
        }
        precondition(first, "PeerServer.run() called twice, or after close()")
        logger.info("peer listener started", metadata: ["max_connections": "\(settings.maxConnections)"])
        await withTaskCancellationOrGracefulShutdownHandler {
            do {
                try await self.listener.executeThenClose { accepted in
                    await withDiscardingTaskGroup { group in
                        do {
                            for try await connection in accepted {
                                guard self.admit(connection.channel) else {
                                    // Through executeThenClose: NIOAsyncChannel must finish its
                                    // writer before it is released.
                                    group.addTask { try? await connection.executeThenClose { _, _ in } }
                                    continue
                                }
                                group.addTask { await self.serve(connection) }
                            }
                        } catch {
                            if !self.isStopping { self.logger.error("peer listener failed", metadata: ["error": "\(error)"]) }
                        }
                        // The listener is closed: close what it accepted, then let the group
                        // wait for those tasks.
                        self.closeConnections()
                    }
                }
            } catch {
                if !self.isStopping { self.logger.error("peer listener failed", metadata: ["error": "\(error)"]) }
            }
        } onCancelOrGracefulShutdown: {
            self.stop()
        }
        logger.info("peer listener stopped")
    }

    /// Stops the server. While `run()` is running this is what graceful shutdown does (it
    /// returns at once; `run()` returns when the connections are closed). For a server that was
    /// bound but never run — a node that failed to start after binding — it closes the listener
    /// and whatever the kernel had accepted for it; `run()` may not be called afterwards.
    public func close() async {
        let neverRan = state.withLock { s -> Bool in
            defer { s.running = true }
            return !s.running
        }
        guard neverRan else {
            stop()
            return
        }
        stop()
        // Connections accepted into the listener's buffer must go through executeThenClose:
        // NIOAsyncChannel traps when released with its writer unfinished.
        try? await listener.executeThenClose { accepted in
            do {
                for try await connection in accepted {
                    try? await connection.executeThenClose { _, _ in }
                }
            } catch {}
        }
    }

    private var isStopping: Bool { state.withLock { $0.stopping } }

    /// Closes the listener; `run()` then closes the connections and returns.
    private func stop() {
        state.withLock { $0.stopping = true }
        listener.channel.close(promise: nil)
        closeConnections()
    }

    private func closeConnections() {
        state.withLock { $0.stopping = true }
        children.closeAll()
    }

    private func admit(_ channel: any Channel) -> Bool {
        let (admitted, log) = state.withLock { s -> (Bool, Int?) in
            guard !s.stopping, s.stats.active < settings.maxConnections else {
                s.stats.refused += 1
                s.unloggedRefusals += 1
                let now = NIODeadline.now().uptimeNanoseconds
                // One log line per 10 s with the count: a redial storm must not flood the log.
                guard now &- s.lastRefusalLogNs >= 10_000_000_000 || s.lastRefusalLogNs == 0 else { return (false, nil) }
                s.lastRefusalLogNs = now
                defer { s.unloggedRefusals = 0 }
                return (false, s.unloggedRefusals)
            }
            s.stats.accepted += 1
            s.stats.active += 1
            return (true, nil)
        }
        if let log {
            logger.warning("peer connection refused: connection limit reached", metadata: [
                "remote": "\(channel.remoteAddress.map { "\($0)" } ?? "?")",
                "max_connections": "\(settings.maxConnections)", "refused_since_last_log": "\(log)",
            ])
        }
        return admitted
    }

    private func serve(_ connection: Framed) async {
        let channel = connection.channel
        let remote = channel.remoteAddress.map { "\($0)" } ?? "?"
        do {
            _ = try await PeerConnection.run(
                channel: connection, settings: settings.connection, handler: handler,
                body: nil as (@Sendable (PeerConnection) async throws -> Int)?)
        } catch {
            let reason = Self.reason(error)
            state.withLock { $0.stats.closedByError[reason, default: 0] += 1 }
            // Expected while stopping (we closed it); otherwise a peer worth hearing about.
            if !isStopping {
                logger.warning("peer connection closed on error", metadata: [
                    "remote": "\(remote)", "reason": "\(reason)", "error": "\(error)",
                ])
            }
        }
        state.withLock { s in
            s.stats.active -= 1
        }
    }

    static func reason(_ error: any Error) -> String {
        switch error {
        case let e as PeerWireError: e.reason
        case is PeerFrameByteDecoder.TruncatedFrame: "truncated"
        case is PeerConnection.ProtocolViolation: "protocol"
        default: "io"
        }
    }
}

/// `host:port`, with IPv6 literals in brackets.
func formatAddress(host: String, port: Int) -> String {
    host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
}

/// The listener's child channels from the moment they exist. Once `closeAll` ran, a channel
/// still arriving is closed at once.
private final class ChildChannels: Sendable {
    private let state = Mutex<(closed: Bool, channels: [ObjectIdentifier: any Channel])>((false, [:]))

    /// False (and the channel closed) once `closeAll` ran.
    func add(_ channel: any Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let closed = state.withLock { s -> Bool in
            if !s.closed { s.channels[id] = channel }
            return s.closed
        }
        if closed {
            channel.close(promise: nil)
            return false
        }
        channel.closeFuture.whenComplete { _ in self.state.withLock { _ = $0.channels.removeValue(forKey: id) } }
        return true
    }

    func closeAll() {
        let open = state.withLock { s in
            s.closed = true
            return Array(s.channels.values)
        }
        for channel in open { channel.close(promise: nil) }
    }
}
