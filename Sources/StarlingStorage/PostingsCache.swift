import Synchronization

/// Postings lists (`name="value"` in one block, and a block's all-series list) that queries
/// read, kept in memory: a selector such as `m{instance="a"}` otherwise joins two lists of a
/// hundred IDs by stepping and seeking store iterators (a quarter of the CPU of a single-series
/// query), and every rule evaluation and dashboard refresh asks for the same lists again.
///
/// **Invalidation** is per block: any store write that puts a posting key of block `b` (a series
/// first seen in `b`) makes every cached list of `b` stale, and a range delete of postings
/// (retention) makes every list stale. Steady series sets leave the lists valid for the whole
/// day; heavy series churn in the current day keeps re-reading that day's lists, as without the
/// cache. A reader takes `token` before it makes its iterator and passes it with what it read; an
/// entry is used and stored only if its block has not changed since its token.
///
/// Lists longer than `maxListIDs` are not cached; a `tooLong` marker remembers that, so the
/// leapfrog join (which never reads such a list whole) is chosen without reading it again.
/// Bounded by `capacityBytes`, evicting in insertion order.
final class PostingsCache: Sendable {
    /// Name and value as bytes: `String` equality is Unicode canonical equivalence, and two
    /// label values that are equivalent but differ in bytes are different postings lists.
    struct Key: Hashable, Sendable {
        var block: Int32
        var name: [UInt8]
        var value: [UInt8]

        init(block: Int32, name: String, value: String) {
            self.block = block
            self.name = Array(name.utf8)
            self.value = Array(value.utf8)
        }
    }

    enum Cached: Equatable {
        case ids([UInt64])
        case tooLong
    }

    private struct Entry {
        var list: Cached
        var token: UInt64
        var cost: Int
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var order: [Key] = []
        var orderHead = 0
        var sequence: UInt64 = 0
        /// Sequence number of the newest change of each block's postings.
        var changed: [Int32: UInt64] = [:]
        /// Every list older than this is stale (a range delete of postings).
        var floor: UInt64 = 0
        var cost = 0
        var hits: UInt64 = 0
        var misses: UInt64 = 0

        func isCurrent(_ block: Int32, _ token: UInt64) -> Bool {
            token >= floor && token >= (changed[block] ?? 0)
        }
    }

    let capacityBytes: Int
    let maxListIDs: Int
    private let state = Mutex(State())

    static let perEntryCost = 128

    init(capacityBytes: Int, maxListIDs: Int = 8_192) {
        self.capacityBytes = capacityBytes
        self.maxListIDs = maxListIDs
    }

    var isEnabled: Bool { capacityBytes > 0 }

    /// To read before making the iterator whose list a later `insert` stores.
    var token: UInt64 { state.withLock { $0.sequence } }

    func lookup(_ key: Key) -> Cached? {
        guard isEnabled else { return nil }
        return state.withLock { s in
            guard let e = s.entries[key] else {
                s.misses &+= 1
                return nil
            }
            guard s.isCurrent(key.block, e.token) else {
                s.entries[key] = nil
                s.cost -= e.cost
                s.misses &+= 1
                return nil
            }
            s.hits &+= 1
            return e.list
        }
    }

    /// Stores what a reader read from a store snapshot made after `token`; a list longer than
    /// `maxListIDs` is stored as `tooLong`.
    func insert(_ key: Key, _ ids: [UInt64], token: UInt64) {
        insert(key, ids.count > maxListIDs ? .tooLong : .ids(ids), token: token)
    }

    func insert(_ key: Key, _ list: Cached, token: UInt64) {
        guard isEnabled else { return }
        let size: Int
        switch list {
        case .ids(let ids): size = ids.count * 8
        case .tooLong: size = 0
        }
        let cost = Self.perEntryCost + key.name.count + key.value.count + size
        guard cost <= capacityBytes / 4 else { return }
        state.withLock { s in
            guard s.isCurrent(key.block, token) else { return }
            if let old = s.entries.updateValue(Entry(list: list, token: token, cost: cost), forKey: key) {
                s.cost -= old.cost
            } else {
                s.order.append(key)
            }
            s.cost += cost
            while s.cost > capacityBytes, s.orderHead < s.order.count {
                let k = s.order[s.orderHead]
                s.orderHead += 1
                if let e = s.entries.removeValue(forKey: k) { s.cost -= e.cost }
            }
            compactOrder(&s.order, &s.orderHead, live: s.entries)
        }
    }

    /// Marks stale what `batch` (just written) changes: the blocks of the posting keys it puts
    /// or deletes, everything for a range delete that may cover posting keys.
    func invalidate(after batch: KVWriteBatch) {
        guard isEnabled else { return }
        var blocks: [Int32] = []
        var all = false
        for op in batch.operations {
            switch op {
            case .put(let key, _), .delete(let key):
                guard key.first == Keyspace.postingsPrefix else { continue }
                if key.count >= 5 {
                    let b = key.withUnsafeBytes { Keyspace.block(fromPostingKey: $0) }
                    if blocks.last != b { blocks.append(b) }
                } else {
                    all = true
                }
            case .deleteRange(let begin, let end):
                let lo = begin.first ?? 0, hi = end.first ?? UInt8.max
                if lo <= Keyspace.postingsPrefix && Keyspace.postingsPrefix <= hi { all = true }
            }
        }
        guard all || !blocks.isEmpty else { return }
        state.withLock { s in
            s.sequence &+= 1
            if all {
                s.floor = s.sequence
                s.entries.removeAll()
                s.order.removeAll()
                s.orderHead = 0
                s.cost = 0
            }
            for b in blocks { s.changed[b] = s.sequence }
        }
    }

    struct Statistics: Sendable {
        var hits: UInt64
        var misses: UInt64
        var bytes: Int
        var entries: Int
    }

    var statistics: Statistics {
        state.withLock { Statistics(hits: $0.hits, misses: $0.misses, bytes: $0.cost, entries: $0.entries.count) }
    }
}

/// Drops the slots of an insertion-order queue that no longer lead to an entry (invalidated,
/// replaced or evicted keys), once they outnumber the entries: without this, keys invalidated
/// and filled again over and over would grow the queue while the cache stays under its budget.
func compactOrder<K: Hashable, V>(_ order: inout [K], _ head: inout Int, live: [K: V]) {
    guard order.count - head > 2 * live.count + 1024 else { return }
    var seen = Set<K>()
    order = order[head...].filter { live[$0] != nil && seen.insert($0).inserted }
    head = 0
}
