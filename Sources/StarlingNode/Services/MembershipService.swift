import Foundation
import Logging
import ServiceLifecycle
import StarlingGossip
import StarlingHTTP
import StarlingMembership

/// How the node turns its configuration into a running gossip member, and the node's lifecycle
/// state (joining → active → leaving) announced to the cluster.
public enum NodeMembership {
    /// The gossip configuration for this node: bind and advertise addresses, seeds, cluster ID,
    /// keyring (from `cluster.keys` and `cluster.keys_file`), timing profile and the metadata
    /// peers learn about it. `httpAddress` is filled in once the HTTP server is bound (port 0).
    public static func gossipConfiguration(_ c: NodeConfig, nodeID: NodeID) throws -> GossipConfiguration {
        var g = GossipConfiguration(
            nodeID: nodeID, name: c.nodeName,
            metadata: NodeMetadata(zone: c.zone, state: .joining, version: StarlingVersion.version))
        g.bind = GossipAddress(host: c.gossipListen.host, port: UInt16(c.gossipListen.port))
        g.advertise = c.gossipAdvertise.map { GossipAddress(host: $0.host, port: UInt16($0.port)) }
        g.seeds = c.join.map { GossipAddress(host: $0.host, port: UInt16($0.port)) }
        g.cluster = ClusterID(c.clusterID)
        guard let settings = SWIMSettings.profile(named: c.clusterProfile) else {
            throw NodeError.startup("unknown cluster.profile \(c.clusterProfile)")
        }
        g.settings = settings
        var keys = c.clusterKeys
        if let file = c.clusterKeysFile { keys += try readKeysFile(file) }
        do {
            g.keyring = try Keyring(base64Keys: keys)
        } catch {
            throw NodeError.startup("invalid gossip keyring (cluster.keys, cluster.keys_file): \(error)")
        }
        return g
    }

    /// One base64 key per line; blank lines and `#` comments are skipped.
    static func readKeysFile(_ path: String) throws -> [String] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw NodeError.startup("cannot read cluster.keys_file \(path): \((error as NSError).localizedDescription)")
        }
        var keys: [String] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let key = line.trimmingCharacters(in: .whitespaces)
            if key.isEmpty { continue }
            do {
                _ = try Keyring(base64Keys: [key])
            } catch {
                throw NodeError.startup("cluster.keys_file \(path) line \(i + 1): \(error)")
            }
            keys.append(key)
        }
        if keys.isEmpty { throw NodeError.startup("cluster.keys_file \(path) holds no key") }
        return keys
    }

    /// The `host:port` peers should use for a service listening on `listen`: the listen host,
    /// or, when it is a wildcard, the gossip advertise host (the address peers already reach
    /// this node at).
    static func announced(_ listen: HostPort, port: Int? = nil, advertiseHost: String) -> String {
        let host = (listen.host == "0.0.0.0" || listen.host == "::" || listen.host.isEmpty) ? advertiseHost : listen.host
        return HostPort(host: host, port: port ?? listen.port).description
    }
}

/// The membership view for `GET /api/v1/cluster/members`.
struct GossipMembershipSource: ClusterMembershipSource {
    let gossip: GossipService

    func clusterMembers() async -> ClusterMembersSnapshot {
        let local = await gossip.localMember()
        let members = await gossip.members()
        let offset = await gossip.wallClockMs(ofInstanceMs: 0)
        return ClusterMembersSnapshot(clusterID: gossip.configuration.cluster.name, localID: local.id,
                                      members: members, wallOffsetMs: offset)
    }
}

/// Announces this node's lifecycle state to the cluster. Runs last in the service group, so on
/// SIGTERM it is the first to stop: when the node leaves for good it hands its shards over
/// (state `leaving`) while HTTP and peer RPC still serve; then the gossip service (stopping
/// after HTTP) announces `left`.
///
/// `joining` until storage has recovered, HTTP is listening (its address is in the metadata)
/// and the join went through (or there was nothing to join) — and, for a new node joining
/// others, until it pulled the history of the shards it owns and the other new owners of those
/// shards report them complete; then `active`. A restarted
/// member starts `active` (see `StarlingNode`). Join attempts are
/// retried with backoff for as long as it takes; readiness (`/readyz`) does not wait for them,
/// so a StatefulSet whose seed name lists only ready pods cannot deadlock.
final class NodeStateService: Service, Sendable {
    let gossip: GossipService
    let storage: StorageService
    let httpBound: AsyncStream<String>
    /// Run once joined, before announcing `active`, when other members are live: a new node's
    /// shard bootstrap (anti-entropy full sync). Nil for a restarted member.
    let bootstrap: (@Sendable () async -> Void)?
    /// Run first on graceful shutdown: the hand-over when SIGTERM means leaving for good
    /// (`cluster.leave_on_shutdown`). Nil for a plain stop.
    let onShutdown: (@Sendable () async -> Void)?
    let logger: Logger

    init(gossip: GossipService, storage: StorageService, httpBound: AsyncStream<String>,
         bootstrap: (@Sendable () async -> Void)? = nil, onShutdown: (@Sendable () async -> Void)? = nil, logger: Logger) {
        self.gossip = gossip
        self.storage = storage
        self.httpBound = httpBound
        self.bootstrap = bootstrap
        self.onShutdown = onShutdown
        self.logger = logger
    }

    func run() async throws {
        let activated: Bool = await cancelWhenGracefulShutdown { () async -> Bool in
            var it = self.httpBound.makeAsyncIterator()
            guard let http = await it.next() else { return false }
            var m = await self.gossip.localMember().metadata
            m.httpAddress = http
            await self.gossip.updateMetadata(m)
            guard await self.storage.waitUntilOpen() else { return false }
            guard await self.gossip.waitUntilJoined(), !Task.isCancelled else { return false }
            if let bootstrap = self.bootstrap, await self.gossip.members().filter({ $0.status.isLive }).count > 1 {
                self.logger.info("new node: pulling the history of its shards before turning active")
                await bootstrap()
                guard !Task.isCancelled else { return false }
            }
            await self.gossip.setState(.active)
            let live = await self.gossip.members().filter { $0.status.isLive }.count
            self.logger.info("node active in the cluster", metadata: [
                "node_id": .string(self.gossip.configuration.nodeID.description), "http": .string(http),
                "live_members": .stringConvertible(live),
            ])
            return true
        }
        if activated {
            try? await gracefulShutdown()
        }
        // Graceful shutdown (or cancellation). Leaving for good hands the shards over first
        // (state `leaving`, so gossip's `left` then takes the node out of placement at once);
        // a plain stop keeps the state, and peers keep the node in placement (hints) until it
        // returns or cluster.removal_timeout passes.
        if let onShutdown { await onShutdown() }
        logger.info("node stopping: draining")
    }
}
