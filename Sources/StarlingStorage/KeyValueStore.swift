import StarlingCore

/// The ordered key-value store the storage engine runs on. `StarlingRocksDB.RocksDBStore` is the
/// production implementation; `StarlingTestKit.MemoryKV` an in-memory one for tests. Keys sort
/// bytewise (unsigned), which the key layout (`Keyspace`) relies on.
///
/// Implementations must be safe to call from several threads at once. Every call may block on
/// disk I/O, so callers in async code run them on a thread pool.
public protocol KeyValueStore: AnyObject, Sendable {
    /// The value stored under `key`, or nil.
    func get(_ key: [UInt8]) throws(StoreError) -> [UInt8]?

    /// Applies every operation of `batch` atomically. When this returns, the batch survives a
    /// process crash (`kill -9`); with `sync` it also survives power loss.
    func write(_ batch: KVWriteBatch, sync: Bool) throws(StoreError)

    /// An iterator over keys in `[lowerBound, upperBound)`, positioned before the first key.
    /// It sees a consistent snapshot taken when it was created.
    func makeIterator(lowerBound: [UInt8], upperBound: [UInt8]) throws(StoreError) -> any KVIterator

    /// Persists in-memory write buffers to disk files (the write-ahead log already made them
    /// durable; this makes on-disk size figures meaningful and shortens recovery).
    func flush() throws(StoreError)

    /// Compacts `[begin, end)` (nil = unbounded) so deleted ranges release disk space.
    func compactRange(begin: [UInt8]?, end: [UInt8]?) throws(StoreError)

    /// Bytes this store occupies on disk (data files plus its write-ahead log).
    func diskUsageBytes() -> Int64
}

/// A forward iterator over a key range. Not thread-safe: one user at a time.
public protocol KVIterator: AnyObject {
    /// Moves to the first key ≥ `key` (within the iterator's bounds).
    func seek(_ key: [UInt8])
    /// Moves to the first key of the range.
    func seekToFirst()
    /// Moves to the next key.
    func next()
    /// Whether the iterator is positioned on a key.
    var isValid: Bool { get }
    /// The current key (valid only while `isValid`).
    var key: [UInt8] { get }
    /// The current value (valid only while `isValid`).
    var value: [UInt8] { get }
    /// Calls `body` with the current key without copying it.
    func withKey<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
    /// Throws the error that stopped iteration early, if any.
    func checkError() throws(StoreError)
}

extension KVIterator {
    /// Moves to the first key ≥ `target`, like `seek`, but by up to `steps` calls of `next` when
    /// the iterator stands just before it: reads that visit keys in order (series in ID order)
    /// then cost a step within a data block instead of a seek through every level.
    /// Returns true when it got there by steps, false when it sought.
    @discardableResult
    public func advance(to target: [UInt8], steps: Int = 8) -> Bool {
        if isValid, target.withUnsafeBytes({ t in withKey { compareBytes($0, t) < 0 } }) {
            for _ in 0..<steps {
                next()
                guard isValid else { return true }  // nothing at or after target
                if target.withUnsafeBytes({ t in withKey { compareBytes($0, t) >= 0 } }) { return true }
            }
        }
        seek(target)
        return false
    }
}

/// Operations applied atomically by `KeyValueStore.write`.
public struct KVWriteBatch: Sendable {
    public enum Operation: Sendable {
        case put(key: [UInt8], value: [UInt8])
        case delete(key: [UInt8])
        /// Deletes every key in `[begin, end)`.
        case deleteRange(begin: [UInt8], end: [UInt8])
    }

    public private(set) var operations: [Operation] = []
    /// Approximate payload size, for batching decisions.
    public private(set) var byteCount = 0

    public init() {}

    public var isEmpty: Bool { operations.isEmpty }

    public mutating func put(_ key: [UInt8], _ value: [UInt8]) {
        operations.append(.put(key: key, value: value))
        byteCount += key.count + value.count
    }

    public mutating func delete(_ key: [UInt8]) {
        operations.append(.delete(key: key))
        byteCount += key.count
    }

    public mutating func deleteRange(_ begin: [UInt8], _ end: [UInt8]) {
        operations.append(.deleteRange(begin: begin, end: end))
        byteCount += begin.count + end.count
    }

    public mutating func append(contentsOf other: KVWriteBatch) {
        operations.append(contentsOf: other.operations)
        byteCount += other.byteCount
    }
}

/// A failure of the underlying store (I/O error, corruption, out of space).
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public let operation: String
    public let message: String
    public init(operation: String, message: String) {
        self.operation = operation
        self.message = message
    }
    public var description: String { "storage \(operation) failed: \(message)" }
}

extension KeyValueStore {
    /// Visits every key-value pair with a key starting with `prefix`.
    public func scan(prefix: [UInt8], _ body: (_ key: [UInt8], _ value: [UInt8]) throws -> Bool) throws {
        let it = try makeIterator(lowerBound: prefix, upperBound: Keyspace.prefixEnd(prefix))
        it.seekToFirst()
        while it.isValid {
            if try !body(it.key, it.value) { break }
            it.next()
        }
        try it.checkError()
    }
}
