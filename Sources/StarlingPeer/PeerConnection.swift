import NIOCore
import StarlingPeerWire

/// Why a request on a peer connection failed, before or instead of an answer. An `error`
/// frame from the peer is an answer, not one of these.
public enum PeerRequestError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `maxInFlight` requests already await answers on this connection.
    case overloaded(inFlight: Int, limit: Int)
    /// No final answer within the request's timeout.
    case timedOut(requestID: UInt64, timeoutMs: UInt32)
    /// The connection closed (or broke the protocol) before the final answer.
    case connectionClosed(requestID: UInt64)
    /// The connection had already closed: the request was not sent (safe to retry elsewhere).
    case notConnected

    public var description: String {
        switch self {
        case let .overloaded(n, limit): "peer connection overloaded: \(n) requests in flight (limit \(limit))"
        case let .timedOut(id, ms): "peer request \(id) got no answer within \(ms) ms"
        case let .connectionClosed(id): "peer connection closed before request \(id) was answered"
        case .notConnected: "peer connection already closed; request not sent"
        }
    }
}

/// Answers the peer's requests. Returns the response frames' types and payloads in order; the
/// connection stamps the request ID, the response flag and, for streamed requests, the
/// end-of-stream flag on the last frame. Called concurrently for pipelined requests.
public typealias PeerRequestHandler = @Sendable (PeerFrame) async -> [(type: PeerMessageType, payload: [UInt8])]

/// One persistent, bidirectional peer connection over a framed `NIOAsyncChannel`: this node's
/// requests are pipelined through a `PeerRequestTracker` (IDs, in-flight bound, late answers,
/// protocol checks); the peer's requests run concurrently through a `PeerRequestHandler`, at
/// most `maxConcurrentHandlers` at a time — one more is answered `error(overloaded)` at once
/// instead of queueing.
///
/// Use `PeerConnection.run(channel:…)`, which owns the channel for the duration of `body` (a
/// client) or until the peer closes (a server, with `body` nil).
public actor PeerConnection {
    public struct Settings: Sendable {
        public var tracker: PeerRequestTracker.Settings
        /// Peer requests handled at the same time. Default 64: enough to overlap storage calls
        /// of a pipelining coordinator; beyond it the peer gets `error(overloaded)` and retries
        /// elsewhere, so one busy peer cannot exhaust this node's tasks.
        public var maxConcurrentHandlers: Int
        /// The placement version stamped on outgoing frames.
        public var placementVersion: @Sendable () -> UInt64

        public init(tracker: PeerRequestTracker.Settings = .default, maxConcurrentHandlers: Int = 64,
                    placementVersion: @escaping @Sendable () -> UInt64 = { 0 }) {
            self.tracker = tracker
            self.maxConcurrentHandlers = maxConcurrentHandlers
            self.placementVersion = placementVersion
        }
    }

    private let outbound: NIOAsyncChannelOutboundWriter<PeerFrame>
    private let settings: Settings
    private var tracker: PeerRequestTracker
    private var answers: [UInt64: AsyncThrowingStream<PeerFrame, any Error>.Continuation] = [:]
    private var closed = false
    /// This side's requests awaiting their final answer.
    public var requestsInFlight: Int { tracker.inFlight }
    /// Answers that arrived after their request timed out or was cancelled.
    public private(set) var lateAnswers = 0
    /// Final answers delivered to this side's requests (a pool uses it to tell a connection
    /// that worked from one the peer dropped at once, e.g. for a wrong cluster key).
    public private(set) var answersReceived = 0
    /// Whether the connection stopped reading (the peer closed, or a frame-level error).
    public var isClosed: Bool { closed }
    /// Why reading stopped: the frame-level error or protocol violation, nil for a clean close
    /// (or while open).
    public private(set) var closeReason: String?
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []

    init(outbound: NIOAsyncChannelOutboundWriter<PeerFrame>, settings: Settings) {
        self.outbound = outbound
        self.settings = settings
        tracker = PeerRequestTracker(settings: settings.tracker)
    }

    /// Serves the connection: reads frames until the peer closes, answering its requests with
    /// `handler` and routing answers to this side's requests, while `body` runs. Returns
    /// `body`'s result (closing the channel), or nil once the peer closed when `body` is nil.
    /// A frame-level error or protocol violation closes the connection and is thrown.
    public static func run<R: Sendable>(
        channel: NIOAsyncChannel<PeerFrame, PeerFrame>, settings: Settings = Settings(),
        handler: @escaping PeerRequestHandler, body: (@Sendable (PeerConnection) async throws -> R)?
    ) async throws -> R? {
        try await channel.executeThenClose { inbound, outbound in
            let connection = PeerConnection(outbound: outbound, settings: settings)
            return try await withThrowingTaskGroup(of: R?.self) { group in
                group.addTask {
                    do {
                        try await connection.readLoop(inbound, handler: handler)
                    } catch {
                        await connection.close(reason: "\(error)")
                        throw error
                    }
                    await connection.close(reason: nil)
                    return nil
                }
                guard let body else {
                    _ = try await group.next()
                    return nil
                }
                let result = try await body(connection)
                group.cancelAll()
                return result
            }
        }
    }

    // MARK: Requests from this side

    /// Sends a request and collects its answer: one frame, or every frame of a stream ending
    /// with `stream_end`, or an `error` frame. `timeoutMs` 0 waits without a deadline.
    ///
    /// The whole answer is held in memory, so this suits bounded answers (writes, digests,
    /// `select` under query limits); a large `fetch_shard` stream needs a consumer with a
    /// bounded hand-off (not built yet, docs/formats/peer.md).
    public nonisolated func request(_ type: PeerMessageType, payload: [UInt8], timeoutMs: UInt32) async throws -> [PeerFrame] {
        let (id, answer) = try await start(type, payload: payload, timeoutMs: timeoutMs)
        return try await withThrowingTaskGroup(of: [PeerFrame]?.self) { group in
            group.addTask {
                var frames: [PeerFrame] = []
                for try await f in answer { frames.append(f) }
                return frames
            }
            if timeoutMs > 0 {
                group.addTask {
                    try await Task.sleep(for: .milliseconds(Int64(timeoutMs)))
                    return nil
                }
            }
            defer { group.cancelAll() }
            if let first = try await group.next(), let frames = first { return frames }
            await self.abandon(id, PeerRequestError.timedOut(requestID: id, timeoutMs: timeoutMs))
            throw PeerRequestError.timedOut(requestID: id, timeoutMs: timeoutMs)
        }
    }

    /// Sends a one-way message (request ID 0, e.g. `shard_state`).
    public func notify(_ type: PeerMessageType, payload: [UInt8]) async throws {
        try await outbound.write(PeerFrame(type: type, requestID: 0, placementVersion: settings.placementVersion(), payload: payload))
    }

    private func start(_ type: PeerMessageType, payload: [UInt8], timeoutMs: UInt32) async throws
        -> (UInt64, AsyncThrowingStream<PeerFrame, any Error>)
    {
        // Checked first: nothing was sent, so the caller may safely retry on a new connection.
        guard !closed else { throw PeerRequestError.notConnected }
        switch tracker.begin(type, timeoutMs: timeoutMs, nowMs: Int64(NIODeadline.now().uptimeNanoseconds / 1_000_000)) {
        case let .overloaded(n, limit):
            throw PeerRequestError.overloaded(inFlight: n, limit: limit)
        case let .send(id, _):
            let (stream, continuation) = AsyncThrowingStream.makeStream(of: PeerFrame.self, throwing: (any Error).self)
            answers[id] = continuation
            do {
                try await outbound.write(PeerFrame(
                    type: type, requestID: id, placementVersion: settings.placementVersion(), timeoutMs: timeoutMs,
                    payload: payload))
            } catch {
                abandon(id, PeerRequestError.connectionClosed(requestID: id))
                throw PeerRequestError.connectionClosed(requestID: id)
            }
            return (id, stream)
        }
    }

    private func abandon(_ id: UInt64, _ error: PeerRequestError) {
        tracker.cancel(id)
        answers.removeValue(forKey: id)?.finish(throwing: error)
    }

    private func close(reason: String?) {
        guard !closed else { return }
        closed = true
        closeReason = reason
        for id in tracker.onClosed() {
            answers.removeValue(forKey: id)?.finish(throwing: PeerRequestError.connectionClosed(requestID: id))
        }
        for waiter in closeWaiters { waiter.resume() }
        closeWaiters = []
    }

    /// Returns once the connection stopped reading (the peer closed it, the channel was closed
    /// locally, or a frame-level error): a client `body` that keeps a connection open for
    /// others waits on this, so `run` returns when the link dies.
    public func waitUntilClosed() async {
        if closed { return }
        await withCheckedContinuation { closeWaiters.append($0) }
    }

    // MARK: Inbound

    /// The peer broke the request/response protocol (see `PeerRequestTracker.Routing`): the
    /// connection is closed and this is thrown from `run`.
    public struct ProtocolViolation: Error, CustomStringConvertible {
        public var description: String
    }

    /// Peer requests being handled now.
    public private(set) var activeHandlers = 0
    /// Peer requests answered `error(overloaded)` because `maxConcurrentHandlers` were running.
    public private(set) var refusedRequests = 0

    private func admitHandler() -> Bool {
        guard activeHandlers < settings.maxConcurrentHandlers else {
            refusedRequests += 1
            return false
        }
        activeHandlers += 1
        return true
    }

    private func handlerDone() { activeHandlers -= 1 }

    private nonisolated func readLoop(_ inbound: NIOAsyncChannelInboundStream<PeerFrame>, handler: @escaping PeerRequestHandler) async throws {
        // A discarding group: a long-lived connection must not accumulate finished children.
        try await withThrowingDiscardingTaskGroup { handlers in
            for try await frame in inbound {
                if frame.isResponse {
                    try await route(frame)
                    continue
                }
                guard await admitHandler() else {
                    let refusal = ErrorMessage(code: .overloaded, message: "\(settings.maxConcurrentHandlers) requests in flight")
                    try await answer(frame, [(.error, refusal.encoded())])
                    continue
                }
                handlers.addTask {
                    let replies = await handler(frame)
                    await self.handlerDone()
                    try await self.answer(frame, replies)
                }
            }
        }
    }

    private func route(_ frame: PeerFrame) throws {
        switch tracker.onFrame(frame) {
        case let .deliver(id, finished):
            guard let continuation = answers[id] else { return }
            continuation.yield(frame)
            if finished {
                answersReceived += 1
                continuation.finish()
                answers[id] = nil
            }
        case .late:
            lateAnswers += 1
        case let .violation(reason):
            throw ProtocolViolation(description: "peer protocol violation: \(reason)")
        }
    }

    private nonisolated func answer(_ request: PeerFrame, _ replies: [(type: PeerMessageType, payload: [UInt8])]) async throws {
        guard request.requestID != 0 else { return }
        let streamed = PeerRequestTracker.isStreamed(request.type)
        for (i, reply) in replies.enumerated() {
            var flags: PeerFrameFlags = [.response]
            if streamed, i == replies.count - 1, reply.type != .error { flags.insert(.endOfStream) }
            try await outbound.write(PeerFrame(
                type: reply.type, flags: flags, requestID: request.requestID,
                placementVersion: settings.placementVersion(), payload: reply.payload))
        }
    }
}
