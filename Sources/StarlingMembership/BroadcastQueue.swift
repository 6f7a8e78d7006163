/// The transmit-limited queue of gossip updates waiting to be piggybacked (SWIM's infection-style
/// dissemination). Each update is sent at most `limit` times (the caller passes
/// `retransmitMultiplier × ceil(log10(n + 1))`), least-transmitted first and, among equals, newest
/// first, so fresh news spreads before old news is repeated.
///
/// At most one update per subject node is live: a newer update about a node invalidates the older
/// one (lazily: stale entries carry an old generation and are dropped when met). The queue is
/// therefore bounded by the number of members, plus stale entries awaiting removal.
struct BroadcastQueue: Sendable {
    struct Entry: Sendable {
        var update: GossipUpdate
        var size: Int
        var generation: UInt64
    }

    /// `buckets[t]` holds entries transmitted `t` times, oldest first.
    private var buckets: [[Entry]] = []
    /// The live generation per subject.
    private var live: [NodeID: UInt64] = [:]
    private var nextGeneration: UInt64 = 1

    /// Live updates waiting.
    var count: Int { live.count }
    var isEmpty: Bool { live.isEmpty }

    /// Queues `update`, replacing any pending update about the same node.
    mutating func enqueue(_ update: GossipUpdate) {
        let g = nextGeneration
        nextGeneration += 1
        live[update.subject] = g
        if buckets.isEmpty { buckets.append([]) }
        buckets[0].append(Entry(update: update, size: SWIMCodec.encodedSize(update), generation: g))
    }

    /// Whether an update about `subject` is still waiting.
    func contains(subject: NodeID) -> Bool { live[subject] != nil }

    /// Picks updates whose encoded sizes fit in `budget` bytes (at most `maxCount`), counts one
    /// transmission for each and drops those that reached `limit`.
    mutating func select(budget: Int, maxCount: Int, limit: Int) -> [GossipUpdate] {
        var out: [GossipUpdate] = []
        var remaining = budget
        var promoted: [(Int, Entry)] = []
        var t = 0
        while t < buckets.count && remaining > 0 && out.count < maxCount {
            if t >= limit {
                // The limit shrank (fewer members): these were sent enough.
                for e in buckets[t] where live[e.update.subject] == e.generation { live[e.update.subject] = nil }
                buckets[t].removeAll()
                t += 1
                continue
            }
            var i = buckets[t].count - 1
            var taken: [Int] = []
            while i >= 0 && remaining > 0 && out.count < maxCount {
                let e = buckets[t][i]
                if live[e.update.subject] != e.generation {
                    taken.append(i)  // stale: drop
                } else if e.size <= remaining {
                    out.append(e.update)
                    remaining -= e.size
                    taken.append(i)
                    if t + 1 < limit {
                        promoted.append((t + 1, e))
                    } else {
                        live[e.update.subject] = nil
                    }
                }
                i -= 1
            }
            for idx in taken { buckets[t].remove(at: idx) }  // descending order
            t += 1
        }
        for (bucket, e) in promoted {
            while buckets.count <= bucket { buckets.append([]) }
            buckets[bucket].append(e)
        }
        return out
    }

    /// The updates `select` would pick, without counting a transmission: for gossip to dead
    /// members, which must not use up the retransmit budget meant for live ones.
    func peek(budget: Int, maxCount: Int) -> [GossipUpdate] {
        var out: [GossipUpdate] = []
        var remaining = budget
        for bucket in buckets {
            for e in bucket.reversed() where live[e.update.subject] == e.generation && e.size <= remaining {
                out.append(e.update)
                remaining -= e.size
                if out.count >= maxCount || remaining <= 0 { return out }
            }
        }
        return out
    }

    /// Drops everything (used after leaving).
    mutating func removeAll() {
        buckets.removeAll()
        live.removeAll()
    }
}
