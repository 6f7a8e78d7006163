import StarlingCore
import StarlingPeerWire
import StarlingPlacement
import StarlingStorage
import Synchronization

/// Replica repair (docs/cluster.md, "Anti-entropy"): for shards this node owns, compare per-block
/// digests with another replica and pull the series whose samples differ. Pull only — every
/// replica runs it, so data a peer misses is pulled by that peer in its own round.
///
/// Digests cover samples up to `settleMs` ago: the last seconds are still in flight between
/// replicas (a write reaches them at slightly different times) and would always differ.
/// A pulled series goes through the normal append path, so samples already held are dropped as
/// duplicates and a repair can never lose or double anything.
public final class AntiEntropy: Sendable {
    public struct Settings: Sendable, Hashable {
        /// Shards compared per round. Default 64: a full sweep of 1,024 shards takes 16 rounds.
        public var shardsPerRound: Int
        /// Samples newer than this are not compared (still in flight). Default 60 s.
        public var settleMs: Int64
        /// Deadline of one peer request, ms. Default 30,000 (a fetch can carry a day of a shard).
        public var timeoutMs: UInt32
        /// Bytes of fetched chunks per second, at most (token bucket over a round). Default 8 MiB/s:
        /// repair after a day's outage finishes in minutes without starving ingest.
        public var maxBytesPerSecond: Int

        public init(shardsPerRound: Int = 64, settleMs: Int64 = 60_000, timeoutMs: UInt32 = 30_000, maxBytesPerSecond: Int = 8 << 20) {
            self.shardsPerRound = shardsPerRound
            self.settleMs = settleMs
            self.timeoutMs = timeoutMs
            self.maxBytesPerSecond = maxBytesPerSecond
        }
    }

    /// What one round did.
    public struct RoundReport: Sendable, Equatable {
        public var shardsCompared = 0
        public var blocksCompared = 0
        public var blocksDiffering = 0
        public var seriesPulled = 0
        public var samplesAppended = 0
        public var bytesFetched = 0
        public var peerFailures = 0

        public init() {}

        public static func + (a: RoundReport, b: RoundReport) -> RoundReport {
            var r = a
            r.shardsCompared += b.shardsCompared
            r.blocksCompared += b.blocksCompared
            r.blocksDiffering += b.blocksDiffering
            r.seriesPulled += b.seriesPulled
            r.samplesAppended += b.samplesAppended
            r.bytesFetched += b.bytesFetched
            r.peerFailures += b.peerFailures
            return r
        }
    }

    public let settings: Settings
    let topology: ClusterTopology
    let transport: any PeerTransport
    let local: LocalReplica
    let nowMs: @Sendable () -> Int64
    private let cursor = Mutex(0)
    private let totals = Mutex(RoundReport())
    /// Shards this node holds but no longer owns, with when it first noticed.
    private let unownedSince = Mutex<[ShardID: Int64]>([:])

    public init(topology: ClusterTopology, transport: any PeerTransport, local: LocalReplica, settings: Settings = Settings(),
                nowMs: @escaping @Sendable () -> Int64) {
        self.topology = topology
        self.transport = transport
        self.local = local
        self.settings = settings
        self.nowMs = nowMs
    }

    /// The placement version the next round works from.
    public var placementVersion: UInt64 { topology.current.placement.version }

    /// Everything repaired since start.
    public var total: RoundReport { totals.withLock { $0 } }

    /// The shards this node owns from now on (`P_write`), in shard order. Old owners handing a
    /// shard off (`P_read` only) do not pull: they are about to let it go.
    func ownedShards(_ snapshot: ClusterSnapshot) -> [ShardID] {
        let p = snapshot.placement
        return (0..<p.layout.shardCount).map { ShardID($0) }.filter { p.writeReplicas(of: $0).contains(snapshot.localNodeID) }
    }

    /// Compares the next `shardsPerRound` owned shards (round-robin) with one other reachable
    /// replica each, and pulls what differs.
    public func round() async -> RoundReport {
        let snapshot = topology.current
        guard !snapshot.isSingleNode else { return RoundReport() }
        let startedIn = topology.sync.generation
        let owned = ownedShards(snapshot)
        guard !owned.isEmpty else { return RoundReport() }
        let start = cursor.withLock { c -> Int in
            defer { c = (c + settings.shardsPerRound) % max(owned.count, 1) }
            return c % owned.count
        }
        let pick = (0..<min(settings.shardsPerRound, owned.count)).map { owned[(start + $0) % owned.count] }
        var outcome = SyncOutcome()
        let report = await repair(pick, snapshot: snapshot, peerChoice: start / max(settings.shardsPerRound, 1), outcome: &outcome)
        topology.sync.completed(outcome.completeShards(pick, snapshot: snapshot, sync: topology.sync), startedIn: startedIn)
        totals.withLock { $0 = $0 + report }
        return report
    }

    /// Repairs every owned shard against every other reachable replica (a node that just came
    /// back, a joining node before it announces itself active, a new owner after a placement
    /// change), and marks complete the shards it pulled from a complete source.
    public func fullSync() async -> RoundReport {
        let snapshot = topology.current
        let startedIn = topology.sync.generation
        guard !snapshot.isSingleNode else {
            // Alone, this node's copy is the only one there is.
            topology.sync.completed(ownedShards(snapshot), startedIn: startedIn)
            return RoundReport()
        }
        let owned = ownedShards(snapshot)
        var report = RoundReport()
        var outcome = SyncOutcome()
        let replicas = max(snapshot.placement.settings.replicationFactor - 1, 1)
        for i in 0..<replicas {
            for chunk in stride(from: 0, to: owned.count, by: settings.shardsPerRound) {
                let part = Array(owned[chunk..<min(chunk + settings.shardsPerRound, owned.count)])
                report = report + (await repair(part, snapshot: snapshot, peerChoice: i, outcome: &outcome))
            }
        }
        // A shard no reachable replica reports complete (a new cluster whose members all joined
        // at once: the owners of some shards are all joining) is complete only once pulled from
        // every reachable copy — the passes above ask RF-1 of them, which may be fewer than
        // there are, and would leave it incomplete for ever.
        var uncovered = owned.filter { shard in
            let others = sources(of: shard, snapshot: snapshot)
            return !others.contains { topology.sync.isComplete($0, shard) } && !Set(others).isSubset(of: outcome.synced[shard] ?? [])
        }
        var i = replicas
        while !uncovered.isEmpty, i < 2 * snapshot.placement.settings.replicationFactor + 1 {
            for chunk in stride(from: 0, to: uncovered.count, by: settings.shardsPerRound) {
                let part = Array(uncovered[chunk..<min(chunk + settings.shardsPerRound, uncovered.count)])
                report = report + (await repair(part, snapshot: snapshot, peerChoice: i, outcome: &outcome))
            }
            uncovered = uncovered.filter { !Set(sources(of: $0, snapshot: snapshot)).isSubset(of: outcome.synced[$0] ?? []) }
            i += 1
        }
        topology.sync.completed(outcome.completeShards(owned, snapshot: snapshot, sync: topology.sync), startedIn: startedIn)
        totals.withLock { $0 = $0 + report }
        return report
    }

    /// The other reachable replicas of `shard` this node pulls from: those that report the
    /// shard complete when there are any (one of them holds every acknowledged write), else
    /// every other reachable replica.
    func sources(of shard: ShardID, snapshot: ClusterSnapshot) -> [String] {
        let sync = topology.sync
        let p = snapshot.placement
        let candidates = p.readSet(of: shard, hasCompleteCopy: { sync.isComplete($0, shard) })
            + p.writeReplicas(of: shard)
        var seen = Set<String>()
        let others = candidates.filter { $0 != snapshot.localNodeID && snapshot.isReachable($0) && seen.insert($0).inserted }
        let complete = others.filter { sync.isComplete($0, shard) }
        return complete.isEmpty ? others : complete
    }

    /// For each shard, the `peerChoice`-th source (rotating which one is asked).
    func repair(_ shards: [ShardID], snapshot: ClusterSnapshot, peerChoice: Int, outcome: inout SyncOutcome) async -> RoundReport {
        var byPeer: [String: [ShardID]] = [:]
        for shard in shards {
            let others = sources(of: shard, snapshot: snapshot)
            guard !others.isEmpty else { continue }
            byPeer[others[(peerChoice + Int(shard.rawValue)) % others.count], default: []].append(shard)
        }
        var report = RoundReport()
        for (peer, list) in byPeer.sorted(by: { $0.key < $1.key }) {
            do {
                report = report + (try await repair(list, from: peer))
                for s in list { outcome.synced[s, default: []].insert(peer) }
            } catch {
                report.peerFailures += 1
            }
        }
        return report
    }

    /// Compares `shards` with `peer` block by block and pulls the series that differ.
    func repair(_ shards: [ShardID], from peer: String) async throws -> RoundReport {
        var report = RoundReport()
        let until = nowMs() - settings.settleMs
        let db = try local.database()
        let request = BlockDigestsMessage(shards: ShardSet(shards), fromBlockMs: .min, toBlockMs: until, untilMs: until)
        let remote = try await transport.call(peer, request, timeoutMs: settings.timeoutMs, expecting: BlockDigestsReplyMessage.self)
        var remoteByKey: [ShardBlock: UInt64] = [:]
        for b in remote.blocks { remoteByKey[ShardBlock(shard: b.shard, block: Keyspace.block(ofMs: b.blockStartMs))] = b.digest }
        // Blocks the peer has; a block only this node has is the peer's to pull.
        let keys = Array(remoteByKey.keys)
        let mine: [ShardBlock: UInt64] = try await local.runner.run {
            var out: [ShardBlock: UInt64] = [:]
            for key in keys {
                let d = try db.digest(of: key.shard, block: key.block, untilMs: until)
                out[key] = d.series == 0 ? nil : d.value
            }
            return out
        }
        report.shardsCompared = shards.count
        report.blocksCompared = remoteByKey.count
        for (key, theirs) in remoteByKey.sorted(by: { ($0.key.shard, $0.key.block) < ($1.key.shard, $1.key.block) }) where mine[key] != theirs {
            report.blocksDiffering += 1
            let blockStart = Keyspace.blockStartMs(key.block)
            let theirSeries = try await transport.call(
                peer, SeriesDigestsMessage(shard: key.shard, blockStartMs: blockStart, untilMs: until),
                timeoutMs: settings.timeoutMs, expecting: SeriesDigestsReplyMessage.self)
            let ours: [Labels: UInt64] = try await local.runner.run {
                var m: [Labels: UInt64] = [:]
                for d in try db.seriesDigests(of: key.shard, block: key.block, untilMs: until) { m[d.labels] = d.combined }
                return m
            }
            let wanted = theirSeries.series.filter { ours[$0.labels] != $0.digest }.map(\.labels)
            if wanted.isEmpty { continue }
            // Fetch in slices so one frame stays bounded.
            for slice in stride(from: 0, to: wanted.count, by: 512) {
                let labels = Array(wanted[slice..<min(slice + 512, wanted.count)])
                let fetch = FetchShardMessage(shard: key.shard, fromMs: blockStart, toMs: min(blockStart + Keyspace.blockDurationMs - 1, until), series: labels)
                let frames = try await transport.request(to: peer, .fetchShard, payload: fetch.encoded(), timeoutMs: settings.timeoutMs)
                var items: [SeriesChunks] = []
                var bytes = 0
                for f in frames {
                    switch f.type {
                    case .seriesFrame:
                        items += try SeriesFrameMessage.decode(f.payload).series
                        bytes += f.payload.count
                    case .streamEnd: break
                    default: _ = try decodeAnswer(f, from: peer, as: StreamEndMessage.self)
                    }
                }
                let appended = try await local.append(chunks: items, nowMs: nowMs())
                report.seriesPulled += items.count
                report.samplesAppended += appended.accepted
                report.bytesFetched += bytes
                // Throttle: spend the bytes at most at maxBytesPerSecond.
                if settings.maxBytesPerSecond > 0, bytes > 0 {
                    try await Task.sleep(for: .milliseconds(Int64(bytes) * 1_000 / Int64(settings.maxBytesPerSecond)))
                }
            }
        }
        return report
    }
}

/// Which sources each shard was synced from in one pass.
struct SyncOutcome {
    var synced: [ShardID: Set<String>] = [:]

    /// The shards of `shards` this pass made complete: synced from a source that reports the
    /// shard complete; or, when no reachable replica reports it complete (a new cluster, every
    /// copy new), synced from every reachable source; or without any other replica at all.
    func completeShards(_ shards: [ShardID], snapshot: ClusterSnapshot, sync: ShardSync) -> [ShardID] {
        shards.filter { shard in
            let p = snapshot.placement
            let others = Set(p.writeSet(of: shard) + p.writeReplicas(of: shard)).subtracting([snapshot.localNodeID])
            if others.isEmpty { return true }
            let from = synced[shard] ?? []
            let reachable = others.filter { snapshot.isReachable($0) }
            let completeOnes = reachable.filter { sync.isComplete($0, shard) }
            if !completeOnes.isEmpty { return !from.isDisjoint(with: completeOnes) }
            return !reachable.isEmpty && reachable.isSubset(of: from)
        }
    }
}

extension AntiEntropy {
    /// What `releaseUnowned` did.
    public struct ReleaseReport: Sendable, Equatable {
        /// Shards deleted from this node.
        public var released: [ShardID] = []
        /// Series handed to owners that lacked them first.
        public var seriesPushed = 0
        public var bytesPushed = 0
        /// Shards kept for now: an owner unreachable or failing.
        public var deferred = 0

        public init() {}
    }

    /// Deletes shards this node holds but no longer owns (placement moved them away, or this
    /// node is removed), once they have been unowned for `graceMs`: first every owner is
    /// brought to hold everything this copy has — per block, digests are compared and the series
    /// an owner's digest disagrees on are pushed to it (`push_chunks`, appended with duplicates
    /// dropped) — then the shard is dropped. A shard whose owner is unreachable or fails stays
    /// for the next call. So releasing a copy never loses a sample only it had.
    public func releaseUnowned(graceMs: Int64) async -> ReleaseReport {
        var out = ReleaseReport()
        let snapshot = topology.current
        guard !snapshot.isSingleNode, let db = try? local.database() else { return out }
        guard let held = try? await local.runner.run({ try db.heldShards() }) else { return out }
        let p = snapshot.placement
        let now = nowMs()
        let unowned = held.filter { !p.writeSet(of: $0).contains(snapshot.localNodeID) }
        let due: [ShardID] = unownedSince.withLock { since in
            for shard in since.keys where !unowned.contains(shard) { since[shard] = nil }
            for shard in unowned where since[shard] == nil { since[shard] = now }
            return unowned.filter { now - since[$0]! >= graceMs }.sorted()
        }
        for shard in due {
            let owners = p.writeReplicas(of: shard).filter { $0 != snapshot.localNodeID }
            guard !owners.isEmpty, owners.allSatisfy({ snapshot.isReachable($0) }) else {
                out.deferred += 1
                continue
            }
            do {
                for owner in owners {
                    let (series, bytes) = try await handOver(shard, to: owner, db: db)
                    out.seriesPushed += series
                    out.bytesPushed += bytes
                }
                _ = try await local.runner.run { try db.dropShard(shard, nowMs: now) }
                unownedSince.withLock { $0[shard] = nil }
                out.released.append(shard)
            } catch {
                out.deferred += 1
            }
        }
        return out
    }

    /// Makes `owner` hold every sample of `shard` this node has: pushes the series whose
    /// per-block digest differs. Returns series and bytes pushed.
    func handOver(_ shard: ShardID, to owner: String, db: TimeSeriesDB) async throws -> (Int, Int) {
        let mine: [Int32: UInt64] = try await local.runner.run {
            var out: [Int32: UInt64] = [:]
            for block in try db.blocks(of: shard) {
                let d = try db.digest(of: shard, block: block, untilMs: .max)
                if d.series > 0 { out[block] = d.value }
            }
            return out
        }
        guard !mine.isEmpty else { return (0, 0) }
        let theirs = try await transport.call(
            owner, BlockDigestsMessage(shards: ShardSet([shard]), fromBlockMs: .min, toBlockMs: .max, untilMs: .max),
            timeoutMs: settings.timeoutMs, expecting: BlockDigestsReplyMessage.self)
        var remote: [Int32: UInt64] = [:]
        for b in theirs.blocks { remote[Keyspace.block(ofMs: b.blockStartMs)] = b.digest }
        var pushedSeries = 0
        var pushedBytes = 0
        for (block, digest) in mine.sorted(by: { $0.key < $1.key }) where remote[block] != digest {
            let blockStart = Keyspace.blockStartMs(block)
            let theirSeries = try await transport.call(
                owner, SeriesDigestsMessage(shard: shard, blockStartMs: blockStart, untilMs: .max),
                timeoutMs: settings.timeoutMs, expecting: SeriesDigestsReplyMessage.self)
            var remoteSeries: [Labels: UInt64] = [:]
            for d in theirSeries.series { remoteSeries[d.labels] = d.digest }
            let byLabels = remoteSeries
            let differing: [Labels] = try await local.runner.run {
                try db.seriesDigests(of: shard, block: block, untilMs: .max).filter { byLabels[$0.labels] != $0.combined }.map(\.labels)
            }
            for slice in stride(from: 0, to: differing.count, by: 512) {
                let only = Set(differing[slice..<min(slice + 512, differing.count)])
                let series = try await local.runner.run { try db.series(of: shard, block: block, only: only) }
                guard !series.isEmpty else { continue }
                let message = PushChunksMessage(shard: shard, series: series)
                let ack = try await transport.call(owner, message, timeoutMs: settings.timeoutMs, expecting: WriteAckMessage.self)
                guard ack.results.contains(where: { $0.shard == shard && $0.status == .ok }) else {
                    throw PeerAnswerError(nodeID: owner, message: "push of shard \(shard) not acknowledged: \(ack.results)")
                }
                let bytes = series.reduce(0) { $0 + $1.labels.bytes.count + $1.chunks.reduce(0) { $0 + $1.bytes.count } }
                pushedSeries += series.count
                pushedBytes += bytes
                if settings.maxBytesPerSecond > 0 {
                    try await Task.sleep(for: .milliseconds(Int64(bytes) * 1_000 / Int64(settings.maxBytesPerSecond)))
                }
            }
        }
        return (pushedSeries, pushedBytes)
    }
}

struct ShardBlock: Hashable, Sendable {
    var shard: ShardID
    var block: Int32
}
