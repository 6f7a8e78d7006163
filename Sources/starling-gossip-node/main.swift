import Logging
import ServiceLifecycle
import StarlingGossip
import StarlingMembership

#if canImport(Glibc)
import Glibc
#endif

// A gossip-only node for multi-process tests and loopback measurements: the real shell
// (StarlingGossip) with nothing else. Until `starling serve` carries the gossip service, the
// multi-process tests spawn this.
//
//   starling-gossip-node --gossip 127.0.0.1:0 [--join host:port,...] [--node-name N] [--node-id HEX]
//                        [--zone Z] [--cluster-id C] [--profile lan|local-test] [--key BASE64]...
//
// stdout, one line per fact (parsed by the tests):
//   READY <node-id> <advertised host:port>
//   EVENT <ms since start> <kind> <member-name> <member-id> <incarnation> <status>
// SIGTERM leaves the cluster gracefully, then exits 0. Logs go to stderr.

/// Unbuffered line output (the tests read it while the process runs).
func emit(_ text: String, fd: Int32 = 1) {
    var line = text + "\n"
    line.withUTF8 { p in _ = write(fd, p.baseAddress, p.count) }
}

func fail(_ s: String) -> Never {
    emit(s, fd: 2)
    exit(2)
}

var args = Array(CommandLine.arguments.dropFirst())
var parsed: [String: [String]] = [:]
while !args.isEmpty {
    let flag = args.removeFirst()
    guard flag.hasPrefix("--"), !args.isEmpty else {
        fail("bad argument \(flag)")
    }
    parsed[String(flag.dropFirst(2)), default: []].append(args.removeFirst())
}
let opts = parsed


guard let bind = GossipAddress(parsing: opts["gossip"]?.last ?? "127.0.0.1:7946", allowZeroPort: true) else { fail("bad --gossip") }
guard let seeds = GossipAddress.parseList(opts["join"]?.last ?? "") else { fail("bad --join") }
let name = opts["node-name"]?.last ?? "gossip-\(getpid())"
var sysRandom = SystemRandomNumberGenerator()
var id = NodeID.random(using: &sysRandom)
if let hex = opts["node-id"]?.last {
    guard let parsedID = NodeID(hex: hex) else { fail("bad --node-id") }
    id = parsedID
}
guard let settings = SWIMSettings.profile(named: opts["profile"]?.last ?? "lan") else { fail("bad --profile") }

var config = GossipConfiguration(nodeID: id, name: name,
                                 metadata: NodeMetadata(zone: opts["zone"]?.last ?? "", state: .active, version: "test"))
config.bind = bind
config.seeds = seeds
config.settings = settings
config.cluster = ClusterID(opts["cluster-id"]?.last ?? "starling")
do {
    config.keyring = try Keyring(base64Keys: opts["key"] ?? [])
} catch {
    fail("\(error)")
}

LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
var logger = Logger(label: "gossip-node")
logger.logLevel = .info

let service: GossipService
do {
    service = try await GossipService.bind(config, logger: logger)
} catch {
    fail("\(error)")
}
emit("READY \(id) \(service.advertisedAddress)")

struct EventPrinter: Service {
    let service: GossipService
    func run() async throws {
        let clock = ContinuousClock()
        let t0 = clock.now
        let changes = await service.subscribe()
        await cancelWhenGracefulShutdown {
            for await c in changes {
                let ms = (clock.now - t0).components
                let elapsed = ms.seconds * 1_000 + ms.attoseconds / 1_000_000_000_000_000
                emit("EVENT \(elapsed) \(c.kind.rawValue) \(c.member.name) \(c.member.id) \(c.member.incarnation) \(c.member.status)")
            }
        }
    }
}

let group = ServiceGroup(configuration: .init(
    services: [.init(service: service), .init(service: EventPrinter(service: service))],
    gracefulShutdownSignals: [.sigterm, .sigint],
    logger: logger))
try await group.run()
