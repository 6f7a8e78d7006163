import Foundation
import StarlingCore
import StarlingRocksDB
import StarlingTestKit
import Testing

@testable import StarlingStorage

func temporaryDirectory(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "starling-\(name)-\(UInt64.random(in: 0..<UInt64.max))"
    try? FileManager.default.removeItem(atPath: path)
    return path
}

@Suite struct RocksDBStoreTests {
    @Test func keyValueBasics() throws {
        let path = temporaryDirectory("kv")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let kv = try RocksDBStore(path: path)
        var b = KVWriteBatch()
        for i in 0..<100 { b.put([0x05, UInt8(i)], [UInt8(i), 1]) }
        b.put([0x06], [9])
        try kv.write(b, sync: false)
        #expect(try kv.get([0x05, 7]) == [7, 1])
        #expect(try kv.get([0x05, 200]) == nil)
        // Bounded iteration and seek.
        let it = try kv.makeIterator(lowerBound: [0x05, 10], upperBound: [0x05, 20])
        it.seekToFirst()
        var keys: [[UInt8]] = []
        while it.isValid { keys.append(it.key); it.next() }
        #expect(keys == (10..<20).map { [0x05, UInt8($0)] })
        it.seek([0x05, 15])
        #expect(it.key == [0x05, 15])
        it.seek([0x05, 99])
        #expect(!it.isValid)
        // Range delete.
        var d = KVWriteBatch()
        d.deleteRange([0x05, 0], [0x05, 50])
        try kv.write(d, sync: true)
        #expect(try kv.get([0x05, 49]) == nil)
        #expect(try kv.get([0x05, 50]) == [50, 1])
        try kv.flush()
        #expect(kv.diskUsageBytes() > 0)
    }

    @Test func storeSurvivesReopenWithoutFlush() async throws {
        let path = temporaryDirectory("tsdb")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let labels = L(["__name__": "cpu", "host": "a"])
        var written: [Sample] = []
        do {
            let db = try TimeSeriesDB(store: try RocksDBStore(path: path), nowMs: t0)
            for i in 0..<500 {
                let s = Sample(t0 + Int64(i) * 15_000, Double(i % 17) / 4)
                _ = try db.append([SeriesSamples(labels: labels, samples: [s])], nowMs: t0)
                written.append(s)
            }
            // No flush, no checkpoint: only RocksDB's own WAL holds the last records.
        }
        let db = try TimeSeriesDB(store: try RocksDBStore(path: path), nowMs: t0)
        #expect(db.recovery.walRecords > 0)
        let got = try await read(db, [.eq("host", "a")])
        #expect(bitwiseEqual(got[labels] ?? [], written))
    }

    @Test func openingALockedDirectoryFailsClearly() throws {
        let path = temporaryDirectory("lock")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let first = try RocksDBStore(path: path)
        #expect(throws: StoreError.self) { _ = try RocksDBStore(path: path) }
        _ = first
    }
}
