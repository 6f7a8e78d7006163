import StarlingCore

/// Label sets of series read from the store (`0x02` records) for queries, by series ID. Series
/// resident in the head answer from the head; the others — old data, series that stopped — cost
/// a RocksDB point lookup per series and query without this cache (a fifth of an instant
/// aggregation over 100 such series).
///
/// Two generations approximate LRU at O(1): entries go to `hot`; when it is full it becomes
/// `cold` and the old `cold` is dropped; a hit in `cold` moves back to `hot`. At most
/// 2 × `capacity` label sets are held.
///
/// An ID's label set never changes while its `0x02` record exists, but once retention or a shard
/// drop deletes the record the ID may later be given to another label set (a 48-bit collision
/// probes to the next free ID). Those paths call `invalidate()`, which also bumps `generation`:
/// a reader that looked up the store before an invalidation must not insert what it read after
/// it (`insert(_:_:ifGeneration:)`).
struct StoredLabelsCache {
    private var hot: [SeriesID: Labels] = [:]
    private var cold: [SeriesID: Labels] = [:]
    private(set) var generation: UInt64 = 0
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    var count: Int { hot.count + cold.count }

    mutating func get(_ id: SeriesID) -> Labels? {
        if let l = hot[id] { return l }
        guard let l = cold.removeValue(forKey: id) else { return nil }
        put(id, l)
        return l
    }

    /// Adds what a reader found in the store, unless the cache was invalidated since the reader
    /// took `generation`.
    mutating func insert(_ id: SeriesID, _ labels: Labels, ifGeneration g: UInt64) {
        guard capacity > 0, g == generation else { return }
        put(id, labels)
    }

    mutating func invalidate() {
        hot = [:]
        cold = [:]
        generation &+= 1
    }

    private mutating func put(_ id: SeriesID, _ labels: Labels) {
        if hot.count >= capacity {
            cold = hot
            hot = [:]
        }
        hot[id] = labels
    }
}

