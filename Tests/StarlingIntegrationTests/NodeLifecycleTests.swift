import Foundation
import StarlingTestKit
import Testing

/// End-to-end tests against real `starling` processes: auth, tokens across restarts, graceful
/// shutdown, start-up errors.
@Suite(.serialized) struct NodeLifecycleTests {
    @Test func authHealthAndTokensSurviveARestart() async throws {
        let node = TestNode(name: "auth")
        defer { node.stop() }
        try await withLogsOnFailure([node.process]) {
            try await node.start()

            // Open endpoints.
            let health = try await node.request(.GET, "/healthz", token: nil)
            try #require(health.status == 200)
            try #require(try await node.request(.GET, "/readyz", token: nil).status == 200)

            // 401s with reasons, 403 with role and action.
            let missing = try await node.request(.GET, "/api/v1/labels", token: nil)
            try #require(missing.status == 401)
            try #require((missing.json["error"] as? String)?.contains("missing Authorization header") == true)
            let unknown = try await node.request(.GET, "/api/v1/labels", token: "stl_nope")
            try #require(unknown.status == 401)
            try #require(unknown.json["errorType"] as? String == "unauthorized")

            let created = try await node.request(
                .POST, "/api/v1/admin/tokens", body: Array(#"{"name":"grafana","role":"reader"}"#.utf8),
                headers: [("Content-Type", "application/json")])
            try #require(created.status == 201, "\(created.text)")
            let data = try #require(created.json["data"] as? [String: Any])
            let readerToken = try #require(data["token"] as? String)
            let readerID = try #require(data["id"] as? String)

            try #require(try await node.request(.GET, "/api/v1/labels", token: readerToken).status == 200)
            let forbidden = try await node.request(.POST, "/api/v1/admin/tokens", token: readerToken, body: Array("{}".utf8))
            try #require(forbidden.status == 403)
            try #require((forbidden.json["error"] as? String)?.contains("role reader") == true)

            // Graceful stop: SIGTERM, clean exit, storage flushed.
            node.process.signal(SIGTERM)
            let status = try await node.process.waitForExit()
            try #require(status == 0, "exit status \(status)")
            try #require(node.process.log.contains("storage flushed and closed"))
            try #require(node.process.log.contains("starling stopped"))

            // The token is still valid after a restart; revoke it and it is refused as revoked.
            try await node.start()
            try #require(try await node.request(.GET, "/api/v1/labels", token: readerToken).status == 200)
            try #require(try await node.request(.DELETE, "/api/v1/admin/tokens/\(readerID)").status == 200)
            let revoked = try await node.request(.GET, "/api/v1/labels", token: readerToken)
            try #require(revoked.status == 401)
            try #require((revoked.json["error"] as? String)?.contains("revoked") == true)

            // The CLI manages tokens against the running node.
            let list = try runCLI(["token", "list", "--url", node.baseURL, "--token", TestNode.adminToken])
            try #require(list.status == 0, "\(list.output)")
            try #require(list.output.contains(readerID) && list.output.contains("grafana"))
        }
    }

    @Test func generatedAdminTokenIsWrittenPrivatelyAndLogged() async throws {
        let dir = NodeProcess.temporaryDirectory("starling-gen")
        let process = NodeProcess(name: "gen", arguments: ["serve", "--data-dir", dir, "--http", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--peer", "127.0.0.1:0"], dataDir: dir)
        defer { process.cleanup() }
        try await withLogsOnFailure([process]) {
            try process.start()
            let line = try await process.waitForLog(["generated a bootstrap admin token"])
            let path = try #require(NodeProcess.logfmtValue("path", in: line))
            try #require(path == dir + "/admin-token")
            let token = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            try #require(token.hasPrefix("stl_") && token.count > 40)
            try #require(!process.log.contains(token), "the token itself must never be logged")
            let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber
            try #require(mode?.intValue == 0o600)
            let listen = try await process.waitForLog(["http server listening"])
            let address = try #require(NodeProcess.logfmtValue("address", in: listen))
            _ = try await process.waitForLog(["storage recovered"])  // token listing needs the token store
            let result = try runCLI(["token", "list", "--url", "http://\(address)", "--data-dir", dir])
            try #require(result.status == 0, "\(result.output)")
        }
    }

    @Test func badConfigurationFailsFastWithTheKeyNamed() throws {
        let result = try runCLI(["serve", "--http", "nonsense"], environment: ["STARLING_DATA_DIR": "/nonexistent/never-created"])
        #expect(result.status == 2)
        #expect(result.output.contains("http.listen"))
        #expect(result.output.contains("flag --http"))
        #expect(!FileManager.default.fileExists(atPath: "/nonexistent/never-created"))

        let printed = try runCLI(["serve", "--print-config", "--retention", "7d"], environment: ["STARLING_ADMIN_TOKEN": "secret-secret-secret"])
        #expect(printed.status == 0)
        #expect(printed.output.contains("retention: 7d"))
        #expect(!printed.output.contains("secret-secret-secret"))

        let version = try runCLI(["version"])
        #expect(version.status == 0)
        #expect(version.output.contains("starling "))
        #expect(version.output.contains("swift: "))
    }
}

/// Runs the `starling` binary to completion and returns its exit status and combined output.
func runCLI(_ args: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
    var env = ProcessInfo.processInfo.environment
    env.removeValue(forKey: "STARLING_TOKEN")
    for (k, v) in environment { env[k] = v }
    return try ChildProcess.runBlocking(NodeProcess.starlingBinary(), args, environment: env)
}
