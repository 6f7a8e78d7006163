/// The requester's side of one peer connection, as a pure state machine: request IDs, the bound
/// on requests in flight (backpressure), deadlines, and routing of response frames — which may
/// arrive in any order (pipelining) and, for streams, as many frames per request.
///
/// The connection shell calls `begin` before sending a request, `onFrame` for every inbound
/// response frame, `onTick` at `nextDeadlineMs`, and acts on the results; it never keeps its
/// own table of requests.
public struct PeerRequestTracker: Sendable {
    public struct Settings: Sendable, Hashable {
        /// Requests awaiting a (final) response on one connection. Default 256: enough to keep a
        /// loopback or LAN link busy with write batches of ~1 MB while bounding the memory a
        /// slow peer can make this node hold. A request beyond it is refused at once
        /// (`overloaded`) so the caller can try another replica or store a hint instead of
        /// queueing without bound. Counted in `starling_peer_requests_refused_total`.
        public var maxInFlight: Int

        public static let `default` = Settings(maxInFlight: 256)

        public init(maxInFlight: Int) {
            precondition(maxInFlight >= 1, "maxInFlight \(maxInFlight) must be at least 1")
            self.maxInFlight = maxInFlight
        }
    }

    public enum Admission: Equatable, Sendable {
        /// Send the request with this ID; the tracker expects its answer until `deadlineMs`.
        case send(requestID: UInt64, deadlineMs: Int64?)
        /// Too many requests in flight on this connection.
        case overloaded(inFlight: Int, limit: Int)
    }

    public enum Routing: Equatable, Sendable {
        /// A frame of the request's answer; `finished` when it is the last one.
        case deliver(requestID: UInt64, finished: Bool)
        /// An answer to a request that is no longer tracked (it timed out or was cancelled):
        /// drop it and count it.
        case late(requestID: UInt64)
        /// A frame that breaks the protocol (not a response, a response type that does not
        /// answer this request, an ID never issued): close the connection.
        case violation(String)
    }

    private struct Pending: Sendable {
        var type: PeerMessageType
        var deadlineMs: Int64?
        var framesReceived = 0
    }

    public let settings: Settings
    private var pending: [UInt64: Pending] = [:]
    /// Request IDs start at 1 (0 is one-way) and are never reused on a connection.
    private var nextID: UInt64 = 1

    public init(settings: Settings = .default) { self.settings = settings }

    public var inFlight: Int { pending.count }

    /// The earliest deadline among requests in flight.
    public var nextDeadlineMs: Int64? { pending.values.compactMap(\.deadlineMs).min() }

    /// Whether `type` is answered by a stream of frames rather than one frame.
    public static func isStreamed(_ type: PeerMessageType) -> Bool { type == .select || type == .fetchShard }

    /// The response types that may answer a request of `type` (`error` answers any).
    public static func responseTypes(for type: PeerMessageType) -> Set<PeerMessageType> {
        switch type {
        case .ping: [.ping, .error]
        case .write, .hintDelivery, .pushChunks: [.writeAck, .error]
        case .select, .fetchShard: [.seriesFrame, .streamEnd, .error]
        case .blockDigests: [.blockDigestsReply, .error]
        case .seriesDigests: [.seriesDigestsReply, .error]
        case .labelQuery: [.labelQueryReply, .error]
        case .shardState: [.shardState, .error]
        case .ruleGroups: [.ruleGroupsReply, .error]
        case .postAlerts: [.postAlertsReply, .error]
        case .alertmanagerOp: [.alertmanagerOpReply, .error]
        case .rulesOp: [.rulesOpReply, .error]
        case .error, .writeAck, .seriesFrame, .streamEnd, .blockDigestsReply, .seriesDigestsReply, .labelQueryReply, .ruleGroupsReply,
             .postAlertsReply, .alertmanagerOpReply, .rulesOpReply: []
        }
    }

    /// Registers a request of `type` about to be sent. `timeoutMs` 0 means no deadline.
    /// - Precondition: `type` is a request type (has response types); one-way messages are sent
    ///   with request ID 0 and are not tracked.
    public mutating func begin(_ type: PeerMessageType, timeoutMs: UInt32, nowMs: Int64) -> Admission {
        precondition(!Self.responseTypes(for: type).isEmpty, "\(type) is not a request type")
        guard pending.count < settings.maxInFlight else {
            return .overloaded(inFlight: pending.count, limit: settings.maxInFlight)
        }
        let id = nextID
        nextID += 1
        let deadline = timeoutMs == 0 ? nil : nowMs + Int64(timeoutMs)
        pending[id] = Pending(type: type, deadlineMs: deadline)
        return .send(requestID: id, deadlineMs: deadline)
    }

    /// Routes an inbound frame that carries the response flag (requests from the peer go to
    /// the server side instead).
    public mutating func onFrame(_ frame: PeerFrame) -> Routing {
        guard frame.isResponse else { return .violation("\(frame.type) frame without the response flag") }
        let id = frame.requestID
        guard id != 0, id < nextID else { return .violation("response to request \(id), never issued") }
        guard var p = pending[id] else { return .late(requestID: id) }
        guard Self.responseTypes(for: p.type).contains(frame.type) else {
            return .violation("\(frame.type) does not answer \(p.type) (request \(id))")
        }
        let finished: Bool
        if frame.type == .error {
            finished = true
        } else if Self.isStreamed(p.type) {
            finished = frame.flags.contains(.endOfStream)
            if frame.type == .streamEnd, !finished {
                return .violation("stream_end without the end-of-stream flag (request \(id))")
            }
            if frame.type == .seriesFrame, finished {
                return .violation("series_frame with the end-of-stream flag (request \(id)): streams end with stream_end")
            }
        } else {
            finished = true
        }
        if finished {
            pending[id] = nil
        } else {
            p.framesReceived += 1
            pending[id] = p
        }
        return .deliver(requestID: id, finished: finished)
    }

    /// Requests whose deadline is at or before `nowMs`, now forgotten (in ID order): the shell
    /// fails their callers with a timeout; answers arriving later are `late`.
    public mutating func onTick(nowMs: Int64) -> [UInt64] {
        let expired = pending.filter { $0.value.deadlineMs.map { $0 <= nowMs } ?? false }.keys.sorted()
        for id in expired { pending[id] = nil }
        return expired
    }

    /// The caller gave up on `requestID` (cancelled); a later answer is `late`.
    public mutating func cancel(_ requestID: UInt64) { pending[requestID] = nil }

    /// The connection closed: every request in flight fails (in ID order).
    public mutating func onClosed() -> [UInt64] {
        let all = pending.keys.sorted()
        pending = [:]
        return all
    }
}
