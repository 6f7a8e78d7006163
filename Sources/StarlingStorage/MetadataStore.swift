import StarlingCore

/// Small records kept beside the time series in the same store (API tokens today; cluster
/// metadata later): string keys under the `0x07` prefix, opaque values.
public final class MetadataStore: Sendable {
    private let store: any KeyValueStore

    public init(store: any KeyValueStore) { self.store = store }

    public func get(_ key: String) throws -> [UInt8]? {
        try store.get(Keyspace.metadataKey(key))
    }

    /// Writes synchronously to disk: metadata changes are rare and must survive power loss.
    public func put(_ key: String, _ value: [UInt8]) throws {
        var b = KVWriteBatch()
        b.put(Keyspace.metadataKey(key), value)
        try store.write(b, sync: true)
    }

    public func delete(_ key: String) throws {
        var b = KVWriteBatch()
        b.delete(Keyspace.metadataKey(key))
        try store.write(b, sync: true)
    }

    /// Every record whose key starts with `prefix`, in key order.
    public func scan(prefix: String) throws -> [(key: String, value: [UInt8])] {
        var out: [(key: String, value: [UInt8])] = []
        try store.scan(prefix: Keyspace.metadataKey(prefix)) { k, v in
            out.append((String(decoding: k.dropFirst(), as: UTF8.self), v))
            return true
        }
        return out
    }
}
