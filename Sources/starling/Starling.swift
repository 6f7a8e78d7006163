import ArgumentParser
import Foundation
import Logging
import StarlingNode

@main
struct Starling: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "starling",
        abstract: "Starling: a monitoring platform in one binary (Prometheus-compatible ingest and read API).",
        discussion: "Start a node with `starling serve`; see docs/configuration.md for every setting.",
        subcommands: [Serve.self, Version.self, TokenCommand.self, WriteCommand.self, ExportCommand.self, LeaveCommand.self],
        defaultSubcommand: nil)
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run a node.",
        discussion: """
            Settings come from defaults, then the YAML file (--config or STARLING_CONFIG), then STARLING_* environment \
            variables, then flags. Every key is listed in docs/configuration.md; `--set KEY=VALUE` sets any of them.
            """)

    @Option(name: .long, help: ArgumentHelp("YAML configuration file (env STARLING_CONFIG).", valueName: "file"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("Data directory (node.data_dir, env STARLING_DATA_DIR). Default ./starling-data.", valueName: "dir"))
    var dataDir: String?

    @Option(name: .long, help: ArgumentHelp("HTTP listen address (http.listen, env STARLING_HTTP). Default 0.0.0.0:9470.", valueName: "host:port"))
    var http: String?

    @Option(name: .long, help: ArgumentHelp("Gossip listen address (cluster.gossip, env STARLING_GOSSIP). Default 0.0.0.0:9471.", valueName: "host:port"))
    var gossip: String?

    @Option(name: .long, help: ArgumentHelp("Peer-RPC listen address (cluster.peer_listen, env STARLING_CLUSTER_PEER_LISTEN). Default 0.0.0.0:9472.", valueName: "host:port"))
    var peer: String?

    @Option(name: .long, help: ArgumentHelp("Peers to join (cluster.join, env STARLING_JOIN).", valueName: "host:port,..."))
    var join: String?

    @Option(name: .long, help: ArgumentHelp("Node name (node.name, env STARLING_NODE_NAME). Default: host name.", valueName: "name"))
    var nodeName: String?

    @Option(name: .long, help: ArgumentHelp("Zone of this node (node.zone, env STARLING_ZONE).", valueName: "zone"))
    var zone: String?

    @Option(name: .long, help: ArgumentHelp("Replicas per shard (cluster.replication_factor, env STARLING_REPLICATION_FACTOR). Default 3.", valueName: "n"))
    var replicationFactor: String?

    @Option(name: .long, help: ArgumentHelp("Retention (storage.retention, env STARLING_RETENTION). Default 30d.", valueName: "duration"))
    var retention: String?

    @Option(name: .long, help: ArgumentHelp("Log level (log.level, env STARLING_LOG_LEVEL). Default info.", valueName: "level"))
    var logLevel: String?

    @Option(name: .long, help: ArgumentHelp("Log format logfmt|json (log.format, env STARLING_LOG_FORMAT).", valueName: "format"))
    var logFormat: String?

    @Option(name: .customLong("set"), help: ArgumentHelp("Set any configuration key (repeatable), e.g. --set http.max_body_bytes=64MiB.", valueName: "key=value"))
    var set: [String] = []

    @Flag(name: .long, help: "Print the effective configuration as YAML (secrets redacted) and exit.")
    var printConfig = false

    @Flag(name: .long, help: .hidden)
    var printConfigReference = false

    func flagValues() throws -> [ConfigLoader.FlagValue] {
        var out: [ConfigLoader.FlagValue] = []
        let named: [(String, String, String?)] = [
            ("--data-dir", "node.data_dir", dataDir), ("--http", "http.listen", http), ("--gossip", "cluster.gossip", gossip),
            ("--peer", "cluster.peer_listen", peer),
            ("--join", "cluster.join", join), ("--node-name", "node.name", nodeName), ("--zone", "node.zone", zone),
            ("--replication-factor", "cluster.replication_factor", replicationFactor), ("--retention", "storage.retention", retention),
            ("--log-level", "log.level", logLevel), ("--log-format", "log.format", logFormat),
        ]
        for (flag, key, value) in named {
            if let value { out.append(.init(flag: flag, key: key, value: value)) }
        }
        for item in set {
            guard let eq = item.firstIndex(of: "=") else {
                throw ValidationError("--set expects KEY=VALUE, got \"\(item)\"")
            }
            out.append(.init(flag: "--set \(item[..<eq])", key: String(item[..<eq]), value: String(item[item.index(after: eq)...])))
        }
        return out
    }

    func run() async throws {
        let loaded: ConfigLoader.Result
        do {
            loaded = try ConfigLoader.load(configFile: config, environment: ProcessInfo.processInfo.environment, flags: flagValues())
        } catch let e as ConfigError {
            FileHandle.standardError.write(Data("starling: configuration error: \(e)\n".utf8))
            throw ExitCode(2)
        }
        if printConfigReference {
            print(ConfigLoader.markdownReference(), terminator: "")
            return
        }
        if printConfig {
            print(ConfigLoader.render(loaded.config), terminator: "")
            return
        }
        let c = loaded.config
        StructuredLogHandler.bootstrap(level: c.logLevel, format: c.logFormat)
        NodeMetricsBootstrap.bootstrapSwiftMetrics()
        var logger = Logger(label: "starling")
        logger[metadataKey: "node"] = .string(c.nodeName)
        if let f = loaded.file { logger.info("configuration file loaded", metadata: ["path": .string(f)]) }
        for name in loaded.unknownEnvironment {
            logger.warning("ignoring unknown environment variable (no such setting; see docs/configuration.md)", metadata: ["name": .string(name)])
        }
        do {
            try await StarlingNode(config: c, logger: logger).run()
        } catch {
            logger.critical("starling failed", metadata: ["error": .string("\(error)")])
            throw ExitCode(1)
        }
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print version, git commit and Swift version.")

    func run() {
        print("starling \(StarlingVersion.version)")
        print("commit: \(StarlingVersion.commit ?? "unknown")")
        print("swift: \(StarlingVersion.swift)")
    }
}
