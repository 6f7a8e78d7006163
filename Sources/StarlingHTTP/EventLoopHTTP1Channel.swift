import Hummingbird
import HummingbirdCore
import Logging
import NIOCore

/// Hummingbird's HTTP/1.1 child channel, with each connection's task running on that
/// connection's event loop.
///
/// Hummingbird runs a connection's request loop as a task on Swift's global executor, so every
/// request crosses threads several times: the event loop hands the request head and body to a
/// cooperative-pool thread, and the response goes back to the event loop, each time a futex or
/// eventfd wake-up of a sleeping thread. On this project's 2-core target those wake-ups, not the
/// work, dominated small requests (a `/healthz` over a new connection cost ~200 µs more than
/// Prometheus's). With the connection's event loop as the task's executor preference, reading
/// the request and writing the response happen on the thread that does the socket I/O; only the
/// work handed to `BlockingExecutor` (storage, queries) leaves it, and comes back once.
///
/// Nothing slow may run on the event loop: handlers already hand storage and query work to
/// `BlockingExecutor`, and what stays (routing, auth, JSON bodies of a few KiB) is what the
/// event loop's own HTTP codec does anyway.
public struct EventLoopHTTP1Channel: ServerChildChannel {
    public typealias Value = HTTP1Channel.Value
    let inner: HTTP1Channel

    public init(_ inner: HTTP1Channel) { self.inner = inner }

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        inner.setup(channel: channel, logger: logger)
    }

    public func handle(value: Value, logger: Logger) async {
        await withTaskExecutorPreference(EventLoopTaskExecutor(value.channel.eventLoop)) {
            await inner.handle(value: value, logger: logger)
        }
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with each connection's task on its event loop (`EventLoopHTTP1Channel`), closing
    /// connections outright once the answer to a `Connection: close` request has gone out
    /// (`CloseAfterResponseHandler`).
    public static func http1OnEventLoop(configuration: HTTP1Channel.Configuration = .init()) -> HTTPServerBuilder {
        var withClose = configuration
        let additional = configuration.additionalChannelHandlers
        withClose.additionalChannelHandlers = { additional() + [CloseAfterResponseHandler()] }
        return .init { [withClose] responder in EventLoopHTTP1Channel(HTTP1Channel(responder: responder, configuration: withClose)) }
    }
}

/// A task executor that runs jobs on one NIO event loop. A job enqueued from the loop itself
/// joins the loop's task queue without waking any thread. It relies on the loop outliving every
/// connection: the node's loops are `MultiThreadedEventLoopGroup.singleton`'s, which never shut
/// down (a job given to a closed loop would be dropped and its task would never resume).
public final class EventLoopTaskExecutor: TaskExecutor, Sendable {
    let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute { job.runSynchronously(on: executor) }
    }
}

/// Runs the rest of a request on Swift's global concurrent executor, as Hummingbird would
/// without `EventLoopHTTP1Channel`: for route groups whose handlers do work that must not hold an
/// event loop (rendering every rule group or alert, re-parsing the rule catalog, writing its
/// file, building large JSON bodies inline).
public struct OffEventLoopMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        try await withTaskExecutorPreference(globalConcurrentExecutor) { try await next(request, context) }
    }
}
