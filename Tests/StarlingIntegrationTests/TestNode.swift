import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import StarlingTestKit
import Testing

/// A real `starling serve` process on a free loopback port with its own data directory.
final class TestNode: @unchecked Sendable {
    static let adminToken = "integration-admin-token-0123456789"
    let process: NodeProcess
    private(set) var baseURL = ""

    init(name: String, extraArgs: [String] = [], environment: [String: String] = [:], dataDir: String? = nil) {
        let dir = dataDir ?? NodeProcess.temporaryDirectory("starling-\(name)")
        var env = ["STARLING_ADMIN_TOKEN": TestNode.adminToken]
        for (k, v) in environment { env[k] = v }
        process = NodeProcess(
            name: name,
            // Gossip on a free loopback port too: the default 9471 would collide between nodes.
            arguments: ["serve", "--data-dir", dir, "--http", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--peer", "127.0.0.1:0", "--node-name", name, "--log-level", "debug"] + extraArgs,
            environment: env, dataDir: dir)
    }

    /// Starts the process and waits until it listens and `/readyz` says ready.
    func start() async throws {
        let offset = process.logOffset
        try process.start()
        let line = try await process.waitForLog(["http server listening"], afterOffset: offset)
        guard let address = NodeProcess.logfmtValue("address", in: line) else {
            throw NodeProcessError.exited("no address in \(line)")
        }
        baseURL = "http://\(address)"
        try await waitReady()
    }

    func waitReady(timeout: Duration = .seconds(120)) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let r = try? await request(.GET, "/readyz", token: nil), r.status == 200 { return }
            if !process.isRunning { throw NodeProcessError.exited("\(process.name) exited before becoming ready") }
            if ContinuousClock.now > deadline { throw NodeProcessError.timeout("\(process.name) not ready within \(timeout)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    struct Reply {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]) ?? [:] }
    }

    func request(_ method: HTTPMethod, _ path: String, token: String? = TestNode.adminToken, body: [UInt8]? = nil, headers: [(String, String)] = []) async throws -> Reply {
        var req = HTTPClientRequest(url: baseURL + path)
        req.method = method
        if let token { req.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (k, v) in headers { req.headers.add(name: k, value: v) }
        if let body { req.body = .bytes(ByteBuffer(bytes: body)) }
        let resp = try await HTTPClient.shared.execute(req, timeout: .seconds(30))
        let bytes = try await resp.body.collect(upTo: 256 << 20)
        return Reply(status: Int(resp.status.code), headers: resp.headers, body: Array(buffer: bytes))
    }

    func stop() {
        process.cleanup()
    }
}

/// Runs `body`; when it throws (integration tests check with `#require`, which throws) prints
/// every node's captured log, then rethrows.
func withLogsOnFailure(_ nodes: [NodeProcess], _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch {
        for n in nodes { n.dumpLog() }
        throw error
    }
}

/// Percent-encodes a query parameter value.
func q(_ s: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
}
