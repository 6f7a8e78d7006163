import CRocksDB
import Foundation
import StarlingStorage

/// Tuning of the RocksDB instance. Defaults suit a node of a small or medium cluster with a
/// few GiB of RAM; every field is exposed as a config key by the node.
public struct RocksDBOptions: Sendable {
    /// Fsync the write-ahead log on every write. Off by default: a write is then durable against
    /// a process crash (`kill -9`: the data is in the OS page cache) but not against power loss
    /// of the machine. On costs one fsync per ingest batch (RocksDB groups concurrent writers).
    public var syncWrites = false
    /// Block cache for data, index and filter blocks, bytes. Larger helps query latency.
    public var blockCacheBytes = 256 << 20
    /// Size of one memtable, bytes. Larger means fewer, bigger L0 files (better write
    /// throughput) at the price of memory and replay time after a crash.
    public var writeBufferBytes = 64 << 20
    /// Background flush/compaction threads. This machine class has 2 cores.
    public var backgroundJobs = 2
    /// Cap on open files (-1 = unlimited).
    public var maxOpenFiles: Int32 = 1024

    public init() {}
}

/// The only place in Starling that calls the RocksDB C API. Handles are owned by this class and
/// freed in `deinit`; every call that reports errors goes through `check`, which turns RocksDB's
/// `errptr` into a thrown `StoreError`.
public final class RocksDBStore: KeyValueStore, @unchecked Sendable {
    // @unchecked: RocksDB's DB handle is thread-safe; the option handles are immutable after init.
    private let db: OpaquePointer
    private let options: OpaquePointer
    private let tableOptions: OpaquePointer
    private let cache: OpaquePointer
    private let filter: OpaquePointer
    private let writeOptions: OpaquePointer
    private let syncWriteOptions: OpaquePointer
    private let readOptions: OpaquePointer
    public let path: String

    public init(path: String, options o: RocksDBOptions = .init()) throws(StoreError) {
        self.path = path
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw StoreError(operation: "create directory \(path)", message: "\(error)")
        }
        let opts = rocksdb_options_create()!
        rocksdb_options_set_create_if_missing(opts, 1)
        rocksdb_options_increase_parallelism(opts, Int32(max(2, o.backgroundJobs)))
        rocksdb_options_set_max_background_jobs(opts, Int32(o.backgroundJobs))
        rocksdb_options_set_write_buffer_size(opts, o.writeBufferBytes)
        rocksdb_options_set_max_open_files(opts, o.maxOpenFiles)
        rocksdb_options_set_level_compaction_dynamic_level_bytes(opts, 1)
        // LZ4 on the upper levels (cheap, fast), zstd on the bottommost level where most bytes
        // live and are rarely rewritten. Chunk payloads are already compact bit streams; keys
        // and index entries compress well.
        rocksdb_options_set_compression(opts, Int32(rocksdb_lz4_compression))
        // Except L0: flushes write mostly WAL records, which the next checkpoint deletes, and
        // chunk payloads, which LZ4 cannot shrink; compressing them cost the flush thread most of
        // its CPU. L0 files are rewritten by the next compaction anyway.
        var perLevel: [Int32] = [Int32(rocksdb_no_compression)] + [Int32](repeating: Int32(rocksdb_lz4_compression), count: 6)
        rocksdb_options_set_compression_per_level(opts, &perLevel, perLevel.count)
        rocksdb_options_set_bottommost_compression(opts, Int32(rocksdb_zstd_compression))

        let table = rocksdb_block_based_options_create()!
        // Few, large cache shards. A data block holding one big value (a WAL record of a large
        // ingest batch: ~5 MB measured for a remote-write push) cannot stay in a shard smaller
        // than itself; RocksDB's default of 64 shards gives 4 MiB each at 256 MiB. Such a block
        // sits right after the last chunk keys, so queries reading the end of the chunk keyspace
        // loaded it, LZ4-decoded it again every time, and evicted their shard's ordinary blocks
        // when inserting it. Shards of at least `minimumCacheShardBytes` keep it cached.
        let cacheOptions = rocksdb_lru_cache_options_create()!
        rocksdb_lru_cache_options_set_capacity(cacheOptions, o.blockCacheBytes)
        rocksdb_lru_cache_options_set_num_shard_bits(cacheOptions, Self.cacheShardBits(capacityBytes: o.blockCacheBytes))
        let cache = rocksdb_cache_create_lru_opts(cacheOptions)!
        rocksdb_lru_cache_options_destroy(cacheOptions)
        rocksdb_block_based_options_set_block_cache(table, cache)
        rocksdb_block_based_options_set_block_size(table, 16 << 10)
        let filter = rocksdb_filterpolicy_create_bloom_full(10)!
        rocksdb_block_based_options_set_filter_policy(table, filter)
        rocksdb_block_based_options_set_cache_index_and_filter_blocks(table, 1)
        // Index entries carry each data block's first key (`kBinarySearchWithFirstKey`; the C
        // header names only types 0–2). A seek or step that lands on a block whose first key is
        // already past the iterator's upper bound then ends without reading the block. Without
        // it, reads of the chunk keyspace that end at its last key loaded the following block —
        // often one multi-MB WAL record, larger than a block-cache shard, so decompressed again
        // on every query (measured: 34 LZ4 decodes of a 4.9 MB block per instant query).
        rocksdb_block_based_options_set_index_type(table, 3)
        rocksdb_options_set_block_based_table_factory(opts, table)

        var err: UnsafeMutablePointer<CChar>? = nil
        let handle = rocksdb_open(opts, path, &err)
        if let err {
            let message = String(cString: err)
            rocksdb_free(err)
            rocksdb_options_destroy(opts)
            rocksdb_block_based_options_destroy(table)
            rocksdb_cache_destroy(cache)
            throw StoreError(operation: "open \(path)", message: message)
        }
        guard let handle else {
            throw StoreError(operation: "open \(path)", message: "rocksdb_open returned no handle")
        }
        self.db = handle
        self.options = opts
        self.tableOptions = table
        self.cache = cache
        self.filter = filter
        self.writeOptions = rocksdb_writeoptions_create()!
        self.syncWriteOptions = rocksdb_writeoptions_create()!
        rocksdb_writeoptions_set_sync(syncWriteOptions, 1)
        if o.syncWrites { rocksdb_writeoptions_set_sync(writeOptions, 1) }
        self.readOptions = rocksdb_readoptions_create()!
    }

    deinit {
        rocksdb_close(db)
        rocksdb_writeoptions_destroy(writeOptions)
        rocksdb_writeoptions_destroy(syncWriteOptions)
        rocksdb_readoptions_destroy(readOptions)
        rocksdb_options_destroy(options)
        // The filter policy is owned by the table options once set.
        rocksdb_block_based_options_destroy(tableOptions)
        rocksdb_cache_destroy(cache)
    }

    /// Smallest block-cache shard, bytes: larger than any single data block expected in
    /// practice (a block grows to hold one value, and WAL records of big batches reach MBs).
    /// Fewer shards mean more lock sharing between reader threads, which is cheap on few cores.
    static let minimumCacheShardBytes = 32 << 20

    /// Shard bits (0…6, RocksDB's default is 6) such that each shard holds at least
    /// `minimumCacheShardBytes`.
    static func cacheShardBits(capacityBytes: Int) -> Int32 {
        var bits: Int32 = 0
        while bits < 6 && (capacityBytes >> (bits + 1)) >= minimumCacheShardBytes { bits += 1 }
        return bits
    }

    /// Runs a C call that may set `errptr`, turning the error into a thrown `StoreError`.
    @inline(__always)
    private func check<T>(_ operation: @autoclosure () -> String, _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> T) throws(StoreError) -> T {
        var err: UnsafeMutablePointer<CChar>? = nil
        let result = body(&err)
        if let err {
            let message = String(cString: err)
            rocksdb_free(err)
            throw StoreError(operation: operation(), message: message)
        }
        return result
    }

    public func get(_ key: [UInt8]) throws(StoreError) -> [UInt8]? {
        let slice = try key.withUnsafeBufferPointer { (k) throws(StoreError) -> OpaquePointer? in
            try check("get") { err in
                k.baseAddress!.withMemoryRebound(to: CChar.self, capacity: max(1, k.count)) {
                    rocksdb_get_pinned(db, readOptions, $0, k.count, err)
                }
            }
        }
        guard let slice else { return nil }
        defer { rocksdb_pinnableslice_destroy(slice) }
        var len = 0
        guard let ptr = rocksdb_pinnableslice_value(slice, &len) else { return nil }
        return Array(UnsafeRawBufferPointer(start: ptr, count: len))
    }

    public func write(_ batch: KVWriteBatch, sync: Bool) throws(StoreError) {
        let wb = rocksdb_writebatch_create()!
        defer { rocksdb_writebatch_destroy(wb) }
        for op in batch.operations {
            switch op {
            case .put(let key, let value):
                key.withUnsafeBytes { k in
                    value.withUnsafeBytes { v in
                        rocksdb_writebatch_put(wb, cchar(k), k.count, cchar(v), v.count)
                    }
                }
            case .delete(let key):
                key.withUnsafeBytes { k in rocksdb_writebatch_delete(wb, cchar(k), k.count) }
            case .deleteRange(let begin, let end):
                begin.withUnsafeBytes { b in
                    end.withUnsafeBytes { e in
                        rocksdb_writebatch_delete_range(wb, cchar(b), b.count, cchar(e), e.count)
                    }
                }
            }
        }
        try check("write") { err in rocksdb_write(db, sync ? syncWriteOptions : writeOptions, wb, err) }
    }

    public func makeIterator(lowerBound: [UInt8], upperBound: [UInt8]) throws(StoreError) -> any KVIterator {
        RocksDBIterator(db: db, lowerBound: lowerBound, upperBound: upperBound)
    }

    public func flush() throws(StoreError) {
        let fo = rocksdb_flushoptions_create()!
        defer { rocksdb_flushoptions_destroy(fo) }
        rocksdb_flushoptions_set_wait(fo, 1)
        try check("flush") { err in rocksdb_flush(db, fo, err) }
    }

    public func compactRange(begin: [UInt8]?, end: [UInt8]?) throws(StoreError) {
        func withOptional<R>(_ b: [UInt8]?, _ body: (UnsafePointer<CChar>?, Int) -> R) -> R {
            guard let b else { return body(nil, 0) }
            return b.withUnsafeBytes { body(cchar($0), $0.count) }
        }
        withOptional(begin) { bp, bl in
            withOptional(end) { ep, el in rocksdb_compact_range(db, bp, bl, ep, el) }
        }
    }

    public func diskUsageBytes() -> Int64 {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return 0 }
        var total: Int64 = 0
        for name in names where name.hasSuffix(".sst") || name.hasSuffix(".log") || name.hasPrefix("MANIFEST") {
            if let attrs = try? FileManager.default.attributesOfItem(atPath: path + "/" + name),
               let size = attrs[.size] as? NSNumber {
                total += size.int64Value
            }
        }
        return total
    }

    /// A RocksDB property such as `rocksdb.estimate-num-keys`.
    public func property(_ name: String) -> String? {
        guard let p = rocksdb_property_value(db, name) else { return nil }
        defer { rocksdb_free(p) }
        return String(cString: p)
    }
}

@inline(__always)
private func cchar(_ p: UnsafeRawBufferPointer) -> UnsafePointer<CChar>? {
    p.baseAddress?.assumingMemoryBound(to: CChar.self)
}

/// An iterator with its own read options. RocksDB does not copy bound keys, so the bounds live
/// in buffers owned by this object for as long as the iterator exists.
final class RocksDBIterator: KVIterator {
    private let iterator: OpaquePointer
    private let readOptions: OpaquePointer
    private let lower: UnsafeMutableRawBufferPointer
    private let upper: UnsafeMutableRawBufferPointer
    private let lowerKey: [UInt8]

    init(db: OpaquePointer, lowerBound: [UInt8], upperBound: [UInt8]) {
        lowerKey = lowerBound
        lower = .allocate(byteCount: max(1, lowerBound.count), alignment: 1)
        lower.copyBytes(from: lowerBound)
        upper = .allocate(byteCount: max(1, upperBound.count), alignment: 1)
        upper.copyBytes(from: upperBound)
        readOptions = rocksdb_readoptions_create()!
        rocksdb_readoptions_set_iterate_lower_bound(
            readOptions, lower.baseAddress!.assumingMemoryBound(to: CChar.self), lowerBound.count)
        if !upperBound.isEmpty {
            rocksdb_readoptions_set_iterate_upper_bound(
                readOptions, upper.baseAddress!.assumingMemoryBound(to: CChar.self), upperBound.count)
        }
        iterator = rocksdb_create_iterator(db, readOptions)!
    }

    deinit {
        rocksdb_iter_destroy(iterator)
        rocksdb_readoptions_destroy(readOptions)
        lower.deallocate()
        upper.deallocate()
    }

    func seek(_ key: [UInt8]) {
        key.withUnsafeBytes { rocksdb_iter_seek(iterator, cchar($0), $0.count) }
    }

    func seekToFirst() { seek(lowerKey) }

    func next() { rocksdb_iter_next(iterator) }

    var isValid: Bool { rocksdb_iter_valid(iterator) != 0 }

    var key: [UInt8] { withKey { Array($0) } }

    var value: [UInt8] {
        var len = 0
        let p = rocksdb_iter_value(iterator, &len)!
        return Array(UnsafeRawBufferPointer(start: p, count: len))
    }

    func withKey<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var len = 0
        let p = rocksdb_iter_key(iterator, &len)!
        return try body(UnsafeRawBufferPointer(start: p, count: len))
    }

    func checkError() throws(StoreError) {
        var err: UnsafeMutablePointer<CChar>? = nil
        rocksdb_iter_get_error(iterator, &err)
        if let err {
            let message = String(cString: err)
            rocksdb_free(err)
            throw StoreError(operation: "iterate", message: message)
        }
    }
}
