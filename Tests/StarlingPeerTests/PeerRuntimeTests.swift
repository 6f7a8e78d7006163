import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import StarlingCore
import StarlingMembership
import StarlingPeer
import StarlingPeerWire
import StarlingTestKit
import Synchronization
import Testing

// PeerServer and PeerPool over real loopback sockets. Every wait polls state against a
// deadline (no fixed sleeps); a timed-out wait prints the captured logs of the test.

private let clusterKey = try! Keyring(rawKeys: [Array(0..<32)])
private let otherClusterKey = try! Keyring(rawKeys: [Array(100..<132)])

/// Log lines of one test, printed when a wait times out.
final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    func logger(_ label: String) -> Logger {
        Logger(label: label) { _ in CaptureHandler(capture: self, label: label) }
    }

    func append(_ line: String) { lines.withLock { $0.append(line) } }

    func dump() {
        let all = lines.withLock { $0 }
        print("---- captured logs (\(all.count) lines) ----")
        for l in all { print(l) }
    }

    struct CaptureHandler: LogHandler {
        let capture: LogCapture
        let label: String
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            let meta = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            capture.append("\(event.level) [\(label)] \(event.message) \(meta)")
        }
    }
}

/// Polls `condition` every 5 ms until it holds; after `seconds` records an issue, prints the
/// logs and returns false.
@discardableResult
private func waitFor(_ what: String, logs: LogCapture, seconds: Int = 20,
                     _ condition: @Sendable () async -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try await Task.sleep(for: .milliseconds(5))
    }
    Issue.record("timed out waiting for \(what)")
    logs.dump()
    return false
}

/// Services run in a ServiceGroup, stopped by graceful shutdown as SIGTERM would.
private final class Running: Sendable {
    let group: ServiceGroup
    let task: Task<Void, any Error>

    init(_ services: [any Service], logger: Logger) {
        let group = ServiceGroup(services: services, logger: logger)
        self.group = group
        task = Task { try await group.run() }
    }

    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }
}

/// Counts handler invocations and holds "slow" ones (negative `sent_at_ms`) until opened.
private final class Probe: Sendable {
    let running = Mutex(0)
    let gate = Gate()
}

/// Answers `ping` with `sent_at_ms + offset` (so a test sees which server answered) and `write`
/// with an ack per shard. Pings with a negative time wait on the probe's gate.
private func handler(offset: Int64, probe: Probe? = nil) -> PeerRequestHandler {
    { frame in
        switch frame.type {
        case .ping:
            guard let ping = try? PingMessage.decode(frame.payload) else {
                return [(.error, ErrorMessage(code: .malformed, message: "ping").encoded())]
            }
            if ping.sentAtMs < 0, let probe {
                probe.running.withLock { $0 += 1 }
                await probe.gate.wait()
                probe.running.withLock { $0 -= 1 }
            }
            return [(.ping, PingMessage(sentAtMs: ping.sentAtMs + offset).encoded())]
        case .write:
            guard let w = try? WriteMessage.decode(frame.payload) else {
                return [(.error, ErrorMessage(code: .malformed, message: "write").encoded())]
            }
            let ack = WriteAckMessage(results: w.shards.map {
                ShardWriteResult(shard: $0.shard, status: .ok, appended: UInt64($0.series.count), dropped: 0)
            })
            return [(.writeAck, ack.encoded())]
        default:
            return [(.error, ErrorMessage(code: .unsupported, message: "\(frame.type)").encoded())]
        }
    }
}

private func ping(_ pool: PeerPool, _ node: String, _ t: Int64, timeoutMs: UInt32 = 10_000) async throws -> Int64 {
    let answer = try await pool.request(to: node, .ping, payload: PingMessage(sentAtMs: t).encoded(), timeoutMs: timeoutMs)
    try #require(answer.map(\.type) == [.ping])
    return try PingMessage.decode(answer[0].payload).sentAtMs
}

/// The `PeerPoolError` a call threw (nil if it succeeded or threw something else, recorded).
private func poolError(_ body: () async throws -> Void) async -> PeerPoolError? {
    do {
        try await body()
        return nil
    } catch let e as PeerPoolError {
        return e
    } catch {
        Issue.record("expected a PeerPoolError, got \(error)")
        return nil
    }
}

/// A loopback port nothing listens on: bound by a plain listener that is then closed.
private func closedPort() async throws -> Int {
    let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .bind(host: "127.0.0.1", port: 0).get()
    let port = try #require(listener.localAddress?.port)
    try await listener.close()
    return port
}

private func makeServer(port: Int = 0, keyring: Keyring = clusterKey, settings: PeerServer.Settings = .init(),
                        offset: Int64, probe: Probe? = nil, logs: LogCapture, name: String) async throws -> PeerServer {
    try await PeerServer.bind(host: "127.0.0.1", port: port, configuration: PeerWireConfiguration(keyring: keyring),
                              settings: settings, handler: handler(offset: offset, probe: probe), logger: logs.logger(name))
}

private func makePool(keyring: Keyring = clusterKey, settings: PeerPool.Settings = .init(), offset: Int64 = 0, logs: LogCapture,
                      name: String, address: @escaping @Sendable (String) -> String?) -> PeerPool {
    PeerPool(configuration: PeerWireConfiguration(keyring: keyring), settings: settings, group: MultiThreadedEventLoopGroup.singleton,
             address: address, handler: handler(offset: offset), logger: logs.logger(name))
}

@Suite struct PeerRuntimeTests {
    // MARK: Pure parts

    @Test func backoffDoublesToItsCapWithJitterInTheUpperHalf() {
        let b = PeerBackoff(initialMs: 100, maxMs: 5_000)
        #expect((1...9).map { b.ceilingMs(failures: $0) } == [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000, 5_000])
        #expect(b.ceilingMs(failures: 10_000) == 5_000)
        var rng = SeededRandom(seed: 7)
        var seen = Set<Int64>()
        for failures in 1...12 {
            for _ in 0..<50 {
                let d = b.delayMs(failures: failures, random: &rng)
                let ceiling = b.ceilingMs(failures: failures)
                #expect(d >= ceiling / 2 && d <= ceiling, "failures \(failures): \(d) outside [\(ceiling / 2), \(ceiling)]")
                if failures == 12 { seen.insert(d) }
            }
        }
        #expect(seen.count > 10, "jitter spreads redials: \(seen.count) distinct delays at the cap")
        var again = SeededRandom(seed: 7)
        var first = SeededRandom(seed: 7)
        #expect(b.delayMs(failures: 3, random: &again) == b.delayMs(failures: 3, random: &first))
        #expect(PeerBackoff(initialMs: 1, maxMs: 1).delayMs(failures: 5, random: &rng) == 1)
    }

    // MARK: Loopback

    /// Two nodes, each a server plus a pool, request from each other at the same time: every
    /// answer comes from the right node, each pool dials its peer exactly once, and slow
    /// requests overlap on that one connection (pipelining). Timeouts, the in-flight bound and
    /// `close()` fail with their typed errors and are counted.
    @Test func twoNodesExchangePipelinedRequests() async throws {
        let logs = LogCapture()
        let probeA = Probe(), probeB = Probe()
        let serverA = try await makeServer(offset: 1_000_000, probe: probeA, logs: logs, name: "server-a")
        let serverB = try await makeServer(offset: 2_000_000, probe: probeB, logs: logs, name: "server-b")
        let addresses = ["a": serverA.address, "b": serverB.address]
        let inFlightLimit = 64  // the server handles 64 at once by default: all fit
        var settings = PeerPool.Settings(connection: .init(tracker: .init(maxInFlight: inFlightLimit)))
        settings.placementVersion = { 0xABCD }
        let poolA = makePool(settings: settings, logs: logs, name: "pool-a") { addresses[$0] }
        let poolB = makePool(settings: settings, logs: logs, name: "pool-b") { addresses[$0] }
        let running = Running([serverA, serverB, poolA, poolB], logger: logs.logger("group"))

        // 100 concurrent requests each way: pings and writes interleaved.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<100 {
                group.addTask {
                    let (pool, peer, offset): (PeerPool, String, Int64) = i % 2 == 0 ? (poolA, "b", 2_000_000) : (poolB, "a", 1_000_000)
                    if i % 4 < 2 {
                        #expect(try await ping(pool, peer, Int64(i)) == Int64(i) + offset)
                    } else {
                        let write = WriteMessage(shards: [ShardWrite(shard: ShardID(i), series: [
                            SeriesSamples(labels: Labels(["__name__": "up", "i": "\(i)"]), samples: [Sample(1, 1)]),
                        ])])
                        let answer = try await pool.request(to: peer, .write, payload: write.encoded(), timeoutMs: 10_000)
                        #expect(answer.map(\.type) == [.writeAck])
                        #expect(try WriteAckMessage.decode(answer[0].payload).results.map(\.shard) == [ShardID(i)])
                    }
                }
            }
            try await group.waitForAll()
        }
        let statsAB = try #require(await poolA.stats(for: "b"))
        #expect(statsAB.requests == 50 && statsAB.connects == 1 && statsAB.reconnects == 0)
        #expect(statsAB.unreachable + statsAB.timedOut + statsAB.overloaded + statsAB.closed == 0)
        #expect(statsAB.state == .connected && statsAB.address == serverB.address)
        #expect(await poolB.stats(for: "a")?.connects == 1)
        #expect(serverA.stats().accepted == 1 && serverB.stats().accepted == 1)

        // Slow requests overlap on the single connection: all are in the handler at once.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 1...inFlightLimit {
                group.addTask {
                    let answer = try await ping(poolA, "b", -Int64(i))
                    #expect(answer == 2_000_000 - Int64(i))
                }
            }
            try await waitFor("\(inFlightLimit) slow requests in B's handler", logs: logs) {
                probeB.running.withLock { $0 } == inFlightLimit
            }
            // The connection's in-flight bound refuses one more at once.
            let refused = await poolError { _ = try await ping(poolA, "b", 1) }
            #expect(refused == .overloaded("b", inFlight: inFlightLimit, limit: inFlightLimit))
            for _ in 1...inFlightLimit { probeB.gate.open() }
            try await group.waitForAll()
        }
        #expect(serverB.stats().accepted == 1)

        // A request past its timeout fails with the typed error; the link stays up.
        let timedOut = await poolError { _ = try await ping(poolA, "b", -99, timeoutMs: 50) }
        #expect(timedOut == .timedOut("b", timeoutMs: 50))
        probeB.gate.open()
        #expect(try await ping(poolA, "b", 5) == 2_000_005)
        let after = try #require(await poolA.stats(for: "b"))
        #expect(after.timedOut == 1 && after.overloaded == 1 && after.connects == 1)

        try await running.stop()
        #expect(serverA.stats().active == 0 && serverB.stats().active == 0)
        let closed = await poolError { _ = try await ping(poolA, "b", 1) }
        #expect(closed == .poolClosed("b"))
        #expect(await poolA.stats(for: "b")?.closed == 1)
    }

    /// The server stops (graceful shutdown closes its connections) and starts again on the same
    /// port: meanwhile requests fail `unreachable` at once, and the pool reconnects after its
    /// backoff.
    @Test func serverRestartAndPoolReconnects() async throws {
        let logs = LogCapture()
        let first = try await makeServer(offset: 1, logs: logs, name: "server-1")
        let port = first.boundPort
        let address = first.address
        let pool = makePool(settings: .init(backoff: PeerBackoff(initialMs: 20, maxMs: 200)), logs: logs, name: "pool") {
            $0 == "s" ? address : nil
        }
        let poolService = Running([pool], logger: logs.logger("pool-group"))
        let firstRun = Running([first], logger: logs.logger("server-group-1"))
        #expect(try await ping(pool, "s", 10) == 11)

        try await firstRun.stop()
        #expect(first.stats().active == 0)
        try await waitFor("the pool to notice the closed connection", logs: logs) {
            await pool.stats(for: "s")?.state != .connected
        }
        // Nothing listens: the next requests fail unreachable (a failed dial, then backing off).
        for _ in 0..<3 {
            let e = await poolError { _ = try await ping(pool, "s", 1) }
            guard case let .unreachable(node, reason)? = e else {
                Issue.record("expected unreachable, got \(String(describing: e))")
                logs.dump()
                break
            }
            #expect(node == "s")
            #expect(reason.contains("cannot connect") || reason.contains("backing off"), "\(reason)")
        }
        let down = try #require(await pool.stats(for: "s"))
        #expect(down.unreachable >= 3 && down.dialFailures >= 1)

        let second = try await makeServer(port: port, offset: 2, logs: logs, name: "server-2")
        let secondRun = Running([second], logger: logs.logger("server-group-2"))
        try await waitFor("a request through the restarted server", logs: logs) {
            (try? await ping(pool, "s", 10)) == 12
        }
        let up = try #require(await pool.stats(for: "s"))
        #expect(up.connects == 2 && up.reconnects == 1 && up.state == .connected && up.consecutiveFailures == 0)
        #expect(second.stats().accepted == 1)
        try await secondRun.stop()
        try await poolService.stop()
    }

    /// A node with no address, a malformed address, or nothing listening fails with
    /// `unreachable` naming the cause; while backing off, requests fail at once without a dial.
    @Test func unreachableFailsFastWithTheTypedError() async throws {
        let logs = LogCapture()
        let port = try await closedPort()
        let pool = makePool(settings: .init(backoff: PeerBackoff(initialMs: 60_000, maxMs: 60_000)), logs: logs, name: "pool") {
            switch $0 {
            case "down": "127.0.0.1:\(port)"
            case "garbled": "127.0.0.1"
            default: nil
            }
        }
        let e1 = await poolError { _ = try await ping(pool, "down", 1) }
        guard case let .unreachable("down", reason1)? = e1 else {
            Issue.record("expected unreachable, got \(String(describing: e1))")
            return
        }
        #expect(reason1.contains("cannot connect to 127.0.0.1:\(port)"), "\(reason1)")
        // Within the 30–60 s backoff: refused without dialling, naming the last error.
        for _ in 0..<20 {
            let e = await poolError { _ = try await ping(pool, "down", 1) }
            guard case let .unreachable("down", reason)? = e else {
                Issue.record("expected unreachable, got \(String(describing: e))")
                return
            }
            #expect(reason.contains("backing off") && reason.contains("1 failed attempt to 127.0.0.1:\(port)"), "\(reason)")
        }
        let stats = try #require(await pool.stats(for: "down"))
        #expect(stats.dialFailures == 1 && stats.unreachable == 21 && stats.requests == 21)
        #expect(stats.state == .backingOff && stats.consecutiveFailures == 1)

        #expect(await poolError { _ = try await ping(pool, "ghost", 1) } == .unreachable("ghost", reason: "no address known for the node"))
        let garbled = await poolError { _ = try await ping(pool, "garbled", 1) }
        #expect(garbled?.kind == "unreachable" && "\(garbled!)".contains("malformed address \"127.0.0.1\""))
        #expect(await pool.stats(for: "ghost")?.unreachable == 1)

        await pool.forget("down")
        #expect(await pool.stats(for: "down") == nil)
        await pool.close()
    }

    /// A peer that never completes the TCP handshake (here: a listener whose accept queue is
    /// full, so Linux drops further SYNs) fails the dial after `connectTimeoutMs`, not later.
    /// (Linux behaviour: other kernels may refuse instead, which this test would report.)
    @Test func connectTimeoutBoundsTheDial() async throws {
        let logs = LogCapture()
        let group = MultiThreadedEventLoopGroup.singleton
        // Never accepts (no reads on the listening socket), queue of one.
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1)
            .serverChannelOption(.autoRead, value: false)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(listener.localAddress?.port)
        // Fill the accept queue; fillers that do not get in time out themselves.
        var fillers: [any Channel] = []
        for _ in 0..<4 {
            if let ch = try? await ClientBootstrap(group: group).connectTimeout(.milliseconds(300))
                .connect(host: "127.0.0.1", port: port).get() {
                fillers.append(ch)
            }
        }
        // The dial's own timeout is long enough that the cancellation below always comes first,
        // even on a loaded machine.
        let pool = makePool(settings: .init(connectTimeoutMs: 5_000, backoff: PeerBackoff(initialMs: 60_000, maxMs: 60_000)),
                            logs: logs, name: "pool") { _ in "127.0.0.1:\(port)" }
        // A request's own deadline ends its wait for the dial; the dial goes on.
        let early = await poolError { _ = try await ping(pool, "stuck", 1, timeoutMs: 30) }
        #expect(early == .timedOut("stuck", timeoutMs: 30))
        // So does cancelling the request's task.
        let cancelled = Task { try await ping(pool, "stuck", 2) }
        try await waitFor("the second request to count", logs: logs) { await pool.stats(for: "stuck")?.requests == 2 }
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { _ = try await cancelled.value }
        // A request with time to spare learns the dial's outcome.
        let e = await poolError { _ = try await ping(pool, "stuck", 3) }
        guard case let .unreachable(_, reason)? = e else {
            Issue.record("expected unreachable, got \(String(describing: e)) with \(fillers.count) fillers connected")
            logs.dump()
            return
        }
        #expect(reason.contains("connect timeout"), "\(reason)")
        let stats = try #require(await pool.stats(for: "stuck"))
        #expect(stats.dialFailures == 1 && stats.timedOut == 1 && stats.unreachable == 1 && stats.requests == 3)
        await pool.close()
        for ch in fillers { try? await ch.close() }
        try await listener.close()
    }

    /// When gossip announces a new address for a node, the next request dials it and the old
    /// connection is closed.
    @Test func addressChangeRedials() async throws {
        let logs = LogCapture()
        let old = try await makeServer(offset: 100, logs: logs, name: "server-old")
        let new = try await makeServer(offset: 200, logs: logs, name: "server-new")
        let current = Mutex(old.address)
        let pool = makePool(logs: logs, name: "pool") { id in id == "n" ? current.withLock { $0 } : nil }
        let running = Running([old, new, pool], logger: logs.logger("group"))

        #expect(try await ping(pool, "n", 1) == 101)
        #expect(try await ping(pool, "n", 2) == 102)
        current.withLock { $0 = new.address }
        #expect(try await ping(pool, "n", 3) == 203)
        try await waitFor("the old server to see its connection closed", logs: logs) { old.stats().active == 0 }
        let stats = try #require(await pool.stats(for: "n"))
        #expect(stats.connects == 2 && stats.reconnects == 1 && stats.address == new.address)
        #expect(stats.unreachable + stats.closed == 0)
        #expect(old.stats().closedByError.isEmpty)
        try await running.stop()
    }

    /// A pool with another cluster key: the server rejects its first frame (authentication),
    /// closes that connection and keeps serving others; the pool reports the close and then
    /// backs off instead of redialling per request.
    @Test func wrongClusterKeyFailsAuthentication() async throws {
        let logs = LogCapture()
        let server = try await makeServer(offset: 7, logs: logs, name: "server")
        let address = server.address
        let intruder = makePool(keyring: otherClusterKey, settings: .init(backoff: PeerBackoff(initialMs: 60_000, maxMs: 60_000)),
                                logs: logs, name: "intruder") { _ in address }
        let member = makePool(logs: logs, name: "member") { _ in address }
        let running = Running([server, intruder, member], logger: logs.logger("group"))

        let first = await poolError { _ = try await ping(intruder, "s", 1) }
        #expect(first?.kind == "closed", "\(String(describing: first))")
        try await waitFor("the server to count the authentication failure", logs: logs) {
            server.stats().closedByError["authentication"] == 1
        }
        try await waitFor("the intruder's link to back off", logs: logs) {
            await intruder.stats(for: "s")?.state == .backingOff
        }
        let second = await poolError { _ = try await ping(intruder, "s", 1) }
        guard case let .unreachable(_, reason)? = second else {
            Issue.record("expected unreachable, got \(String(describing: second))")
            return
        }
        #expect(reason.contains("backing off"), "\(reason)")
        #expect(server.stats().accepted == 1)

        // The server is unharmed.
        #expect(try await ping(member, "s", 1) == 8)
        #expect(server.stats().accepted == 2 && server.stats().closedByError == ["authentication": 1])
        let s = try #require(await intruder.stats(for: "s"))
        #expect(s.connects == 1 && s.closed == 1 && s.unreachable == 1)
        try await running.stop()
    }

    /// A server at `maxConnections` closes one more connection at once and counts it; once a
    /// slot frees, the refused pool gets in after its backoff.
    @Test func connectionCountIsBounded() async throws {
        let logs = LogCapture()
        let server = try await makeServer(settings: .init(maxConnections: 1), offset: 1, logs: logs, name: "server")
        let address = server.address
        let pool1 = makePool(logs: logs, name: "pool-1") { _ in address }
        let pool2 = makePool(settings: .init(backoff: PeerBackoff(initialMs: 20, maxMs: 100)), logs: logs, name: "pool-2") { _ in address }
        let running = Running([server, pool1, pool2], logger: logs.logger("group"))

        #expect(try await ping(pool1, "s", 1) == 2)
        #expect(server.stats().active == 1)
        let refused = await poolError { _ = try await ping(pool2, "s", 1) }
        #expect(refused?.kind == "closed" || refused?.kind == "unreachable", "\(String(describing: refused))")
        try await waitFor("the refusal to be counted", logs: logs) { server.stats().refused >= 1 }
        #expect(server.stats().accepted == 1)
        #expect(try await ping(pool1, "s", 2) == 3)

        await pool1.forget("s")
        try await waitFor("the slot to free", logs: logs) { server.stats().active == 0 }
        try await waitFor("pool 2 to get in after its backoff", logs: logs) { (try? await ping(pool2, "s", 5)) == 6 }
        #expect(server.stats().active == 1 && server.stats().accepted == 2)
        let s2 = try #require(await pool2.stats(for: "s"))
        #expect(s2.consecutiveFailures == 0 && s2.state == .connected)
        try await running.stop()
    }

    /// A server bound but never run (a node that failed to start) still closes cleanly,
    /// including a connection the kernel accepted for it meanwhile.
    @Test func closeWithoutRunReleasesAcceptedConnections() async throws {
        let logs = LogCapture()
        let server = try await makeServer(offset: 1, logs: logs, name: "server")
        let address = server.address
        let pool = makePool(logs: logs, name: "pool") { _ in address }
        // The dial succeeds (the kernel accepts), but nobody serves: the request times out.
        let e = await poolError { _ = try await ping(pool, "s", 1, timeoutMs: 100) }
        #expect(e == .timedOut("s", timeoutMs: 100))
        #expect(await pool.stats(for: "s")?.state == .connected)
        await server.close()
        try await waitFor("the pool to see the connection closed", logs: logs) {
            await pool.stats(for: "s")?.state != .connected
        }
        #expect(server.stats().accepted == 0)
        await pool.close()
    }

    /// Connections are bidirectional: the side that accepted a pool's connection may send its
    /// own requests on it, and the pool's handler answers them.
    @Test func dialledConnectionServesThePeersRequests() async throws {
        let logs = LogCapture()
        let configuration = PeerWireConfiguration(keyring: clusterKey)
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0) { configuration.framedChannel($0) }
        let address = "127.0.0.1:\(try #require(listener.channel.localAddress?.port))"
        let pool = makePool(offset: 500, logs: logs, name: "pool") { _ in address }
        let poolAnswered = Gate()
        let fromAcceptor = try await withThrowingTaskGroup(of: Int64?.self) { tasks in
            tasks.addTask {
                try await listener.executeThenClose { accepted in
                    for try await connection in accepted {
                        return try await PeerConnection.run(channel: connection, handler: handler(offset: 7)) { conn in
                            let answer = try await conn.request(.ping, payload: PingMessage(sentAtMs: 40).encoded(), timeoutMs: 10_000)
                            await poolAnswered.wait()  // keep the connection until the pool's ping is answered
                            return try PingMessage.decode(answer[0].payload).sentAtMs
                        }
                    }
                    return nil
                }
            }
            tasks.addTask {
                // The pool's own request goes the other way on the same connection.
                let answer = try await ping(pool, "s", 1)
                #expect(answer == 8)
                poolAnswered.open()
                return nil
            }
            var got: Int64?
            for try await r in tasks { if let r { got = r } }
            return got
        }
        #expect(fromAcceptor == 540)
        #expect(await pool.stats(for: "s")?.connects == 1)
        await pool.close()
    }

    @Test func bindFailureNamesTheAddress() async throws {
        let logs = LogCapture()
        let server = try await makeServer(offset: 0, logs: logs, name: "server")
        let running = Running([server], logger: logs.logger("group"))
        do {
            _ = try await makeServer(port: server.boundPort, offset: 0, logs: logs, name: "second")
            Issue.record("a second listener bound \(server.address)")
        } catch let e as PeerServer.StartError {
            guard case let .bindFailed(address, _) = e else { return }
            #expect(address == "127.0.0.1:\(server.boundPort)")
            #expect("\(e)".contains("cannot bind the peer listener on 127.0.0.1:\(server.boundPort)"))
        }
        try await running.stop()
    }
}
