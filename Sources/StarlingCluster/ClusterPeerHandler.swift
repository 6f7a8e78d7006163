import Logging
import StarlingCore
import StarlingPeerWire
import StarlingPlacement
import StarlingStorage
import Synchronization

/// Answers other nodes' peer requests against this node's store: replica writes and hint
/// deliveries, shard-restricted selects (query fan-out), label queries, pings.
public struct ClusterPeerHandler: Sendable {
    public struct Settings: Sendable, Hashable {
        /// Chunk bytes per `series_frame` of a select answer. Default 1 MiB: large enough that
        /// framing costs nothing, small enough that LZ4 and AES-GCM work on cache-sized buffers
        /// and the peer decodes the first frame early.
        public var frameBytes: Int
        public var limits: PeerWireLimits

        public init(frameBytes: Int = 1 << 20, limits: PeerWireLimits = .default) {
            self.frameBytes = frameBytes
            self.limits = limits
        }
    }

    let local: LocalReplica
    let settings: Settings
    /// Completeness reports: a `shard_state` request is recorded here and answered from it.
    let sync: ShardSync?
    /// This node's placement version, compared with every request's (`agreement`).
    let placementVersion: (@Sendable () -> UInt64)?
    let agreement: PlacementAgreement
    /// Handlers other layers register for their own request types (rules, alerts).
    public let extensions = PeerExtensions()
    let nowMs: @Sendable () -> Int64
    let logger: Logger

    public init(local: LocalReplica, settings: Settings = Settings(), sync: ShardSync? = nil,
                placementVersion: (@Sendable () -> UInt64)? = nil, agreement: PlacementAgreement = PlacementAgreement(),
                nowMs: @escaping @Sendable () -> Int64, logger: Logger) {
        self.local = local
        self.settings = settings
        self.sync = sync
        self.placementVersion = placementVersion
        self.agreement = agreement
        self.nowMs = nowMs
        self.logger = logger
    }

    public typealias Reply = (type: PeerMessageType, payload: [UInt8])

    public func handle(_ frame: PeerFrame) async -> [Reply] {
        if let placementVersion, let lastingMs = agreement.observe(remote: frame.placementVersion, local: placementVersion(), nowMs: nowMs()) {
            let meta: Logger.Metadata = [
                "peer_placement_version": .string(String(frame.placementVersion, radix: 16)),
                "placement_version": .string(String(placementVersion(), radix: 16)),
                "request": .string(frame.type.description), "seen_for_ms": .stringConvertible(lastingMs),
            ]
            // Normal for a moment while a membership change spreads; lasting, it means two
            // nodes see different members or run different placement settings.
            if lastingMs >= 30_000 {
                logger.warning("placement disagreement persists: a peer computes placement from another member list or other settings (cluster.replication_factor, storage.shard_count)", metadata: meta)
            } else {
                logger.info("peer request computed from another placement (a membership change still spreading)", metadata: meta)
            }
        }
        do {
            switch frame.type {
            case .ping:
                return [(.ping, frame.payload)]
            case .write:
                return [try await applyWrite(try WriteMessage.decode(frame.payload, limits: settings.limits))]
            case .hintDelivery:
                let hint = try HintDeliveryMessage.decode(frame.payload, limits: settings.limits)
                return [try await applyWrite(hint.write)]
            case .select:
                return try await select(try SelectMessage.decode(frame.payload, limits: settings.limits))
            case .labelQuery:
                return [try await labelQuery(try LabelQueryMessage.decode(frame.payload, limits: settings.limits))]
            case .blockDigests:
                return [try await blockDigests(try BlockDigestsMessage.decode(frame.payload, limits: settings.limits))]
            case .seriesDigests:
                return [try await seriesDigests(try SeriesDigestsMessage.decode(frame.payload, limits: settings.limits))]
            case .fetchShard:
                return try await fetchShard(try FetchShardMessage.decode(frame.payload, limits: settings.limits))
            case .pushChunks:
                return [try await applyPush(try PushChunksMessage.decode(frame.payload, limits: settings.limits))]
            case .shardState:
                guard let sync else { break }
                let report = try ShardStateMessage.decode(frame.payload, limits: settings.limits)
                if !report.nodeID.isEmpty, report.nodeID != sync.localNodeID {
                    sync.peerReported(report.nodeID, complete: report.complete, placementVersion: frame.placementVersion, nowMs: nowMs())
                }
                return [(.shardState, ShardStateMessage(nodeID: sync.localNodeID, complete: sync.localComplete).encoded())]
            default:
                if let handler = extensions.handler(for: frame.type) { return await handler(frame) }
            }
            return [Self.error(.unsupported, "\(frame.type) requests are not served by this node (peer protocol \(PeerWire.version))")]
        } catch let e as PeerWireError {
            logger.warning("malformed peer request", metadata: ["type": .string(frame.type.description), "error": .string("\(e)")])
            return [Self.error(.malformed, "\(e)")]
        } catch let e as StorageError {
            return [Self.error(.storage, "\(e)")]
        } catch is CancellationError {
            return [Self.error(.deadlineExceeded, "cancelled")]
        } catch {
            return [Self.error(.internal, "\(error)")]
        }
    }

    static func error(_ code: PeerErrorCode, _ message: String) -> Reply {
        (.error, ErrorMessage(code: code, message: message).encoded())
    }

    /// Appends every series in one store append (one WAL write); per shard, samples the store
    /// refused by a limit count as `dropped`, the rest (new or duplicate) as `appended`.
    func applyWrite(_ write: WriteMessage) async throws -> Reply {
        let series = write.shards.flatMap(\.series)
        let report = try await local.append(series, nowMs: nowMs())
        var rejectedByShard: [UInt64: Int] = [:]
        if !report.rejected.isEmpty {
            for r in report.rejected { rejectedByShard[r.labels.stableHash, default: 0] += r.samples }
        }
        let results = write.shards.map { group -> ShardWriteResult in
            var total = 0
            var dropped = 0
            for s in group.series {
                total += s.sampleCount
                if !rejectedByShard.isEmpty { dropped += rejectedByShard[s.labelsHash] ?? 0 }
            }
            return ShardWriteResult(shard: group.shard, status: .ok, appended: UInt64(total - dropped), dropped: UInt64(dropped))
        }
        return (.writeAck, WriteAckMessage(results: results).encoded())
    }

    /// Appends a former owner's chunks (duplicates dropped) and acknowledges the shard.
    func applyPush(_ m: PushChunksMessage) async throws -> Reply {
        let report = try await local.append(chunks: m.series, nowMs: nowMs())
        let result = ShardWriteResult(shard: m.shard, status: .ok, appended: UInt64(report.accepted), dropped: UInt64(report.duplicates))
        return (.writeAck, WriteAckMessage(results: [result]).encoded())
    }

    func select(_ m: SelectMessage) async throws -> [Reply] {
        let db = try local.database()
        let hints = SelectHints(startMs: m.startMs, endMs: m.endMs, shards: m.shards, limit: m.limit == 0 ? nil : Int(m.limit))
        let frameBytes = settings.frameBytes
        return try await local.runner.runAsync { () async throws -> [Reply] in
            let set = try await db.select(m.matchers, hints: hints)
            var replies: [Reply] = []
            var pending: [SeriesChunks] = []
            var bytes = 0
            while let s = try await set.next() {
                pending.append(s)
                bytes += s.labels.bytes.count + s.chunks.reduce(0) { $0 + $1.bytes.count + 16 }
                if bytes >= frameBytes {
                    replies.append((.seriesFrame, SeriesFrameMessage(series: pending).encoded()))
                    pending.removeAll(keepingCapacity: true)
                    bytes = 0
                }
            }
            if !pending.isEmpty { replies.append((.seriesFrame, SeriesFrameMessage(series: pending).encoded())) }
            replies.append((.streamEnd, StreamEndMessage(warnings: set.warnings).encoded()))
            return replies
        }
    }

    /// Digests of the blocks of each shard in the range this node holds data for.
    func blockDigests(_ m: BlockDigestsMessage) async throws -> Reply {
        let db = try local.database()
        let from = Keyspace.block(ofMs: m.fromBlockMs)
        let to = Keyspace.block(ofMs: m.toBlockMs)
        return try await local.runner.run {
            var out: [BlockDigest] = []
            for shard in m.shards {
                for block in try db.blocks(of: shard) where block >= from && block <= to {
                    let d = try db.digest(of: shard, block: block, untilMs: m.untilMs)
                    if d.series > 0 {
                        out.append(BlockDigest(shard: shard, blockStartMs: Keyspace.blockStartMs(block), digest: d.value, seriesCount: UInt64(d.series)))
                    }
                }
            }
            return (.blockDigestsReply, BlockDigestsReplyMessage(blocks: out).encoded())
        }
    }

    func seriesDigests(_ m: SeriesDigestsMessage) async throws -> Reply {
        let db = try local.database()
        let block = Keyspace.block(ofMs: m.blockStartMs)
        return try await local.runner.run {
            let digests = try db.seriesDigests(of: m.shard, block: block, untilMs: m.untilMs)
            let wire = digests.map { StarlingPeerWire.SeriesDigest(labels: $0.labels, digest: $0.combined) }
            return (.seriesDigestsReply, SeriesDigestsReplyMessage(shard: m.shard, blockStartMs: Keyspace.blockStartMs(block), series: wire).encoded())
        }
    }

    /// The shard's series (all, or those listed) with their chunks in `[from_ms, to_ms]`, block
    /// by block, in frames of about `frameBytes`.
    func fetchShard(_ m: FetchShardMessage) async throws -> [Reply] {
        let db = try local.database()
        let only = m.series.isEmpty ? nil : Set(m.series)
        let frameBytes = settings.frameBytes
        return try await local.runner.run {
            var replies: [Reply] = []
            var pending: [SeriesChunks] = []
            var bytes = 0
            for block in try db.blocks(of: m.shard) where block >= Keyspace.block(ofMs: m.fromMs) && block <= Keyspace.block(ofMs: m.toMs) {
                for s in try db.series(of: m.shard, block: block, only: only) {
                    let chunks = s.chunks.filter { $0.maxTimeMs >= m.fromMs && $0.minTimeMs <= m.toMs }
                    if chunks.isEmpty { continue }
                    pending.append(SeriesChunks(labels: s.labels, chunks: chunks))
                    bytes += s.labels.bytes.count + chunks.reduce(0) { $0 + $1.bytes.count + 16 }
                    if bytes >= frameBytes {
                        replies.append((.seriesFrame, SeriesFrameMessage(series: pending).encoded()))
                        pending.removeAll(keepingCapacity: true)
                        bytes = 0
                    }
                }
            }
            if !pending.isEmpty { replies.append((.seriesFrame, SeriesFrameMessage(series: pending).encoded())) }
            replies.append((.streamEnd, StreamEndMessage().encoded()))
            return replies
        }
    }

    func labelQuery(_ m: LabelQueryMessage) async throws -> Reply {
        let db = try local.database()
        let limit = m.limit == 0 ? nil : Int(m.limit)
        return try await local.runner.runAsync { () async throws -> Reply in
            switch m.kind {
            case .series:
                let r = try await db.series(m.matcherSets, startMs: m.startMs, endMs: m.endMs, limit: limit)
                return (.labelQueryReply, LabelQueryReplyMessage(warnings: r.warnings, series: r.value).encoded())
            case .labelNames:
                let r = try await db.labelNames(m.matcherSets, startMs: m.startMs, endMs: m.endMs, limit: limit)
                return (.labelQueryReply, LabelQueryReplyMessage(warnings: r.warnings, strings: r.value).encoded())
            case .labelValues:
                let r = try await db.labelValues(m.name, m.matcherSets, startMs: m.startMs, endMs: m.endMs, limit: limit)
                return (.labelQueryReply, LabelQueryReplyMessage(warnings: r.warnings, strings: r.value).encoded())
            }
        }
    }
}

/// Request handlers registered after the peer handler was built (it is needed before the
/// services that answer these requests exist).
public final class PeerExtensions: Sendable {
    public typealias Handler = @Sendable (PeerFrame) async -> [ClusterPeerHandler.Reply]
    private let handlers = Mutex<[PeerMessageType: Handler]>([:])

    public init() {}

    public func register(_ type: PeerMessageType, _ handler: @escaping Handler) {
        handlers.withLock { $0[type] = handler }
    }

    func handler(for type: PeerMessageType) -> Handler? { handlers.withLock { $0[type] } }
}
