import Foundation
import Logging
import Testing

@testable import StarlingNode

@Suite struct ConfigTests {
    func load(yaml: String? = nil, env: [String: String] = [:], flags: [ConfigLoader.FlagValue] = []) throws -> ConfigLoader.Result {
        var file: String? = nil
        if let yaml {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("starling-config-\(UUID().uuidString).yaml").path
            try yaml.write(toFile: path, atomically: true, encoding: .utf8)
            file = path
        }
        defer { if let file { try? FileManager.default.removeItem(atPath: file) } }
        return try ConfigLoader.load(configFile: file, environment: env, flags: flags)
    }

    @Test func defaultsMakeASingleNode() throws {
        let c = try load().config
        #expect(c.dataDir == "./starling-data")
        #expect(c.httpListen == HostPort(host: "0.0.0.0", port: 9470))
        #expect(c.gossipListen.port == 9471)
        #expect(c.join.isEmpty)
        #expect(c.retention == .seconds(30 * 86_400))
        #expect(c.resolvedAdminTokenFile == "./starling-data/admin-token")
        #expect(c.logLevel == .info)
    }

    @Test func precedenceIsFileThenEnvironmentThenFlags() throws {
        let yaml = """
            node:
              data_dir: /from/file
              labels: {dc: eu1, rack: r7}
            http:
              listen: ":1000"
              max_body_bytes: 8MiB
            storage:
              retention: 2d
            cluster:
              join: ["10.0.0.1:9471", "[::1]:9471"]
            """
        let r = try load(
            yaml: yaml,
            env: ["STARLING_HTTP": "127.0.0.1:2000", "STARLING_RETENTION": "3d", "STARLING_BOGUS": "x", "STARLING_TOKEN": "t"],
            flags: [.init(flag: "--http", key: "http.listen", value: "127.0.0.1:3000")])
        let c = r.config
        #expect(c.dataDir == "/from/file")
        #expect(c.nodeLabels == ["dc": "eu1", "rack": "r7"])
        #expect(c.httpListen == HostPort(host: "127.0.0.1", port: 3000))
        #expect(c.maxBodyBytes == 8 << 20)
        #expect(c.retention == .seconds(3 * 86_400))
        #expect(c.join == [HostPort(host: "10.0.0.1", port: 9471), HostPort(host: "::1", port: 9471)])
        #expect(r.unknownEnvironment == ["STARLING_BOGUS"])
    }

    @Test func designFlagsHaveTheirEnvironmentNames() {
        let expected = [
            "node.data_dir": ("STARLING_DATA_DIR", "--data-dir"), "http.listen": ("STARLING_HTTP", "--http"),
            "cluster.gossip": ("STARLING_GOSSIP", "--gossip"), "cluster.peer_listen": ("STARLING_CLUSTER_PEER_LISTEN", "--peer"), "cluster.join": ("STARLING_JOIN", "--join"),
            "node.name": ("STARLING_NODE_NAME", "--node-name"), "node.zone": ("STARLING_ZONE", "--zone"),
            "cluster.replication_factor": ("STARLING_REPLICATION_FACTOR", "--replication-factor"),
            "auth.admin_token": ("STARLING_ADMIN_TOKEN", nil),
        ]
        for (key, (env, flag)) in expected {
            let k = ConfigKey.named(key)
            #expect(k?.env == env, "\(key)")
            #expect(k?.flag == flag, "\(key)")
        }
        #expect(Set(ConfigKey.all.map(\.env)).count == ConfigKey.all.count, "environment names are unique")
    }

    @Test func errorsNameTheKeyAndTheSource() throws {
        #expect(throws: ConfigError.self) { try load(env: ["STARLING_HTTP": "nonsense"]) }
        do {
            _ = try load(env: ["STARLING_HTTP": "nonsense"])
        } catch let e as ConfigError {
            #expect(e.message.contains("http.listen"))
            #expect(e.message.contains("environment variable STARLING_HTTP"))
        }
        do {
            _ = try load(yaml: "http:\n  lisen: ':1'\n")
            Issue.record("unknown key accepted")
        } catch let e as ConfigError {
            #expect(e.message.contains("unknown key \"http.lisen\""))
            #expect(e.message.contains("did you mean \"http.listen\""))
        }
        do {
            _ = try load(flags: [.init(flag: "--retention", key: "storage.retention", value: "5 parsecs")])
            Issue.record("bad duration accepted")
        } catch let e as ConfigError {
            #expect(e.message.contains("storage.retention"))
            #expect(e.message.contains("flag --retention"))
        }
        do {
            _ = try load(yaml: "node: [1, 2\n")
            Issue.record("bad YAML accepted")
        } catch let e as ConfigError {
            #expect(e.message.contains("not valid YAML"))
        }
        do {
            _ = try load(env: ["STARLING_ADMIN_TOKEN": "short"])
            Issue.record("short admin token accepted")
        } catch let e as ConfigError {
            #expect(!e.message.contains("short"), "secrets are not echoed")
        }
        #expect(throws: ConfigError.self) { try load(yaml: "node:\n  labels: {\"__x\": y}\n") }
        #expect(throws: ConfigError.self) { try load(configFile: "/nonexistent/starling.yaml") }
    }

    /// The query read-ahead and the stored-labels cache: defaults, 0 to turn them off, and a
    /// clear error for a value that is not a size or a count.
    @Test func queryMemoryKnobs() throws {
        let d = try load().config
        #expect(d.queryReadAheadBytes == 8 << 20)
        #expect(d.storedLabelsCacheEntries == 100_000)
        let off = try load(env: ["STARLING_STORAGE_QUERY_READ_AHEAD": "0", "STARLING_STORAGE_LABELS_CACHE_ENTRIES": "0"]).config
        #expect(off.queryReadAheadBytes == 0)
        #expect(off.storedLabelsCacheEntries == 0)
        #expect(try load(yaml: "storage:\n  query_read_ahead: 64MiB\n").config.queryReadAheadBytes == 64 << 20)
        do {
            _ = try load(yaml: "storage:\n  query_read_ahead: lots\n")
            Issue.record("bad size accepted")
        } catch let e as ConfigError {
            #expect(e.message.contains("storage.query_read_ahead"))
            #expect(e.message.contains("byte size"))
        }
        #expect(throws: ConfigError.self) { try load(env: ["STARLING_STORAGE_LABELS_CACHE_ENTRIES": "-5"]) }
    }

    /// Samples per head chunk: 240 by default, settable, bounded with an error naming the key.
    @Test func samplesPerChunk() throws {
        #expect(try load().config.samplesPerChunk == 240)
        #expect(try load(yaml: "storage:\n  samples_per_chunk: 480\n").config.samplesPerChunk == 480)
        #expect(try load(env: ["STARLING_STORAGE_SAMPLES_PER_CHUNK": "960"]).config.samplesPerChunk == 960)
        do {
            _ = try load(yaml: "storage:\n  samples_per_chunk: 8\n")
            Issue.record("8 samples per chunk accepted")
        } catch let e as ConfigError {
            #expect(e.message.contains("storage.samples_per_chunk"))
        }
    }

    func load(configFile: String) throws -> ConfigLoader.Result {
        try ConfigLoader.load(configFile: configFile, environment: [:], flags: [])
    }

    @Test func renderedConfigParsesBackToTheSameValues() throws {
        let flags: [ConfigLoader.FlagValue] = [
            .init(flag: "--set", key: "node.labels", value: "dc=eu1,team=ops"),
            .init(flag: "--set", key: "storage.max_series", value: "5000"),
            .init(flag: "--set", key: "cluster.join", value: "a:1,b:2"),
            .init(flag: "--set", key: "log.format", value: "json"),
        ]
        let c = try load(flags: flags).config
        let rendered = ConfigLoader.render(c)
        var back = NodeConfig()
        try ConfigLoader.apply(yaml: rendered, file: "rendered", to: &back)
        #expect(back == c)
    }

    @Test func syntaxHelpers() {
        #expect(ConfigSyntax.duration("1h30m") == .seconds(5400))
        #expect(ConfigSyntax.duration("500ms") == .milliseconds(500))
        #expect(ConfigSyntax.duration("30d") == .seconds(30 * 86_400))
        #expect(ConfigSyntax.duration("1x") == nil)
        #expect(ConfigSyntax.duration("") == nil)
        #expect(ConfigSyntax.duration("99999999999999999y") == nil)
        #expect(ConfigSyntax.format(.seconds(5400)) == "1h30m")
        #expect(ConfigSyntax.bytes("32MiB") == 32 << 20)
        #expect(ConfigSyntax.bytes("1MB") == 1_000_000)
        #expect(ConfigSyntax.bytes("12") == 12)
        #expect(ConfigSyntax.bytes("12 parsecs") == nil)
        #expect(HostPort(parsing: ":9470") == HostPort(host: "0.0.0.0", port: 9470))
        #expect(HostPort(parsing: "[::1]:80")?.description == "[::1]:80")
        #expect(HostPort(parsing: "::1:80") == nil)
        #expect(HostPort(parsing: "host:99999") == nil)
    }

    /// docs/configuration.md documents every key with its environment variable.
    @Test func everyKeyIsDocumented() throws {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/configuration.md")
        let text = try String(contentsOf: docs, encoding: .utf8)
        #expect(text.contains(ConfigLoader.markdownReference()), "docs/configuration.md's table is stale: regenerate it with `starling serve --print-config-reference`")
        for key in ConfigKey.all {
            #expect(text.contains("`\(key.key)`"), "\(key.key) missing from docs/configuration.md")
            #expect(text.contains("`\(key.env)`"), "\(key.env) missing from docs/configuration.md")
        }
    }

    @Test func adminTokenIsGeneratedOnceWithPrivateMode() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("starling-admin-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var c = NodeConfig()
        c.dataDir = dir
        let (t1, o1) = try AdminTokenBootstrap.resolve(c)
        #expect(o1 == .generatedFile(dir + "/admin-token"))
        let attrs = try FileManager.default.attributesOfItem(atPath: dir + "/admin-token")
        #expect((attrs[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let (t2, o2) = try AdminTokenBootstrap.resolve(c)
        #expect(t1 == t2)
        #expect(o2 == .existingFile(dir + "/admin-token"))
        c.adminToken = "configured-token-0123456789"
        #expect(try AdminTokenBootstrap.resolve(c).token == "configured-token-0123456789")
    }
}

@Suite struct LogHandlerTests {
    @Test func logfmtAndJSONLinesAreOneRecordEach() throws {
        let sink = LogSink.memory()
        var logger = Logger(label: "starling") { StructuredLogHandler(label: $0, level: .debug, format: .logfmt, sink: sink) }
        logger[metadataKey: "node"] = "n1"
        logger.info("storage recovered", metadata: ["recovery_ms": "12", "path": "/a b/\"c\"", "multi": "x\ny"])
        logger.trace("hidden")
        let line = try #require(sink.lines.first)
        #expect(sink.lines.count == 1)
        #expect(line.hasSuffix("\n") && line.dropLast().contains("\n") == false)
        #expect(line.contains(" level=info logger=starling msg=\"storage recovered\" "))
        #expect(line.contains(" recovery_ms=12"))
        #expect(line.contains(#" path="/a b/\"c\"""#))
        #expect(line.contains(#" multi="x\ny""#))
        #expect(line.contains(" node=n1"))

        let jsonSink = LogSink.memory()
        let jl = Logger(label: "starling") { StructuredLogHandler(label: $0, level: .info, format: .json, sink: jsonSink) }
        jl.warning("quote \" here", metadata: ["k": "v\u{1}"])
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(jsonSink.lines[0].utf8)) as? [String: String])
        #expect(obj["msg"] == "quote \" here")
        #expect(obj["k"] == "v\u{1}")
        #expect(obj["level"] == "warning")
        #expect(obj["ts"]?.hasSuffix("Z") == true)
    }
}
