import StarlingCore
import StarlingStorage
import Synchronization

/// An in-memory `KeyValueStore` for tests: a sorted map behind a lock. Iterators take a snapshot
/// of their range when created, like RocksDB's. `failWrites` makes writes throw, to test failure
/// handling; `crash()` returns a copy of what a restarted process would find.
public final class MemoryKV: KeyValueStore, Sendable {
    private struct State {
        var map: [[UInt8]: [UInt8]] = [:]
        var failWrites = false
        var writes = 0
    }
    private let state: Mutex<State>

    public init() { state = Mutex(State()) }

    private init(map: [[UInt8]: [UInt8]]) {
        var s = State()
        s.map = map
        state = Mutex(s)
    }

    /// When set, every `write` throws a `StoreError`.
    public var failWrites: Bool {
        get { state.withLock { $0.failWrites } }
        set { state.withLock { $0.failWrites = newValue } }
    }

    /// Number of successful writes.
    public var writeCount: Int { state.withLock { $0.writes } }

    /// Everything written so far, as a new store (what survives `kill -9`: every write that
    /// returned is durable).
    public func crash() -> MemoryKV { MemoryKV(map: state.withLock { $0.map }) }

    public var keyCount: Int { state.withLock { $0.map.count } }

    public func get(_ key: [UInt8]) throws(StoreError) -> [UInt8]? {
        state.withLock { $0.map[key] }
    }

    public func write(_ batch: KVWriteBatch, sync: Bool) throws(StoreError) {
        try state.withLock { (s: inout State) throws(StoreError) in
            if s.failWrites { throw StoreError(operation: "write", message: "injected failure") }
            for op in batch.operations {
                switch op {
                case .put(let k, let v): s.map[k] = v
                case .delete(let k): s.map[k] = nil
                case .deleteRange(let b, let e):
                    for k in s.map.keys where !k.lexicographicallyPrecedes(b) && k.lexicographicallyPrecedes(e) {
                        s.map[k] = nil
                    }
                }
            }
            s.writes += 1
        }
    }

    public func makeIterator(lowerBound: [UInt8], upperBound: [UInt8]) throws(StoreError) -> any KVIterator {
        let entries = state.withLock { s in
            s.map.filter { !$0.key.lexicographicallyPrecedes(lowerBound) && (upperBound.isEmpty || $0.key.lexicographicallyPrecedes(upperBound)) }
        }.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        return MemoryIterator(entries.map { ($0.key, $0.value) })
    }

    public func flush() throws(StoreError) {}
    public func compactRange(begin: [UInt8]?, end: [UInt8]?) throws(StoreError) {}
    public func diskUsageBytes() -> Int64 {
        state.withLock { s in Int64(s.map.reduce(0) { $0 + $1.key.count + $1.value.count }) }
    }
}

final class MemoryIterator: KVIterator {
    private let entries: [([UInt8], [UInt8])]
    private var position: Int

    init(_ entries: [([UInt8], [UInt8])]) {
        self.entries = entries
        position = entries.count
    }

    func seek(_ key: [UInt8]) {
        var lo = 0, hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if entries[mid].0.lexicographicallyPrecedes(key) { lo = mid + 1 } else { hi = mid }
        }
        position = lo
    }

    func seekToFirst() { position = 0 }
    func next() { position += 1 }
    var isValid: Bool { position < entries.count }
    var key: [UInt8] { entries[position].0 }
    var value: [UInt8] { entries[position].1 }
    func withKey<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try entries[position].0.withUnsafeBytes(body)
    }
    func checkError() throws(StoreError) {}
}
