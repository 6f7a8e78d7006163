import StarlingPeerWire

/// Requests to other nodes by node ID. The node implements it with the peer connection pool
/// (`StarlingPeer.PeerPool`); the cluster tests with an in-process transport that runs the
/// other nodes' real request handlers.
public protocol PeerTransport: Sendable {
    /// Sends a request and returns its whole answer (one frame, or a stream ending with
    /// `stream_end`, or an `error` frame). Throws when the node cannot be reached or does not
    /// answer within `timeoutMs`.
    func request(to nodeID: String, _ type: PeerMessageType, payload: [UInt8], timeoutMs: UInt32) async throws -> [PeerFrame]
}

/// Runs blocking storage calls off the cooperative pool (the node's `BlockingExecutor`).
public protocol BlockingRunner: Sendable {
    /// A synchronous blocking call (an append).
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T
    /// An `async` call that blocks inside (the store's `Querier` methods), run with the pool as
    /// its task executor.
    func runAsync<T: Sendable>(_ body: () async throws -> T) async throws -> T
    /// Like `run`, but finishes even when the calling task is cancelled: for work whose loss
    /// the caller cannot see (storing a hint).
    func runToCompletion<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T
}

extension BlockingRunner {
    public func runToCompletion<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await run(body)
    }
}

/// A peer answered with an `error` frame, or with a frame that does not answer the request.
public struct PeerAnswerError: Error, Sendable, CustomStringConvertible {
    public var nodeID: String
    public var message: String
    public init(nodeID: String, message: String) {
        self.nodeID = nodeID
        self.message = message
    }
    public var description: String { "node \(nodeID) answered: \(message)" }
}

extension PeerTransport {
    /// A single-frame request whose answer must be `Reply` (an `error` frame is thrown).
    func call<Reply: PeerMessage>(_ nodeID: String, _ message: some PeerMessage, timeoutMs: UInt32, expecting: Reply.Type) async throws -> Reply {
        let frames = try await request(to: nodeID, type(of: message).type, payload: message.encoded(), timeoutMs: timeoutMs)
        guard let frame = frames.last else { throw PeerAnswerError(nodeID: nodeID, message: "empty answer") }
        return try decodeAnswer(frame, from: nodeID, as: Reply.self)
    }
}

func decodeAnswer<Reply: PeerMessage>(_ frame: PeerFrame, from nodeID: String, as: Reply.Type) throws -> Reply {
    if frame.type == .error {
        let e = try ErrorMessage.decode(frame.payload)
        throw PeerAnswerError(nodeID: nodeID, message: "\(e.code): \(e.message)")
    }
    guard frame.type == Reply.type else {
        throw PeerAnswerError(nodeID: nodeID, message: "\(frame.type) instead of \(Reply.type)")
    }
    return try Reply.decode(frame.payload)
}
