import StarlingCore

/// The placement algorithm over one set of nodes (`P_read` or `P_write`). Deterministic and
/// integer-only — every node must compute the same table bit for bit, whatever its CPU — and
/// history-free: the result depends on the node set, zones, shard count, replication factor and
/// tolerance only.
///
/// 1. **Rendezvous ranking.** `score(s, m) = XXH64(u16 big-endian s ‖ UTF-8 node ID, seed 0)`.
///    Each shard takes its replicas from the top of its ranking, zone-aware: first the best
///    member of each not-yet-used zone until `min(zones, k)` zones are used, then the best
///    remaining members, never more than `zoneCap` in one zone (`zoneCap` is the smallest level
///    that can hold `k` replicas given the zone sizes, so replicas are as spread as possible).
///    Adding a member changes only the shards where it enters the top `k`.
/// 2. **Fair shares.** Rendezvous alone is binomial (±30% at 50 nodes), so the pass balances
///    each node towards its fair share: total replicas `S·k` water-filled over zones (a zone
///    holds between `S` and `S·min(zoneCap, size)` replicas when every shard must use it), then
///    evenly over a zone's members. Without zones, or with equal zones, that is `S·k / n`.
///    Band: `⌈fair·(1−tol)⌉ ... ⌊fair·(1+tol)⌋`, never narrower than `⌊fair⌋ ... ⌈fair⌉`.
/// 3. **Shedding.** Every replica held by a node above its band is a candidate, processed in
///    ascending order of its own score (ties: shard, node): while its holder is still above the
///    band, it moves to the best-ranked node of that shard that is below its band top, does not
///    hold the shard, and keeps the zone rules. A node therefore always sheds its own
///    lowest-scored replicas — a choice that depends on that node's scores only, so it repeats
///    when unrelated members come and go.
/// 4. **Pulling.** Every (shard, node) pair of a node below its band, not yet holding the shard,
///    is a candidate, processed in descending score order: while the node is below its band, it
///    takes the shard from that shard's lowest-scored holder that stays at or above its own band
///    bottom and keeps the zone rules.
/// 5. Each shard's replicas are listed in descending score order, so "first alive replica"
///    (the leader) changes only when the leader itself does.
///
/// Both passes only ever move a replica towards a node with room, so each is a single sweep.
/// A node stays outside its band only when zone rules leave no legal move (e.g. one member alone
/// in a zone that every shard must use).
struct RendezvousPlacer {
    let shardCount: Int
    let nodeCount: Int
    /// Effective replication factor: `min(requested, nodeCount)`.
    let k: Int
    let zoneOf: [Int]
    let zoneCap: Int
    let distinctZones: Int
    var scorer: RendezvousScorer
    var slots: [Int32]
    var slotScores: [UInt64]
    var load: [Int]
    var bandLow: [Int]
    var bandHigh: [Int]
    var moves = 0

    /// - Parameters:
    ///   - ids: UTF-8 node IDs in canonical (byte) order.
    ///   - zones: zone index per node (any consistent numbering).
    init(ids: [[UInt8]], zones: [Int], shardCount: Int, replicationFactor: Int, tolerancePermille: Int) {
        precondition(ids.count == zones.count)
        self.shardCount = shardCount
        nodeCount = ids.count
        k = min(replicationFactor, ids.count)
        zoneOf = zones
        let zoneTotal = (zones.max() ?? -1) + 1
        var sizes = [Int](repeating: 0, count: zoneTotal)
        for z in zones { sizes[z] += 1 }
        sizes.removeAll { $0 == 0 }  // tolerate sparse zone numbering in the size list only
        var cap = 1
        while k > 0, sizes.reduce(0, { $0 + min($1, cap) }) < k { cap += 1 }
        zoneCap = cap
        distinctZones = min(sizes.count, k)
        scorer = RendezvousScorer(ids: ids)
        slots = [Int32](repeating: -1, count: shardCount * k)
        slotScores = [UInt64](repeating: 0, count: shardCount * k)
        load = [Int](repeating: 0, count: ids.count)
        bandLow = [Int](repeating: 0, count: ids.count)
        bandHigh = [Int](repeating: 0, count: ids.count)
        guard k > 0 else { return }
        // Per-zone bands (zone indices compacted the same way as `sizes`).
        var compact = [Int](repeating: -1, count: zoneTotal)
        var next = 0
        var counts = [Int](repeating: 0, count: zoneTotal)
        for z in zones { counts[z] += 1 }
        for z in 0..<zoneTotal where counts[z] > 0 {
            compact[z] = next
            next += 1
        }
        let bands = Self.zoneBands(
            sizes: sizes, shardCount: shardCount, k: k, zoneCap: zoneCap, permille: tolerancePermille)
        for m in 0..<nodeCount {
            let b = bands[compact[zones[m]]]
            bandLow[m] = b.low
            bandHigh[m] = b.high
        }
    }

    /// Runs all steps; returns the slots (`k` node indices per shard, best score first).
    mutating func run() -> [Int32] {
        guard k > 0 else { return [] }
        rank()
        shed()
        pull()
        order()
        return slots
    }

    // MARK: Step 1: zone-aware rendezvous

    private mutating func rank() {
        var scores = [UInt64](repeating: 0, count: nodeCount)
        var taken = [Int](repeating: -1, count: nodeCount)  // shard stamp
        var zoneUse = [Int](repeating: 0, count: (zoneOf.max() ?? 0) + 1)
        for s in 0..<shardCount {
            for m in 0..<nodeCount { scores[m] = scorer.score(shard: s, node: m) }
            let base = s * k
            var picked = 0
            while picked < k {
                let needNewZone = picked < distinctZones
                var best = -1
                for m in 0..<nodeCount where taken[m] != s {
                    let use = zoneUse[zoneOf[m]]
                    if needNewZone ? use != 0 : use >= zoneCap { continue }
                    if best < 0 || scores[m] > scores[best] { best = m }  // ties: lower index wins
                }
                precondition(best >= 0, "zone cap \(zoneCap) leaves no member for shard \(s)")
                taken[best] = s
                zoneUse[zoneOf[best]] += 1
                slots[base + picked] = Int32(best)
                slotScores[base + picked] = scores[best]
                load[best] += 1
                picked += 1
            }
            for j in 0..<k { zoneUse[zoneOf[Int(slots[base + j])]] = 0 }
        }
    }

    // MARK: Steps 3 and 4: rebalancing

    private struct Candidate {
        var score: UInt64
        var shard: Int32
        var node: Int32
    }

    @inline(__always)
    private func holds(_ s: Int, _ m: Int) -> Bool {
        let base = s * k
        for j in 0..<k where slots[base + j] == Int32(m) { return true }
        return false
    }

    /// Whether replacing `from` by `to` in shard `s` keeps the zone rules: no zone above
    /// `zoneCap`, and no fewer distinct zones than before.
    private func zonesAllow(_ s: Int, from: Int, to: Int) -> Bool {
        let zf = zoneOf[from], zt = zoneOf[to]
        if zf == zt { return true }
        var cf = 0, ct = 0
        let base = s * k
        for j in 0..<k {
            let z = zoneOf[Int(slots[base + j])]
            if z == zf { cf += 1 } else if z == zt { ct += 1 }
        }
        if ct + 1 > zoneCap { return false }
        if cf == 1, ct > 0 { return false }
        return true
    }

    private mutating func move(_ s: Int, from: Int, to: Int, score: UInt64) {
        let base = s * k
        for j in 0..<k where slots[base + j] == Int32(from) {
            slots[base + j] = Int32(to)
            slotScores[base + j] = score
            load[from] -= 1
            load[to] += 1
            moves += 1
            return
        }
        preconditionFailure("node \(from) does not hold shard \(s)")
    }

    private mutating func shed() {
        var candidates: [Candidate] = []
        for s in 0..<shardCount {
            for j in 0..<k {
                let m = Int(slots[s * k + j])
                if load[m] > bandHigh[m] {
                    candidates.append(Candidate(score: slotScores[s * k + j], shard: Int32(s), node: Int32(m)))
                }
            }
        }
        guard !candidates.isEmpty else { return }
        candidates.sort { a, b in
            if a.score != b.score { return a.score < b.score }
            if a.shard != b.shard { return a.shard < b.shard }
            return a.node < b.node
        }
        for c in candidates {
            let m = Int(c.node), s = Int(c.shard)
            guard load[m] > bandHigh[m] else { continue }
            var best = -1
            var bestScore: UInt64 = 0
            for d in 0..<nodeCount where load[d] < bandHigh[d] && !holds(s, d) {
                let sc = scorer.score(shard: s, node: d)
                if best >= 0, sc <= bestScore { continue }  // ties: lower index (seen first) wins
                guard zonesAllow(s, from: m, to: d) else { continue }
                best = d
                bestScore = sc
            }
            if best >= 0 { move(s, from: m, to: best, score: bestScore) }
        }
    }

    private mutating func pull() {
        var candidates: [Candidate] = []
        for d in 0..<nodeCount where load[d] < bandLow[d] {
            for s in 0..<shardCount where !holds(s, d) {
                candidates.append(Candidate(score: scorer.score(shard: s, node: d), shard: Int32(s), node: Int32(d)))
            }
        }
        guard !candidates.isEmpty else { return }
        candidates.sort { a, b in
            if a.score != b.score { return a.score > b.score }
            if a.shard != b.shard { return a.shard < b.shard }
            return a.node < b.node
        }
        for c in candidates {
            let d = Int(c.node), s = Int(c.shard)
            guard load[d] < bandLow[d], !holds(s, d) else { continue }
            var source = -1
            var sourceScore: UInt64 = 0
            let base = s * k
            for j in 0..<k {
                let a = Int(slots[base + j])
                guard load[a] > bandLow[a] else { continue }
                let sc = slotScores[base + j]
                if source >= 0, sc > sourceScore || (sc == sourceScore && a > source) { continue }
                guard zonesAllow(s, from: a, to: d) else { continue }
                source = a
                sourceScore = sc
            }
            if source >= 0 { move(s, from: source, to: d, score: c.score) }
        }
    }

    // MARK: Step 5

    private mutating func order() {
        guard k > 1 else { return }
        for s in 0..<shardCount {
            let base = s * k
            // Insertion sort: k is small.
            for i in 1..<k {
                let node = slots[base + i], score = slotScores[base + i]
                var j = i - 1
                while j >= 0,
                    slotScores[base + j] < score || (slotScores[base + j] == score && slots[base + j] > node)
                {
                    slots[base + j + 1] = slots[base + j]
                    slotScores[base + j + 1] = slotScores[base + j]
                    j -= 1
                }
                slots[base + j + 1] = node
                slotScores[base + j + 1] = score
            }
        }
    }

    // MARK: Fair shares

    struct Band: Equatable {
        var low: Int
        var high: Int
    }

    /// The balance band of a member of each zone, computed exactly in integers.
    ///
    /// A zone's total `T_z` is water-filled: every zone gets `size_z · ℓ` for a common per-node
    /// share `ℓ`, clamped to what the zone rules allow — at most `S·min(zoneCap, size_z)` (one
    /// shard holds at most `zoneCap` replicas there) and at least `S` when every shard must use
    /// every zone (zones ≤ k), or whatever the other zones cannot hold. `ℓ` solves
    /// `Σ clamp(size_z·ℓ) = S·k`. A member's fair share is `T_z / size_z`.
    static func zoneBands(sizes: [Int], shardCount: Int, k: Int, zoneCap: Int, permille: Int) -> [Band] {
        let zones = sizes.count
        let total = shardCount * k
        let maxima = sizes.map { shardCount * min(zoneCap, $0) }
        let sumMax = maxima.reduce(0, +)
        let minima = (0..<zones).map { z in max(zones <= k ? shardCount : 0, total - (sumMax - maxima[z])) }
        // Fair share per member of each zone as a fraction (numerator, denominator).
        var share = [(num: Int, den: Int)](repeating: (0, 1), count: zones)
        if minima.reduce(0, +) >= total {
            for z in 0..<zones { share[z] = (minima[z], sizes[z]) }
        } else {
            // Breakpoints of the piecewise-linear Σ clamp(size_z·ℓ): ℓ = min_z/size_z, max_z/size_z.
            var points: [(num: Int, den: Int)] = []
            for z in 0..<zones {
                points.append((minima[z], sizes[z]))
                points.append((maxima[z], sizes[z]))
            }
            points.sort { $0.num * $1.den < $1.num * $0.den }
            func filled(_ p: (num: Int, den: Int)) -> Int {  // Σ clamp(size_z·ℓ) · den
                var sum = 0
                for z in 0..<zones {
                    sum += min(max(sizes[z] * p.num, minima[z] * p.den), maxima[z] * p.den)
                }
                return sum
            }
            var previous = (num: 0, den: 1)
            var solved = false
            for p in points {
                if filled(p) >= total * p.den {
                    // ℓ lies in (previous, p]: zones whose minimum is reached only at or after p
                    // sit at their minimum, zones whose maximum is reached by `previous` at their
                    // maximum, the others grow with ℓ.
                    var fixed = 0
                    var freeSize = 0
                    var atMin = [Bool](repeating: false, count: zones)
                    var atMax = [Bool](repeating: false, count: zones)
                    for z in 0..<zones {
                        if minima[z] * p.den >= sizes[z] * p.num {
                            atMin[z] = true
                            fixed += minima[z]
                        } else if maxima[z] * previous.den <= sizes[z] * previous.num {
                            atMax[z] = true
                            fixed += maxima[z]
                        } else {
                            freeSize += sizes[z]
                        }
                    }
                    precondition(freeSize > 0, "water-filling found no free zone: sizes \(sizes) k \(k)")
                    for z in 0..<zones {
                        if atMin[z] {
                            share[z] = (minima[z], sizes[z])
                        } else if atMax[z] {
                            share[z] = (maxima[z], sizes[z])
                        } else {
                            share[z] = (total - fixed, freeSize)
                        }
                    }
                    solved = true
                    break
                }
                previous = p
            }
            precondition(solved, "zone capacities \(maxima) cannot hold \(total) replicas")
        }
        return share.map { num, den in
            let floorFair = num / den
            let ceilFair = (num + den - 1) / den
            let high = num * (1000 + permille) / (den * 1000)
            let lowScaled = num * max(0, 1000 - permille)
            let low = (lowScaled + den * 1000 - 1) / (den * 1000)
            return Band(low: min(low, floorFair), high: max(high, ceilFair))
        }
    }
}

/// `XXH64(u16 big-endian shard ‖ UTF-8 node ID)`, without building a key per call: every node's
/// ID sits in one buffer behind a two-byte slot that is overwritten with the shard.
struct RendezvousScorer {
    private var buffer: [UInt8]
    private let starts: [Int]
    private let ends: [Int]

    init(ids: [[UInt8]]) {
        var buffer: [UInt8] = []
        var starts: [Int] = []
        var ends: [Int] = []
        for id in ids {
            starts.append(buffer.count)
            buffer.append(0)
            buffer.append(0)
            buffer.append(contentsOf: id)
            ends.append(buffer.count)
        }
        self.buffer = buffer
        self.starts = starts
        self.ends = ends
    }

    @inline(__always)
    mutating func score(shard: Int, node: Int) -> UInt64 {
        let a = starts[node], b = ends[node]
        return buffer.withUnsafeMutableBytes { raw in
            raw[a] = UInt8(truncatingIfNeeded: shard >> 8)
            raw[a + 1] = UInt8(truncatingIfNeeded: shard)
            return XXH64.hash(UnsafeRawBufferPointer(rebasing: raw[a..<b]))
        }
    }

    /// The documented score, for tests and tools: one key built per call.
    static func score(shard: ShardID, nodeID: String) -> UInt64 {
        var key: [UInt8] = [UInt8(truncatingIfNeeded: shard.rawValue >> 8), UInt8(truncatingIfNeeded: shard.rawValue)]
        key.append(contentsOf: nodeID.utf8)
        return XXH64.hash(key)
    }
}
