import Foundation
import Logging
import StarlingCluster
import StarlingCore

/// Everything a node is configured with. Values come from, in rising precedence: the defaults
/// below, the YAML file (`--config` / `STARLING_CONFIG`), `STARLING_*` environment variables,
/// and command-line flags (`--data-dir`, … and `--set key=value` for any key).
///
/// Every field is one documented key in `ConfigKeys.all` (key, environment variable, flag,
/// default, meaning), which is also what `docs/configuration.md` lists. Adding a setting means
/// adding a field here and one entry there.
public struct NodeConfig: Sendable, Equatable {
    // MARK: node
    /// Name of this node in the cluster and in logs. Default: the host name. Must be unique per
    /// cluster (two nodes with one name would shadow each other in membership).
    public var nodeName: String = NodeConfig.defaultNodeName()
    /// Failure domain (rack, availability zone) used to spread replicas. Empty: no zone.
    public var zone: String = ""
    /// Where this node keeps its data (RocksDB, the generated admin token). Default
    /// `./starling-data`, relative to the working directory.
    public var dataDir: String = "./starling-data"
    /// Static labels added to every series ingested through this node (enrichment), e.g.
    /// `dc=eu1`. They only fill in labels the sender did not set (a node default must not rewrite
    /// identities set on purpose); per-token labels, in contrast, replace the sender's.
    public var nodeLabels: [String: String] = [:]

    // MARK: http
    /// HTTP listen address for the API, ingest, `/metrics`, `/healthz`. Default `0.0.0.0:9470`.
    public var httpListen = HostPort(host: "0.0.0.0", port: 9470)
    /// Largest request body accepted as sent on the wire (compressed), in bytes; larger requests
    /// get 413. Default 32 MiB: remote-write batches are < 1 MiB, line-protocol batches of 10k
    /// lines ~1 MiB; the bound keeps a misbehaving client from exhausting memory.
    public var maxBodyBytes: Int = 32 << 20
    /// `http.single_event_loop`: one event loop accepts and serves every HTTP connection.
    public var httpSingleEventLoop = true

    // MARK: cluster
    /// Gossip (SWIM) listen address: UDP for the protocol and TCP for push-pull, on the same port
    /// number. Default `0.0.0.0:9471`. Port 0 picks a free port (tests), logged at start.
    public var gossipListen = HostPort(host: "0.0.0.0", port: 9471)
    /// The gossip address other members reach this node at. Nil (default): the listen address,
    /// or, when that is a wildcard, the first non-loopback IPv4 address of the host (loopback if
    /// the host has none and there is nothing to join). Port 0 means "the bound gossip port".
    /// Set it in containers whose wildcard-bound interface is not the one peers route to.
    public var gossipAdvertise: HostPort? = nil
    /// Seed peers' gossip addresses to join at start; names are resolved on every attempt (all
    /// A/AAAA records are tried, for Compose service names and Kubernetes headless services) and
    /// attempts are retried with backoff until one succeeds. Empty: start a new cluster.
    public var join: [HostPort] = []
    /// Cluster name; nodes drop gossip from another cluster, so two clusters whose seed lists
    /// overlap never merge. Default `starling`.
    public var clusterID: String = "starling"
    /// Gossip encryption keys (base64 of 16, 24 or 32 bytes; AES-GCM). The first is used to seal,
    /// all are tried to open, which is what lets keys rotate without downtime. Empty (default):
    /// plaintext gossip, for trusted networks only.
    public var clusterKeys: [String] = []
    /// A file with more keys, one base64 key per line (`#` comments); read at start and appended
    /// after `clusterKeys`. Nil: none. Lets the keyring live outside the config and environment.
    public var clusterKeysFile: String? = nil
    /// Membership timing profile: `lan` (default; 1 s probes, 500 ms probe timeout, 4 s minimum
    /// suspicion at n ≤ 10) or `local-test` (200 ms probes; processes on one machine only).
    public var clusterProfile: String = "lan"
    /// Peer-RPC listen address (replication, query fan-out), disseminated in the node's metadata
    /// so peers know where to connect. Default `0.0.0.0:9472`.
    public var peerListen = HostPort(host: "0.0.0.0", port: 9472)
    /// Replicas per shard, capped at the cluster size. Default 3 (survives one node down at QUORUM).
    public var replicationFactor: Int = 3
    /// Replicas of each shard that must take a write before the client is answered. Default quorum.
    public var writeConsistency: Consistency = .quorum
    /// Replicas of each shard a read asks. Default quorum (sees every write acknowledged at quorum).
    public var readConsistency: Consistency = .quorum
    /// Deadline of one replica's part of a write; then it gets a hint. Default 5 s.
    public var writeTimeout: Duration = .seconds(5)
    /// Deadline of one node's part of a read; then its shards go to other replicas. Default 10 s.
    public var readTimeout: Duration = .seconds(10)
    /// How long a member may be dead before placement drops it and re-replicates. Default 2 min.
    public var removalTimeout: Duration = .seconds(120)
    /// Pause between anti-entropy rounds (64 owned shards compared per round). Default 10 s.
    public var antiEntropyInterval: Duration = .seconds(10)
    /// Stored bytes of all pending hints; beyond it hints are refused. Default 1 GiB.
    public var hintMaxBytes: Int = 1 << 30
    /// Stored bytes of one replica's pending hints. Default 256 MiB.
    public var hintMaxBytesPerTarget: Int = 256 << 20
    /// Age at which a pending hint is dropped (loudly). Default 3 h.
    public var hintMaxAge: Duration = .seconds(3 * 3600)
    /// Samples newer than this are left out of anti-entropy digests (still in flight). Default 60 s.
    public var antiEntropySettle: Duration = .seconds(60)
    /// How long a shard stays on a node that no longer owns it before it is handed to its
    /// owners and deleted. Default 10 min.
    public var handoffGrace: Duration = .seconds(600)
    /// Longest a joining node waits for its shards' new owners before turning active anyway,
    /// and a leaving node before going anyway. Default 10 min.
    public var handoverTimeout: Duration = .seconds(600)
    /// Whether SIGTERM hands this node's shards over and leaves placement (scale-down), rather
    /// than stopping as a member that comes back (restart). Default false.
    public var leaveOnShutdown: Bool = false

    // MARK: rules
    /// Rule files (Prometheus format); a file name may hold `*` wildcards.
    public var ruleFiles: [String] = []
    /// Evaluation interval of groups that set none. Default 1 min.
    public var ruleEvaluationInterval: Duration = .seconds(60)
    public var ruleCatalogSyncInterval: Duration = .seconds(5)
    /// Labels templates see as `$externalLabels`.
    public var ruleExternalLabels: [String: String] = [:]
    /// What templates see as `$externalURL`.
    public var ruleExternalURL: String = ""

    /// Alertmanager configuration file (routes, receivers, inhibition); nil: alerts are
    /// grouped but nobody is notified.
    public var alertingConfigFile: String? = nil
    /// Recurring maintenance windows (YAML, see docs/alerting.md); nil: none.
    public var maintenanceWindowsFile: String? = nil
    /// Lifecycle timers: New → Escalated, Escalated → Critical, how long an acknowledgement
    /// lasts (nil: forever), and whether a cleared condition leaves the incident open.
    public var escalateAfter: Duration = .seconds(15 * 60)
    public var criticalAfter: Duration = .seconds(5 * 60)
    public var acknowledgementTimeout: Duration? = .seconds(3600)
    public var requireManualResolution = false

    // MARK: auth
    /// Bootstrap admin bearer token. When unset, the first start writes a random one to
    /// `auth.admin_token_file` and later starts read it from there.
    public var adminToken: String? = nil
    /// Where the generated admin token lives. Default `<data_dir>/admin-token` (mode 0600).
    public var adminTokenFile: String? = nil

    // MARK: storage
    /// How long samples are kept. Default 30d.
    public var retention: Duration = .seconds(30 * 86_400)
    /// Upper bound on series stored by this node; new series beyond it are rejected (counted in
    /// `starling_ingest_rejected_samples_total{reason="series_limit"}`). Default unlimited.
    public var maxSeries: Int? = nil
    /// Shards per data directory / cluster; fixed when the data directory is created. Default 1024.
    public var shardCount: Int = ShardLayout.defaultShardCount
    /// How often storage maintenance runs (WAL checkpoint, compaction, retention). Default 10s.
    public var maintenanceInterval: Duration = .seconds(10)
    /// `storage.query_read_ahead`: encoded chunk bytes one selection reads ahead in key order.
    public var queryReadAheadBytes: Int = 8 << 20
    /// `storage.labels_cache_entries`: label sets of series outside the head kept for queries.
    public var storedLabelsCacheEntries: Int = 100_000
    /// `storage.chunk_cache`: bytes of stored chunks of the newest block kept for queries.
    public var chunkCacheBytes: Int = 64 << 20
    /// `storage.postings_cache`: bytes of postings lists kept for queries.
    public var postingsCacheBytes: Int = 32 << 20
    /// `storage.samples_per_chunk`: samples the head puts in one chunk before cutting it.
    public var samplesPerChunk: Int = 240

    // MARK: ingest limits (per request; each rejection is counted by reason)
    /// Most labels (including `__name__` and enrichment labels) one series may have. Default 30.
    public var maxLabelsPerSeries: Int = 30
    /// Longest label name in bytes. Default 256.
    public var maxLabelNameBytes: Int = 256
    /// Longest label value in bytes. Default 4096.
    public var maxLabelValueBytes: Int = 4096
    /// Largest decompressed body (snappy/gzip) in bytes; bounds the memory a small compressed
    /// body can claim. Default 64 MiB.
    public var maxDecodedBodyBytes: Int = 64 << 20
    /// Samples older than now minus this are rejected (timestamp_too_old). Default 5 years
    /// (catches seconds sent as milliseconds); retention is what bounds storage.
    public var maxSampleAge: Duration = .seconds(5 * 365 * 86_400)
    /// Samples newer than now plus this are rejected (timestamp_too_new). Default 1h of clock skew.
    public var maxFutureSkew: Duration = .seconds(3600)

    // MARK: query (PromQL engine limits; defaults are Prometheus 2.42's)
    /// Longest a PromQL query may run before it fails with 503 `timeout`; a request's `timeout`
    /// parameter can only lower it. Default 2m (Prometheus `--query.timeout`).
    public var queryTimeout: Duration = .seconds(120)
    /// Most samples one query may hold in memory at once (points in the current range windows
    /// plus result points); beyond it the query fails with 422. Default 50,000,000 (Prometheus
    /// `--query.max-samples`), roughly 1 GB at worst: lower it on small machines.
    public var queryMaxSamples: Int = 50_000_000
    /// How far back an instant selector looks for the latest sample. Default 5m (Prometheus
    /// `--query.lookback-delta`): longer bridges scrape gaps but keeps vanished series visible
    /// longer.
    public var queryLookbackDelta: Duration = .seconds(300)
    /// Queries evaluated at once; later ones wait their turn. Default 20 (Prometheus
    /// `--query.max-concurrency`).
    public var queryMaxConcurrency: Int = 20
    /// A query whose previous evaluation (same expression; range queries also the same step
    /// count and range, to a power of two) took at most this long runs inline on the event loop
    /// of its request instead of the blocking pool (`QueryPlacement`). Default 1 ms; zero keeps
    /// every query on the pool.
    public var queryInlineBudget: Duration = .milliseconds(1)

    // MARK: log
    /// Minimum level logged: trace, debug, info, notice, warning, error, critical. Default info.
    public var logLevel: Logger.Level = .info
    /// logfmt (default) or json, one record per line on stderr.
    public var logFormat: LogFormat = .logfmt

    // MARK: shutdown
    /// How long a graceful shutdown (SIGTERM/SIGINT) may take before the process cancels what is
    /// still running. In-flight requests finish and storage is flushed within it. Default 30s.
    public var shutdownTimeout: Duration = .seconds(30)

    public init() {}

    /// The admin token file, resolved against the data directory.
    public var resolvedAdminTokenFile: String {
        adminTokenFile ?? (dataDir as NSString).appendingPathComponent("admin-token")
    }

    static func defaultNodeName() -> String {
        let h = ProcessInfo.processInfo.hostName
        let cleaned = h.split(separator: ".").first.map(String.init) ?? h
        return cleaned.isEmpty ? "starling" : cleaned
    }
}
