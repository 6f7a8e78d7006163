import HTTPTypes
import HummingbirdCore
import NIOCore
import NIOHTTPTypes

/// Closes a connection as soon as the response to a request that said `Connection: close` has
/// been written to the socket.
///
/// Hummingbird ends such a connection with a half-close: `shutdown(SHUT_WR)`, then it waits for
/// the client's FIN before closing. On loopback the client is woken by the response and runs
/// first, so the server finishes that goodbye (the shutdown, another epoll round, a read of the
/// EOF, the close) only once the client has already sent its next request: that work sat on the
/// next request's path. Go's `net/http` (Prometheus) closes outright after the response.
///
/// A full close is safe only when nothing more can arrive: a close with unread bytes in the
/// receive buffer, or bytes arriving after it, makes the kernel answer with a reset, which can
/// discard a response the client has not read yet. So the handler closes only after
///
/// - the request asked to close (the client will send nothing after it),
/// - the request has been read to its end (no body still in flight), and
/// - the response's last part has been written to the socket (its write promise succeeded;
///   a response larger than the socket buffer keeps the channel open until it has all gone).
///
/// Anything else (keep-alive connections, a response sent before the request body was read, a
/// parse error) keeps Hummingbird's half-close. Requests are handled one at a time
/// (`HTTPServerPipelineHandler` holds back a pipelined request until the response before it is
/// complete), so the state below always describes the request being answered.
final class CloseAfterResponseHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// The request being answered said `Connection: close`.
    private var closeRequested = false
    /// Its `.end` has been read.
    private var requestComplete = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            closeRequested = head.headerFields[.connection].map(Self.asksToClose) ?? false
            requestComplete = false
        case .body:
            break
        case .end:
            requestComplete = true
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .end = unwrapOutboundIn(data), closeRequested, requestComplete else {
            context.write(data, promise: promise)
            return
        }
        closeRequested = false
        let written = promise ?? context.eventLoop.makePromise()
        let channel = context.channel
        written.futureResult.whenSuccess { channel.close(promise: nil) }
        context.write(data, promise: written)
    }

    /// Whether a `Connection` field value (comma-separated tokens, case-insensitive) holds `close`.
    static func asksToClose(_ value: String) -> Bool {
        // The value clients send with every request, compared without allocating: five bytes hold
        // the token `close` only as the whole value (`| 0x20` folds the case of these letters).
        if value.utf8.count == 5 { return value.utf8.elementsEqual("close".utf8) { $0 | 0x20 == $1 } }
        return value.lowercased().split(separator: ",").contains { $0.split(whereSeparator: \.isWhitespace) == ["close"] }
    }
}
