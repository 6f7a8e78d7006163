import StarlingCore
import StarlingTestKit
import Testing

@testable import StarlingStorage

@Suite struct ShardOperationsTests {
    static func options() -> TimeSeriesDB.Options {
        var o = TimeSeriesDB.Options()
        o.shardLayout = ShardLayout(shardCount: 4)
        o.maxSamplesPerChunk = 8
        o.maxOutOfOrderBuffer = 4
        return o
    }

    /// A deterministic workload over two days and several shards.
    static func workload(seed: UInt64) -> [SeriesSamples] {
        var rng = SeededRandom(seed: seed)
        var out: [SeriesSamples] = []
        for i in 0..<20 {
            let labels = L(["__name__": "m", "i": String(i)])
            let samples = (0..<60).map { j in Sample(t0 + Int64(j) * Millis.hour, Double(Int.random(in: 0..<100, using: &rng))) }
            out.append(SeriesSamples(labels: labels, samples: samples))
        }
        return out
    }

    @Test func blockOfAnyTimestampIsTotalAndMonotonic() {
        let day = Keyspace.blockDurationMs
        #expect(Keyspace.block(ofMs: 0) == 0)
        #expect(Keyspace.block(ofMs: day - 1) == 0)
        #expect(Keyspace.block(ofMs: day) == 1)
        #expect(Keyspace.block(ofMs: -1) == -1)
        #expect(Keyspace.block(ofMs: -day) == -1)
        #expect(Keyspace.block(ofMs: -day - 1) == -2)
        // Extremes a peer may send saturate instead of trapping or wrapping.
        #expect(Keyspace.block(ofMs: .min) == .min)
        #expect(Keyspace.block(ofMs: .max) == .max)
        var previous = Int32.min
        for t in stride(from: Int64.min, to: Int64.max - (Int64.max / 64), by: Int(Int64.max / 64)) {
            let b = Keyspace.block(ofMs: t)
            #expect(b >= previous, "\(t)")
            previous = b
        }
    }

    @Test func digestsIgnoreWriteOrderAndChunking() async throws {
        let work = Self.workload(seed: 1)
        // Replica A: everything in order, one append per series.
        let a = try TimeSeriesDB(store: MemoryKV(), options: Self.options(), nowMs: t0)
        for s in work { _ = try a.append([s], nowMs: t0) }
        // Replica B: samples one by one in shuffled order with duplicates, checkpoints and a restart.
        var kvB = MemoryKV()
        var b = try TimeSeriesDB(store: kvB, options: Self.options(), nowMs: t0)
        var flat = work.flatMap { s in s.samples.map { (s.labels, $0) } }
        var rng = SeededRandom(seed: 9)
        flat.shuffle(using: &rng)
        for (n, (l, x)) in flat.enumerated() {
            _ = try b.append([SeriesSamples(labels: l, samples: [x, x])], nowMs: t0)
            if n == flat.count / 2 {
                kvB = kvB.crash()
                b = try TimeSeriesDB(store: kvB, options: Self.options(), nowMs: t0)
            }
            if n % 97 == 0 { try b.checkpoint(nowMs: t0) }
        }
        #expect(try a.heldShards() == b.heldShards())
        for shard in try a.heldShards() {
            #expect(try a.blocks(of: shard) == b.blocks(of: shard))
            for block in try a.blocks(of: shard) {
                let da = try a.digest(of: shard, block: block)
                let db = try b.digest(of: shard, block: block)
                #expect(da == db, "shard \(shard) block \(block)")
                #expect(da.samples > 0)
            }
        }
        // One different value changes the digest of exactly its shard-block.
        let victim = work[3]
        _ = try b.append([SeriesSamples(labels: victim.labels, samples: [Sample(victim.samples[0].timestampMs, 1e9)])], nowMs: t0)
        let shard = ShardLayout(shardCount: 4).shard(for: victim.labels)
        let block = Keyspace.block(ofMs: victim.samples[0].timestampMs)
        #expect(try a.digest(of: shard, block: block) != b.digest(of: shard, block: block))
        let diff = zip(try a.seriesDigests(of: shard, block: block), try b.seriesDigests(of: shard, block: block)).filter { $0 != $1 }
        #expect(diff.map(\.0.labels) == [victim.labels])
    }

    @Test func bootstrapAReplicaFromStreamedShardBlocks() async throws {
        let source = try TimeSeriesDB(store: MemoryKV(), options: Self.options(), nowMs: t0)
        for s in Self.workload(seed: 2) { _ = try source.append([s], nowMs: t0) }
        let target = try TimeSeriesDB(store: MemoryKV(), options: Self.options(), nowMs: t0)
        for shard in try source.heldShards() {
            for block in try source.blocks(of: shard) {
                _ = try target.append(chunks: try source.series(of: shard, block: block), nowMs: t0)
            }
        }
        for shard in try source.heldShards() {
            for block in try source.blocks(of: shard) {
                #expect(try source.digest(of: shard, block: block) == target.digest(of: shard, block: block))
            }
        }
        // Streaming a subset of series.
        let one = Self.workload(seed: 2)[0].labels
        let shard = ShardLayout(shardCount: 4).shard(for: one)
        let block = try source.blocks(of: shard)[0]
        #expect(try source.series(of: shard, block: block, only: [one]).map(\.labels) == [one])
    }

    @Test func dropShardRemovesOnlyThatShard() async throws {
        let kv = MemoryKV()
        let db = try TimeSeriesDB(store: kv, options: Self.options(), nowMs: t0)
        let work = Self.workload(seed: 3)
        for s in work { _ = try db.append([s], nowMs: t0) }
        let held = try db.heldShards()
        #expect(held.count > 1)
        let victim = held.min()!
        let layout = ShardLayout(shardCount: 4)
        let inVictim = work.filter { layout.shard(for: $0.labels) == victim }.count
        #expect(try db.dropShard(victim, nowMs: t0) == inVictim)
        #expect(try db.heldShards() == held.subtracting([victim]))
        let left = try await read(db, [.eq("__name__", "m")], t0 - 1, t0 + 100 * Millis.hour)
        #expect(left.count == work.count - inVictim)
        #expect(left.keys.allSatisfy { layout.shard(for: $0) != victim })
        #expect(db.statistics().totalSeries == work.count - inVictim)
        // Writes to the shard afterwards start it afresh; a restart replays cleanly.
        _ = try db.append([work.first { layout.shard(for: $0.labels) == victim }!], nowMs: t0)
        let restarted = try TimeSeriesDB(store: kv.crash(), options: Self.options(), nowMs: t0)
        #expect(restarted.recovery.corruptRecords == 0)
        #expect(restarted.statistics().totalSeries == work.count - inVictim + 1)
    }
}
