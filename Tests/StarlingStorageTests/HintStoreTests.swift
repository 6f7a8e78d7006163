import Foundation
import StarlingCore
import StarlingRocksDB
import StarlingTestKit
import Testing

@testable import StarlingStorage

private let nodeA = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
private let nodeB = "ffeeddccbbaa99887766554433221100"

/// A payload that identifies its hint: `tag` repeated `size` times (plus the tag's bytes).
private func payload(_ tag: UInt8, size: Int = 100) -> [UInt8] { [UInt8](repeating: tag, count: size) }

private func stored(_ outcome: HintAppendOutcome, sourceLocation: SourceLocation = #_sourceLocation) -> UInt64 {
    guard case .stored(let seq) = outcome else {
        Issue.record("expected a stored hint, got \(outcome)", sourceLocation: sourceLocation)
        return 0
    }
    return seq
}

private func settings(maxBytes: Int = 1 << 30, perTarget: Int = 256 << 20, maxAgeMs: Int64 = 3 * 3_600_000) -> HintStore.Settings {
    HintStore.Settings(maxBytes: maxBytes, maxBytesPerTarget: perTarget, maxAgeMs: maxAgeMs)
}

@Suite struct HintStoreTests {
    // MARK: - Format

    @Test func keyAndValueBytesAreTheDocumentedLayout() throws {
        #expect(Keyspace.hintKey(target: "ab", seq: 0x0102) == [0x09, 0x02, 0x61, 0x62, 0, 0, 0, 0, 0, 0, 0x01, 0x02])
        #expect(Keyspace.hintSeqKey == [0x09, 0x00])
        #expect(Keyspace.parseHintKey(Keyspace.hintKey(target: nodeA, seq: 42))! == (nodeA, 42))
        #expect(Keyspace.parseHintKey(Keyspace.hintSeqKey) == nil)
        #expect(Keyspace.parseHintKey([0x09, 0x02, 0x61]) == nil)
        // A target ID that is a prefix of another never shares its key range.
        let short = Keyspace.hintTargetPrefix("n1"), long = Keyspace.hintKey(target: "n10", seq: 1)
        #expect(!long.starts(with: short))

        let kv = MemoryKV()
        let store = try HintStore(store: kv)
        _ = stored(try store.append(target: "ab", payload: [0xAA, 0xBB], sampleCount: 3, nowMs: -2))
        // varint(-2) = zigzag 3, uvarint 3, payload.
        #expect(try kv.get(Keyspace.hintKey(target: "ab", seq: 1)) == [0x03, 0x03, 0xAA, 0xBB])
        // Stored size = key + value, the unit of every limit.
        #expect(store.stats.pendingBytes == 12 + 4)
        #expect(kv.diskUsageBytes() == 16)
    }

    // MARK: - Round trips and ordering

    @Test func appendAndReadBackInSequenceOrder() throws {
        let kv = MemoryKV()
        let store = try HintStore(store: kv)
        var expected: [String: [(UInt64, UInt8, Int64, Int)]] = [:]
        for i in 0..<20 {
            let target = i % 3 == 0 ? nodeB : nodeA
            let seq = stored(try store.append(target: target, payload: payload(UInt8(i), size: 10 + i), sampleCount: i, nowMs: t0 + Int64(i)))
            #expect(seq == UInt64(i + 1), "sequence numbers are global and gap-free")
            expected[target, default: []].append((seq, UInt8(i), t0 + Int64(i), i))
        }
        for (target, hints) in expected {
            let read = try store.next(for: target, after: 0, maxBytes: 1 << 20)
            #expect(read.map(\.seq) == hints.map(\.0))
            for (h, e) in zip(read, hints) {
                #expect(h.payload == payload(e.1, size: 10 + Int(e.1)))
                #expect(h.storedAtMs == e.2)
                #expect(h.sampleCount == e.3)
            }
            // Reading after a sequence number skips everything up to it.
            let tail = try store.next(for: target, after: hints[2].0, maxBytes: 1 << 20)
            #expect(tail.map(\.seq) == hints.dropFirst(3).map(\.0))
        }
        #expect(try store.next(for: "nobody", after: 0, maxBytes: 1 << 20).isEmpty)

        let stats = store.stats
        #expect(stats.pendingHints == 20)
        #expect(stats.pendingSamples == (0..<20).reduce(0, +))
        #expect(stats.pendingBytes == kv.diskUsageBytes())
        #expect(stats.counters.appendedHints == 20)
        #expect(stats.nextSeq == 21)
        let summaries = store.targets()
        #expect(summaries.map(\.target) == [nodeA, nodeB])
        let a = summaries[0]
        #expect(a.pendingHints == expected[nodeA]!.count)
        #expect(a.firstSeq == 2 && a.lastSeq == 20)
        #expect(a.oldestStoredAtMs == t0 + 1)
        #expect(a.pendingBytes + summaries[1].pendingBytes == stats.pendingBytes)
        #expect(stats.targets[nodeA] == a)
    }

    @Test func nextIsBoundedByBytesButReturnsAtLeastOneHint() throws {
        let store = try HintStore(store: MemoryKV())
        for i in 0..<10 { _ = stored(try store.append(target: nodeA, payload: payload(UInt8(i), size: 1000), sampleCount: 1, nowMs: t0)) }
        let one = try store.next(for: nodeA, after: 0, maxBytes: 1)
        #expect(one.map(\.seq) == [1], "a hint larger than the budget still goes, alone")
        let size = one[0].storedBytes
        #expect(size == 1 + 1 + 32 + 8 + 6 + 1 + 1000)  // 09, len, id, seq | varint t0, uvarint 1, payload
        let three = try store.next(for: nodeA, after: 0, maxBytes: 3 * size + size - 1)
        #expect(three.map(\.seq) == [1, 2, 3])
        let rest = try store.next(for: nodeA, after: 3, maxBytes: 100 * size)
        #expect(rest.map(\.seq) == Array(4...10))
        #expect(try store.next(for: nodeA, after: 10, maxBytes: 1 << 20).isEmpty)
        #expect(try store.next(for: nodeA, after: .max, maxBytes: 1 << 20).isEmpty)
    }

    // MARK: - Removal

    @Test func removeDeletesAcknowledgedHintsOnlyOfThatTarget() throws {
        let kv = MemoryKV()
        let store = try HintStore(store: kv)
        for i in 0..<12 {
            _ = stored(try store.append(target: i % 2 == 0 ? nodeA : nodeB, payload: payload(UInt8(i)), sampleCount: 2, nowMs: t0 + Int64(i)))
        }
        // nodeA holds 1, 3, 5, 7, 9, 11; remove through 6 → 1, 3, 5.
        let removed = try store.remove(target: nodeA, through: 6)
        #expect(removed.hints == 3 && removed.samples == 6)
        #expect(try store.next(for: nodeA, after: 0, maxBytes: 1 << 20).map(\.seq) == [7, 9, 11])
        #expect(try store.next(for: nodeB, after: 0, maxBytes: 1 << 20).count == 6)
        var a = store.targets().first { $0.target == nodeA }!
        #expect(a.firstSeq == 7 && a.pendingHints == 3 && a.oldestStoredAtMs == t0 + 6)
        // Already removed, or below the head: nothing happens.
        #expect(try store.remove(target: nodeA, through: 6) == HintCounts())
        #expect(try store.remove(target: "unknown", through: 100) == HintCounts())
        // Through a number between two hints.
        #expect(try store.remove(target: nodeA, through: 8).hints == 1)
        a = store.targets().first { $0.target == nodeA }!
        #expect(a.firstSeq == 9)
        // Through everything.
        #expect(try store.remove(target: nodeA, through: .max).hints == 2)
        #expect(store.targets().map(\.target) == [nodeB])
        let stats = store.stats
        #expect(stats.counters.replayedHints == 6 && stats.counters.replayedSamples == 12)
        #expect(stats.pendingHints == 6)
        // Only nodeB's hints and the high-water mark are left.
        #expect(kv.diskUsageBytes() == stats.pendingBytes + 2 + 8)
    }

    @Test func dropRemovesAWholeTarget() throws {
        let store = try HintStore(store: MemoryKV())
        for i in 0..<6 { _ = stored(try store.append(target: i < 4 ? nodeA : nodeB, payload: payload(1), sampleCount: 5, nowMs: t0)) }
        let dropped = try store.drop(target: nodeA)
        #expect(dropped.hints == 4 && dropped.samples == 20)
        #expect(try store.next(for: nodeA, after: 0, maxBytes: 1 << 20).isEmpty)
        #expect(store.targets().map(\.target) == [nodeB])
        #expect(store.stats.counters.droppedHints == 4)
        #expect(store.stats.counters.droppedSamples == 20)
        #expect(try store.drop(target: nodeA) == HintCounts())
    }

    // MARK: - Recovery

    @Test func reopenContinuesSequenceAndRecoversTotals() throws {
        let kv = MemoryKV()
        var before: HintStoreStats
        do {
            let store = try HintStore(store: kv)
            for i in 0..<30 {
                _ = stored(try store.append(target: [nodeA, nodeB, "n3"][i % 3], payload: payload(UInt8(i), size: i * 7), sampleCount: i, nowMs: t0 + Int64(i) * 1000))
            }
            try store.remove(target: nodeA, through: 10)
            before = store.stats
        }
        let reopened = try HintStore(store: kv.crash())
        let after = reopened.stats
        #expect(after.targets == before.targets)
        #expect(after.pendingHints == before.pendingHints)
        #expect(after.pendingBytes == before.pendingBytes)
        #expect(after.pendingSamples == before.pendingSamples)
        #expect(after.nextSeq == 31)
        #expect(reopened.recovery.hints == before.pendingHints)
        #expect(reopened.recovery.targets == 3)
        #expect(reopened.recovery.corruptHintsDropped == 0)
        #expect(stored(try reopened.append(target: nodeA, payload: [1], sampleCount: 1, nowMs: t0)) == 31)
    }

    @Test func sequenceNumbersAreNeverReusedEvenWhenEverythingWasDelivered() throws {
        let kv = MemoryKV()
        do {
            let store = try HintStore(store: kv)
            for _ in 0..<5 { _ = stored(try store.append(target: nodeA, payload: [1], sampleCount: 1, nowMs: t0)) }
            try store.remove(target: nodeA, through: 5)
            #expect(store.stats.pendingHints == 0)
        }
        let reopened = try HintStore(store: kv.crash())
        #expect(reopened.stats.pendingHints == 0)
        #expect(stored(try reopened.append(target: nodeB, payload: [1], sampleCount: 1, nowMs: t0)) == 6)
    }

    @Test func undecodableRecordsAreDroppedAndCountedOnOpen() throws {
        let kv = MemoryKV()
        do {
            let store = try HintStore(store: kv)
            for _ in 0..<3 { _ = stored(try store.append(target: nodeA, payload: [7], sampleCount: 1, nowMs: t0)) }
        }
        var b = KVWriteBatch()
        b.put([0x09, 0x05, 0x61], [1])  // key too short for its length
        b.put(Keyspace.hintKey(target: nodeB, seq: 9), [0x80])  // truncated varint
        b.put([0x08, 0x00], [1])  // another keyspace: untouched
        try kv.write(b, sync: false)
        let store = try HintStore(store: kv)
        #expect(store.recovery.corruptHintsDropped == 2)
        #expect(store.stats.counters.corruptHintsDropped == 2)
        #expect(store.recovery.hints == 3)
        #expect(try kv.get([0x09, 0x05, 0x61]) == nil)
        #expect(try kv.get([0x08, 0x00]) == [1])
        #expect(store.targets().map(\.target) == [nodeA])
        // The malformed key's seq (9) is not taken as a high-water mark.
        #expect(store.stats.nextSeq == 4)
    }

    // MARK: - Limits

    @Test func hintsBeyondALimitAreRefusedNamingTheLimit() throws {
        // 100-byte payloads store as 32+2+8 key + 6+1 header + 100 = 149 bytes.
        let hint = 149
        let store = try HintStore(store: MemoryKV(), settings: settings(maxBytes: 5 * hint, perTarget: 3 * hint))
        for _ in 0..<3 { _ = stored(try store.append(target: nodeA, payload: payload(1), sampleCount: 10, nowMs: t0)) }
        guard case .refused(let r) = try store.append(target: nodeA, payload: payload(1), sampleCount: 10, nowMs: t0) else {
            Issue.record("a fourth hint for nodeA must be refused")
            return
        }
        #expect(r.reason == .maxBytesPerTarget)
        #expect(r.limitBytes == 3 * hint && r.pendingBytes == 3 * hint && r.hintBytes == hint)
        #expect("\(r)".contains("max_bytes_per_target"))
        // Another target still has room until the total is reached.
        for _ in 0..<2 { _ = stored(try store.append(target: nodeB, payload: payload(2), sampleCount: 10, nowMs: t0)) }
        guard case .refused(let total) = try store.append(target: nodeB, payload: payload(2), sampleCount: 10, nowMs: t0) else {
            Issue.record("the store is full")
            return
        }
        #expect(total.reason == .maxBytes && total.pendingBytes == 5 * hint && total.limitBytes == 5 * hint)
        // A single hint larger than a target's whole budget is refused outright.
        guard case .refused(let big) = try store.append(target: "n3", payload: payload(3, size: 10 * hint), sampleCount: 1, nowMs: t0) else {
            Issue.record("an oversized hint must be refused")
            return
        }
        #expect(big.reason == .maxBytesPerTarget && big.pendingBytes == 0)

        let stats = store.stats
        #expect(stats.counters.refusedHints == [.maxBytesPerTarget: 2, .maxBytes: 1])
        #expect(stats.counters.refusedSamples == [.maxBytesPerTarget: 11, .maxBytes: 10])
        #expect(stats.pendingHints == 5 && stats.pendingBytes == 5 * hint)
        // Refusals store nothing and use no sequence number.
        #expect(stats.nextSeq == 6)
        // Delivering frees room.
        try store.remove(target: nodeA, through: 1)
        #expect(stored(try store.append(target: nodeA, payload: payload(1), sampleCount: 10, nowMs: t0)) == 6)
    }

    @Test func invalidTargetsAreRejected() throws {
        let store = try HintStore(store: MemoryKV())
        #expect(throws: HintStoreError.self) { try store.append(target: "", payload: [1], sampleCount: 1, nowMs: t0) }
        let long = String(repeating: "x", count: HintStore.maxTargetBytes + 1)
        #expect(throws: HintStoreError.self) { try store.append(target: long, payload: [1], sampleCount: 1, nowMs: t0) }
        #expect(throws: HintStoreError.self) { try store.next(for: "", after: 0, maxBytes: 1) }
        _ = stored(try store.append(target: String(repeating: "y", count: HintStore.maxTargetBytes), payload: [1], sampleCount: 1, nowMs: t0))
        #expect(store.stats.pendingHints == 1)
    }

    @Test func aFailingStoreChangesNothing() throws {
        let kv = MemoryKV()
        let store = try HintStore(store: kv)
        for _ in 0..<4 { _ = stored(try store.append(target: nodeA, payload: [1], sampleCount: 1, nowMs: t0)) }
        let before = store.stats
        kv.failWrites = true
        #expect(throws: HintStoreError.self) { try store.append(target: nodeA, payload: [1], sampleCount: 1, nowMs: t0) }
        #expect(throws: HintStoreError.self) { try store.remove(target: nodeA, through: 2) }
        #expect(throws: HintStoreError.self) { try store.drop(target: nodeA) }
        #expect(throws: HintStoreError.self) { try store.expire(nowMs: t0 + 24 * 3_600_000) }
        #expect(store.stats == before)
        kv.failWrites = false
        #expect(stored(try store.append(target: nodeA, payload: [1], sampleCount: 1, nowMs: t0)) == 5)
    }

    // MARK: - Expiry

    @Test func expiryDropsOldHintsAndReportsTheLoss() throws {
        let hour: Int64 = 3_600_000
        let store = try HintStore(store: MemoryKV(), settings: settings(maxAgeMs: 3 * hour))
        // nodeA: hints at t0, t0+1h, t0+2h, t0+3h; nodeB: two at t0; n3: one at t0+2h.
        for (i, at) in [0, 1, 2, 3].enumerated() {
            _ = stored(try store.append(target: nodeA, payload: payload(UInt8(i)), sampleCount: 10 + i, nowMs: t0 + Int64(at) * hour))
        }
        for _ in 0..<2 { _ = stored(try store.append(target: nodeB, payload: payload(9), sampleCount: 7, nowMs: t0)) }
        _ = stored(try store.append(target: "n3", payload: payload(9), sampleCount: 1, nowMs: t0 + 2 * hour))

        // Not yet 3 h old: nothing.
        var report = try store.expire(nowMs: t0 + 3 * hour - 1)
        #expect(report.isEmpty)
        #expect(report.description == "no hints expired")

        // At t0 + 4h: nodeA's first two (t0, t0+1h) and nodeB's both.
        report = try store.expire(nowMs: t0 + 4 * hour)
        #expect(report.hints == 4)
        #expect(report.samples == 10 + 11 + 14)
        #expect(report.targets[nodeA]?.hints == 2)
        #expect(report.targets[nodeA]?.samples == 21)
        #expect(report.targets[nodeA]?.oldestStoredAtMs == t0)
        #expect(report.targets[nodeB]?.hints == 2)
        #expect(report.targets["n3"] == nil)
        #expect(report.description.contains("missing on their replicas"))
        #expect(report.description.contains(nodeA))

        #expect(try store.next(for: nodeA, after: 0, maxBytes: 1 << 20).map(\.seq) == [3, 4])
        #expect(store.targets().map(\.target).sorted() == [nodeA, "n3"].sorted())
        let a = store.targets().first { $0.target == nodeA }!
        #expect(a.firstSeq == 3 && a.oldestStoredAtMs == t0 + 2 * hour)
        let stats = store.stats
        #expect(stats.counters.expiredHints == 4 && stats.counters.expiredSamples == 35)
        #expect(stats.pendingHints == 3)

        // Everything, much later.
        report = try store.expire(nowMs: t0 + 100 * hour)
        #expect(report.hints == 3)
        #expect(store.stats.pendingHints == 0 && store.stats.pendingBytes == 0)
        #expect(store.targets().isEmpty)
    }

    @Test func expiryWorksFromTheHeadWhenTheClockSteppedBack() throws {
        let store = try HintStore(store: MemoryKV(), settings: settings(maxAgeMs: 1000))
        _ = stored(try store.append(target: nodeA, payload: [1], sampleCount: 1, nowMs: t0 + 5000))
        _ = stored(try store.append(target: nodeA, payload: [2], sampleCount: 1, nowMs: t0))  // clock stepped back
        // Hint 2 is old enough but waits behind the younger hint 1.
        #expect(try store.expire(nowMs: t0 + 2000).isEmpty)
        let report = try store.expire(nowMs: t0 + 6000)
        #expect(report.hints == 2)
    }

    // MARK: - Concurrency and RocksDB

    @Test func concurrentAppendsGetUniqueGapFreeNumbers() async throws {
        let store = try HintStore(store: MemoryKV())
        let seqs = await withTaskGroup(of: [UInt64].self) { group in
            for task in 0..<8 {
                group.addTask {
                    var mine: [UInt64] = []
                    for i in 0..<50 {
                        if case .stored(let s) = try? store.append(target: "n\(task % 3)", payload: payload(UInt8(i)), sampleCount: 1, nowMs: t0) {
                            mine.append(s)
                        }
                    }
                    return mine
                }
            }
            var all: [UInt64] = []
            for await part in group { all += part }
            return all
        }
        #expect(seqs.sorted() == Array(1...400))
        #expect(store.stats.pendingHints == 400)
        for target in ["n0", "n1", "n2"] {
            let read = try store.next(for: target, after: 0, maxBytes: 1 << 30)
            #expect(read.map(\.seq) == read.map(\.seq).sorted())
        }
    }

    @Test func roundTripAndRecoveryOverRocksDB() throws {
        let path = temporaryDirectory("hints")
        defer { try? FileManager.default.removeItem(atPath: path) }
        var before: HintStoreStats
        do {
            let kv = try RocksDBStore(path: path)
            // The time-series store shares the keyspace and must ignore 0x09.
            let db = try TimeSeriesDB(store: kv, nowMs: t0)
            _ = try db.append([SeriesSamples(labels: L(["__name__": "up"]), samples: [Sample(t0, 1)])], nowMs: t0)
            let store = try HintStore(store: kv)
            for i in 0..<200 {
                _ = stored(try store.append(target: i % 2 == 0 ? nodeA : nodeB, payload: payload(UInt8(i % 256), size: 500 + i), sampleCount: i, nowMs: t0 + Int64(i)))
            }
            try store.remove(target: nodeA, through: 99)
            _ = try store.expire(nowMs: t0 + store.settings.maxAgeMs + 150)  // drops seq ≤ 151
            try db.checkpoint(nowMs: t0)
            before = store.stats
        }
        let kv = try RocksDBStore(path: path)
        let db = try TimeSeriesDB(store: kv, nowMs: t0)
        #expect(db.statistics().totalSeries == 1)
        let store = try HintStore(store: kv)
        #expect(store.stats.targets == before.targets)
        #expect(store.stats.pendingBytes == before.pendingBytes)
        #expect(store.recovery.corruptHintsDropped == 0)
        let a = try store.next(for: nodeA, after: 0, maxBytes: 1 << 30)
        #expect(a.map(\.seq) == Array(stride(from: 153, through: 199, by: 2)))
        for h in a {
            let i = Int(h.seq - 1)
            #expect(h.payload == payload(UInt8(i % 256), size: 500 + i))
            #expect(h.sampleCount == i && h.storedAtMs == t0 + Int64(i))
        }
        #expect(try store.next(for: nodeB, after: 0, maxBytes: 1 << 30).first?.seq == 152)
        #expect(stored(try store.append(target: nodeA, payload: [1], sampleCount: 1, nowMs: t0)) == 201)
    }
}

@Suite struct HintReplaySchedulerTests {
    private func settings(rate: Int = 16 << 20, burst: Int = 4 << 20, batch: Int = 1 << 20,
                          initialMs: Int64 = 1000, maxMs: Int64 = 60_000, jitter: Int = 200) -> HintReplayScheduler.Settings {
        var s = HintReplayScheduler.Settings()
        s.bytesPerSecond = rate
        s.burstBytes = burst
        s.maxBatchBytes = batch
        s.initialBackoffMs = initialMs
        s.maxBackoffMs = maxMs
        s.jitterPermille = jitter
        return s
    }

    @Test func sendsOnlyToAliveTargetsWithPendingHints() {
        var s = HintReplayScheduler(nowMs: t0)
        do { let d = s.nextBatch(nowMs: t0); #expect(d == .idle) }
        s.onHintsStored(target: nodeA, throughSeq: 3)
        do { let d = s.nextBatch(nowMs: t0); #expect(d == .idle, "not known alive") }
        s.onTargetAlive(nodeA, nowMs: t0)
        do { let d = s.nextBatch(nowMs: t0); #expect(d == .send(target: nodeA, afterSeq: 0, maxBytes: 1 << 20)) }
        #expect(s.isBusy(nodeA))
        do { let d = s.nextBatch(nowMs: t0); #expect(d == .idle, "one batch at a time") }
        s.onBatchRead(target: nodeA, through: 3, bytes: 300, nowMs: t0)
        do { let d = s.nextBatch(nowMs: t0); #expect(d == .idle) }
        do { let ok = s.onDelivered(target: nodeA, through: 3, nowMs: t0 + 5); #expect(ok) }
        #expect(!s.isBusy(nodeA))
        do { let d = s.nextBatch(nowMs: t0 + 5); #expect(d == .idle, "everything delivered") }
        s.onHintsStored(target: nodeA, throughSeq: 7)
        do { let d = s.nextBatch(nowMs: t0 + 5); #expect(d == .send(target: nodeA, afterSeq: 3, maxBytes: 1 << 20)) }
        s.onBatchRead(target: nodeA, through: 7, bytes: 10, nowMs: t0 + 5)
        s.onTargetDown(nodeA)
        do { let ok = s.onDelivered(target: nodeA, through: 7, nowMs: t0 + 6); #expect(ok, "a batch in flight finishes") }
        s.onHintsStored(target: nodeA, throughSeq: 8)
        do { let d = s.nextBatch(nowMs: t0 + 6); #expect(d == .idle, "no new batch for a down target") }
        s.onTargetAlive(nodeA, nowMs: t0 + 7)
        do { let d = s.nextBatch(nowMs: t0 + 7); #expect(d == .send(target: nodeA, afterSeq: 7, maxBytes: 1 << 20)) }
        #expect(s.stats.batchesStarted == 3 && s.stats.batchesDelivered == 2 && s.stats.bytesSent == 310)
    }

    @Test func targetsTakeTurnsWithOneBatchInFlightEach() {
        var s = HintReplayScheduler(nowMs: t0)
        for t in ["a", "b", "c"] {
            s.onTargetAlive(t, nowMs: t0)
            s.onHintsStored(target: t, throughSeq: 100)
        }
        var sent: [String] = []
        while case .send(let t, _, _) = s.nextBatch(nowMs: t0) { sent.append(t) }
        #expect(sent == ["a", "b", "c"])
        for t in sent { s.onBatchRead(target: t, through: 10, bytes: 1, nowMs: t0) }
        // b finishes first and is the only one ready.
        s.onDelivered(target: "b", through: 10, nowMs: t0)
        do { let d = s.nextBatch(nowMs: t0); #expect(d == .send(target: "b", afterSeq: 10, maxBytes: 1 << 20)) }
        s.onBatchRead(target: "b", through: 20, bytes: 1, nowMs: t0)
        for t in ["a", "b", "c"] { s.onDelivered(target: t, through: t == "b" ? 20 : 10, nowMs: t0) }
        // All ready: the turn goes on after b.
        var order: [String] = []
        for _ in 0..<6 {
            guard case .send(let t, let after, _) = s.nextBatch(nowMs: t0) else { break }
            order.append(t)
            s.onBatchRead(target: t, through: after + 1, bytes: 1, nowMs: t0)
            s.onDelivered(target: t, through: after + 1, nowMs: t0)
        }
        #expect(order == ["c", "a", "b", "c", "a", "b"])
    }

    @Test func failuresBackOffExponentiallyWithJitterUpToTheCap() {
        func run(seed: UInt64) -> [Int64] {
            var rng = SeededRandom(seed: seed)
            let clock = ManualClock(nowMs: t0)
            var s = HintReplayScheduler(settings: settings(initialMs: 1000, maxMs: 16_000, jitter: 200), nowMs: clock.nowMs)
            s.onTargetAlive(nodeA, nowMs: clock.nowMs)
            s.onHintsStored(target: nodeA, throughSeq: 5)
            var delays: [Int64] = []
            for failure in 1...10 {
                guard case .send(nodeA, 0, _) = s.nextBatch(nowMs: clock.nowMs) else {
                    Issue.record("attempt \(failure) must resend from the start")
                    return delays
                }
                s.onBatchRead(target: nodeA, through: 5, bytes: 100, nowMs: clock.nowMs)
                let delay = s.onFailed(target: nodeA, nowMs: clock.nowMs, rng: &rng)!
                delays.append(delay)
                let base = min(Int64(1000) << Int64(failure - 1), 16_000)
                #expect(delay <= base && delay >= base - base / 5, "failure \(failure): \(delay) outside [0.8, 1] × \(base)")
                #expect(s.consecutiveFailures(nodeA) == failure)
                do { let d = s.nextBatch(nowMs: clock.nowMs + delay - 1); #expect(d == .wait(untilMs: clock.nowMs + delay)) }
                clock.advance(byMs: delay)
            }
            // A delivery resets the backoff.
            guard case .send = s.nextBatch(nowMs: clock.nowMs) else {
                Issue.record("due after the last delay")
                return delays
            }
            s.onBatchRead(target: nodeA, through: 5, bytes: 100, nowMs: clock.nowMs)
            s.onDelivered(target: nodeA, through: 5, nowMs: clock.nowMs)
            #expect(s.consecutiveFailures(nodeA) == 0)
            s.onHintsStored(target: nodeA, throughSeq: 6)
            guard case .send(nodeA, 5, _) = s.nextBatch(nowMs: clock.nowMs) else {
                Issue.record("delivered target must be ready again")
                return delays
            }
            s.onBatchRead(target: nodeA, through: 6, bytes: 1, nowMs: clock.nowMs)
            delays.append(s.onFailed(target: nodeA, nowMs: clock.nowMs, rng: &rng)!)
            #expect(delays.last! <= 1000 && delays.last! >= 800)
            return delays
        }
        let a = run(seed: 7), b = run(seed: 7), c = run(seed: 8)
        #expect(a == b, "the same seed replays the same delays")
        #expect(a != c, "jitter depends on the seed")
        #expect(a.suffix(7).dropLast().allSatisfy { $0 > 16_000 - 3_200 - 1 && $0 <= 16_000 }, "capped: \(a)")
    }

    @Test func aTargetComingBackAliveIsRetriedAtOnce() {
        var rng = SeededRandom(seed: 1)
        var s = HintReplayScheduler(settings: settings(initialMs: 10_000), nowMs: t0)
        s.onTargetAlive(nodeA, nowMs: t0)
        s.onHintsStored(target: nodeA, throughSeq: 1)
        for _ in 0..<3 {
            guard case .send = s.nextBatch(nowMs: .max / 2) else { Issue.record("must send"); return }
            s.onFailed(target: nodeA, nowMs: t0, rng: &rng)
        }
        guard case .wait = s.nextBatch(nowMs: t0) else { Issue.record("backing off"); return }
        // Alive again while alive: the replica answers gossip but fails writes; keep backing off.
        s.onTargetAlive(nodeA, nowMs: t0)
        guard case .wait = s.nextBatch(nowMs: t0) else { Issue.record("still backing off"); return }
        s.onTargetDown(nodeA)
        do { let d = s.nextBatch(nowMs: t0); #expect(d == .idle) }
        s.onTargetAlive(nodeA, nowMs: t0 + 1)
        do { let d = s.nextBatch(nowMs: t0 + 1); #expect(d == .send(target: nodeA, afterSeq: 0, maxBytes: 1 << 20)) }
        #expect(s.consecutiveFailures(nodeA) == 0)
    }

    @Test func lateAndUnknownOutcomesAreIgnored() {
        var rng = SeededRandom(seed: 2)
        var s = HintReplayScheduler(nowMs: t0)
        s.onTargetAlive(nodeA, nowMs: t0)
        s.onHintsStored(target: nodeA, throughSeq: 4)
        _ = s.nextBatch(nowMs: t0)
        s.onBatchRead(target: nodeA, through: 4, bytes: 10, nowMs: t0)
        do { let ok = s.onDelivered(target: nodeA, through: 3, nowMs: t0); #expect(!ok, "not the batch in flight") }
        #expect(s.isBusy(nodeA))
        s.onFailed(target: nodeA, nowMs: t0, rng: &rng)
        do { let ok = s.onDelivered(target: nodeA, through: 4, nowMs: t0 + 1); #expect(!ok, "the failure was already reported") }
        do { let delay = s.onFailed(target: nodeA, nowMs: t0, rng: &rng); #expect(delay == nil, "nothing in flight") }
        do { let ok = s.onDelivered(target: "unknown", through: 1, nowMs: t0); #expect(!ok) }
        s.onTargetRemoved(nodeA)
        do { let d = s.nextBatch(nowMs: t0 + 10_000_000); #expect(d == .idle) }
    }

    @Test func anEmptyReadIdlesTheTargetUntilNewerHints() {
        var s = HintReplayScheduler(nowMs: t0)
        s.onTargetAlive(nodeA, nowMs: t0)
        s.onHintsStored(target: nodeA, throughSeq: 3)
        do { let d = s.nextBatch(nowMs: t0); #expect(d == .send(target: nodeA, afterSeq: 0, maxBytes: 1 << 20)) }
        s.onNothingPending(target: nodeA)  // hints 1…3 expired
        do { let d = s.nextBatch(nowMs: t0); #expect(d == .idle) }
        s.onHintsStored(target: nodeA, throughSeq: 9)
        do { let d = s.nextBatch(nowMs: t0); #expect(d == .send(target: nodeA, afterSeq: 3, maxBytes: 1 << 20)) }
        // A hint stored while the (empty) read was under way keeps the target pending.
        s.onHintsStored(target: nodeA, throughSeq: 10)
        s.onNothingPending(target: nodeA)
        do { let d = s.nextBatch(nowMs: t0); #expect(d == .send(target: nodeA, afterSeq: 9, maxBytes: 1 << 20)) }
    }

    @Test func theThrottleHoldsReplayToItsRate() {
        // 1000 B/s, 2000 B burst, batches of 1000 B (each overdraws by up to 500 B).
        let clock = ManualClock(nowMs: t0)
        var s = HintReplayScheduler(settings: settings(rate: 1000, burst: 2000, batch: 1000), nowMs: clock.nowMs)
        s.onTargetAlive(nodeA, nowMs: clock.nowMs)
        s.onTargetAlive(nodeB, nowMs: clock.nowMs)
        s.onHintsStored(target: nodeA, throughSeq: 1_000_000)
        s.onHintsStored(target: nodeB, throughSeq: 1_000_000)
        var sentBytes = 0
        var through: [String: UInt64] = [:]
        var waits = 0
        while clock.nowMs < t0 + 60_000 {
            switch s.nextBatch(nowMs: clock.nowMs) {
            case .send(let target, let after, _):
                let bytes = 1500
                through[target] = after + 1
                s.onBatchRead(target: target, through: after + 1, bytes: bytes, nowMs: clock.nowMs)
                s.onDelivered(target: target, through: after + 1, nowMs: clock.nowMs)
                sentBytes += bytes
                // Never more than the burst plus the rate plus one overdrawing batch.
                #expect(sentBytes <= 2000 + Int(clock.nowMs - t0) + 1500)
            case .wait(let until):
                #expect(until > clock.nowMs)
                waits += 1
                clock.set(until)
            case .idle:
                Issue.record("work is pending")
                return
            }
        }
        // Over 60 s: 60 000 B of rate plus the 2 000 B burst, within one batch.
        #expect(sentBytes >= 62_000 - 1500 && sentBytes <= 62_000 + 1500, "sent \(sentBytes)")
        #expect(waits > 30 && s.stats.throttledWaits == UInt64(waits))
        #expect(abs(Int(through[nodeA]!) - Int(through[nodeB]!)) <= 1, "both targets share the rate")
    }

    @Test func aHugeHintPutsTheBucketInDebt() {
        var s = HintReplayScheduler(settings: settings(rate: 1000, burst: 1000, batch: 1000), nowMs: t0)
        s.onTargetAlive(nodeA, nowMs: t0)
        s.onHintsStored(target: nodeA, throughSeq: 2)
        guard case .send = s.nextBatch(nowMs: t0) else { Issue.record("burst available"); return }
        s.onBatchRead(target: nodeA, through: 1, bytes: 6000, nowMs: t0)  // one hint larger than a batch
        s.onDelivered(target: nodeA, through: 1, nowMs: t0)
        #expect(s.availableBytes() == -5000)
        do { let d = s.nextBatch(nowMs: t0); #expect(d == .wait(untilMs: t0 + 5001)) }
        do { let d = s.nextBatch(nowMs: t0 + 5000); #expect(d == .wait(untilMs: t0 + 5001)) }
        do { let d = s.nextBatch(nowMs: t0 + 5001); #expect(d == .send(target: nodeA, afterSeq: 1, maxBytes: 1000)) }
    }

    /// The store and the scheduler together, as the shell will drive them: a replica failing a
    /// third of the batches at random still ends up with every hint, and the store ends empty.
    @Test func replayLoopDeliversEveryHintThroughFailures() throws {
        var rng = SeededRandom(seed: 42)
        let clock = ManualClock(nowMs: t0)
        let store = try HintStore(store: MemoryKV())
        var s = HintReplayScheduler(settings: settings(rate: 100_000, burst: 20_000, batch: 5_000, initialMs: 200, maxMs: 5_000),
                                    nowMs: clock.nowMs)
        let targets = [nodeA, nodeB]
        var expected: [String: [UInt64]] = [:]
        for i in 0..<300 {
            let target = targets[i % 2]
            let seq = stored(try store.append(target: target, payload: payload(UInt8(i % 256), size: 200 + i), sampleCount: 1, nowMs: clock.nowMs))
            expected[target, default: []].append(seq)
            s.onHintsStored(target: target, throughSeq: seq)
        }
        for t in targets { s.onTargetAlive(t, nowMs: clock.nowMs) }
        var received: [String: Set<UInt64>] = [:]
        var steps = 0
        loop: while store.stats.pendingHints > 0 {
            steps += 1
            if steps > 10_000 { Issue.record("no progress"); break }
            switch s.nextBatch(nowMs: clock.nowMs) {
            case .send(let target, let after, let maxBytes):
                let batch = try store.next(for: target, after: after, maxBytes: maxBytes)
                guard let last = batch.last else {
                    s.onNothingPending(target: target)
                    continue
                }
                #expect(batch.first!.seq > after && batch.map(\.seq) == batch.map(\.seq).sorted())
                s.onBatchRead(target: target, through: last.seq, bytes: batch.reduce(0) { $0 + $1.storedBytes }, nowMs: clock.nowMs)
                if rng.next() % 3 == 0 {
                    // The replica took only part of the batch before the connection dropped.
                    for h in batch.prefix(batch.count / 2) { received[target, default: []].insert(h.seq) }
                    s.onFailed(target: target, nowMs: clock.nowMs, rng: &rng)
                } else {
                    for h in batch { received[target, default: []].insert(h.seq) }
                    try store.remove(target: target, through: last.seq)
                    s.onDelivered(target: target, through: last.seq, nowMs: clock.nowMs)
                }
            case .wait(let until):
                clock.set(until)
            case .idle:
                break loop
            }
        }
        for t in targets { #expect(received[t] == Set(expected[t]!)) }
        #expect(store.stats.pendingHints == 0 && store.targets().isEmpty)
        #expect(store.stats.counters.replayedHints == 300)
        do { let d = s.nextBatch(nowMs: clock.nowMs); #expect(d == .idle) }
        #expect(s.stats.batchesFailed > 0)
        // The throttle held: bytes sent ≤ burst + rate × elapsed + one batch.
        let elapsedMs = clock.nowMs - t0
        #expect(Int64(s.stats.bytesSent) <= 20_000 + 100 * elapsedMs + 5_000 + 1_000)
    }
}

/// Seeded random churn over a real `HintStore` and the scheduler, as a shell would drive them:
/// hints stored at random, targets flapping, batches failing, time passing, expiry and removal
/// of members. Checked at every step: a batch goes only to an alive target with nothing in
/// flight, starts exactly at the head of its queue (no hint skipped, none acknowledged resent),
/// and the bytes sent stay under the throttle's bound. After the churn stops, replay drains
/// every queue and every stored hint is accounted for as replayed, expired or dropped.
@Suite struct HintReplayChurnTests {
    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func randomChurnKeepsTheRules(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        let clock = ManualClock(nowMs: t0)
        let store = try HintStore(store: MemoryKV(), settings: HintStore.Settings(maxBytes: 200_000, maxBytesPerTarget: 80_000, maxAgeMs: 60_000))
        var settings = HintReplayScheduler.Settings()
        settings.bytesPerSecond = 50_000
        settings.burstBytes = 10_000
        settings.maxBatchBytes = 4_000
        settings.initialBackoffMs = 100
        settings.maxBackoffMs = 3_000
        var s = HintReplayScheduler(settings: settings, nowMs: clock.nowMs)
        let names = ["a", "b", "c", "d"]
        var alive = Set<String>()
        var inFlight: [String: [Hint]] = [:]
        var sentBytes = 0
        var largestHint = 0
        let context = "seed \(seed)"

        /// Starts every batch the scheduler wants now; returns its first other decision.
        func pump() throws -> HintReplayScheduler.Decision {
            while true {
                let decision = s.nextBatch(nowMs: clock.nowMs)
                guard case .send(let target, let after, let maxBytes) = decision else { return decision }
                #expect(alive.contains(target), "\(context): batch for down target \(target)")
                #expect(inFlight[target] == nil, "\(context): second batch in flight for \(target)")
                let head = store.targets().first { $0.target == target }?.firstSeq
                let batch = try store.next(for: target, after: after, maxBytes: maxBytes)
                guard let last = batch.last else {
                    #expect(head == nil, "\(context): empty read after \(after) but \(target) has hints from \(head ?? 0)")
                    s.onNothingPending(target: target)
                    continue
                }
                #expect(batch.first!.seq == head, "\(context): batch for \(target) starts at \(batch.first!.seq), head is \(String(describing: head))")
                let bytes = batch.reduce(0) { $0 + $1.storedBytes }
                sentBytes += bytes
                #expect(sentBytes <= settings.burstBytes + Int(clock.nowMs - t0) * settings.bytesPerSecond / 1000 + settings.maxBatchBytes + largestHint,
                        "\(context): throttle exceeded")
                s.onBatchRead(target: target, through: last.seq, bytes: bytes, nowMs: clock.nowMs)
                inFlight[target] = batch
            }
        }

        func complete(_ target: String, succeed: Bool) throws {
            guard let batch = inFlight.removeValue(forKey: target) else { return }
            if succeed {
                try store.remove(target: target, through: batch.last!.seq)
                s.onDelivered(target: target, through: batch.last!.seq, nowMs: clock.nowMs)
            } else {
                s.onFailed(target: target, nowMs: clock.nowMs, rng: &rng)
            }
        }

        for _ in 0..<3_000 {
            let target = names[Int(rng.next() % UInt64(names.count))]
            switch rng.next() % 20 {
            case 0..<6:
                let size = 50 + Int(rng.next() % 3_000)
                if case .stored(let seq) = try store.append(target: target, payload: [UInt8](repeating: 1, count: size), sampleCount: 1, nowMs: clock.nowMs) {
                    largestHint = max(largestHint, size + 30)
                    s.onHintsStored(target: target, throughSeq: seq)
                }
            case 6..<8:
                if alive.contains(target) {
                    alive.remove(target)
                    s.onTargetDown(target)
                } else {
                    alive.insert(target)
                    s.onTargetAlive(target, nowMs: clock.nowMs)
                }
            case 8..<12:
                try complete(target, succeed: rng.next() % 3 != 0)
            case 12..<15:
                clock.advance(byMs: Int64(rng.next() % 800))
            case 15:
                _ = try store.expire(nowMs: clock.nowMs)
            case 16 where rng.next() % 8 == 0:
                inFlight[target] = nil
                alive.remove(target)
                s.onTargetRemoved(target)
                try store.drop(target: target)
            default:
                _ = try pump()
            }
        }

        // Churn stops: everyone alive, every batch succeeds, replay drains everything.
        for target in Array(inFlight.keys) { try complete(target, succeed: true) }
        for target in names where !alive.contains(target) {
            alive.insert(target)
            s.onTargetAlive(target, nowMs: clock.nowMs)
        }
        for _ in 0..<100_000 {
            let decision = try pump()
            if !inFlight.isEmpty {
                for target in Array(inFlight.keys) { try complete(target, succeed: true) }
                continue
            }
            guard case .wait(let until) = decision else { break }
            clock.set(until)
        }
        let final = s.nextBatch(nowMs: clock.nowMs + 3_600_000)
        #expect(final == .idle, "\(context)")
        let stats = store.stats
        #expect(stats.pendingHints == 0, "\(context): \(stats.pendingHints) hints never replayed")
        #expect(stats.counters.appendedHints == stats.counters.replayedHints + stats.counters.expiredHints + stats.counters.droppedHints,
                "\(context): hints unaccounted for: \(stats.counters)")
        // The run exercised every path (about 800 stored, 400 replayed, 20 expired, 80 batches failed).
        #expect(stats.counters.replayedHints > 100 && stats.counters.expiredHints > 0 && stats.counters.droppedHints > 0
                    && stats.counters.refusedHints.count == 2 && s.stats.batchesFailed > 10,
                "\(context): the run exercised too little: \(stats.counters), \(s.stats)")
    }
}

/// Figures for docs/cluster.md, not assertions (run on demand):
///
///     STARLING_HINT_FIGURES=1 swift test --filter HintStoreFigures
///
/// Fills one target to `STARLING_HINT_FIGURES_MIB` (default 256) MiB of 8 KiB hints over
/// RocksDB, then times the append rate, reopening (the recovery scan) and draining by 1 MiB
/// batches with `next` + `remove`.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["STARLING_HINT_FIGURES"] == "1"))
struct HintStoreFigures {
    @Test func appendRecoverDrain() throws {
        let mib = Int(ProcessInfo.processInfo.environment["STARLING_HINT_FIGURES_MIB"] ?? "") ?? 256
        let path = temporaryDirectory("hint-figures")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let body = [UInt8](repeating: 0x5A, count: 8 << 10)
        let count = (mib << 20) / body.count
        let unbounded = settings(maxBytes: Int.max / 2, perTarget: Int.max / 2)
        let clock = ContinuousClock()
        func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
        var appendTime = Duration.zero
        do {
            let store = try HintStore(store: try RocksDBStore(path: path), settings: unbounded)
            appendTime = try clock.measure {
                for i in 0..<count { _ = try store.append(target: nodeA, payload: body, sampleCount: 600, nowMs: t0 + Int64(i)) }
            }
        }
        var reopened: HintStore?
        let kv = try RocksDBStore(path: path)
        let recoverTime = try clock.measure { reopened = try HintStore(store: kv, settings: unbounded) }
        let store = reopened!
        #expect(store.recovery.hints == count)
        var drained = 0
        let drainTime = try clock.measure {
            var after: UInt64 = 0
            while true {
                let batch = try store.next(for: nodeA, after: after, maxBytes: 1 << 20)
                guard let last = batch.last else { break }
                try store.remove(target: nodeA, through: last.seq)
                after = last.seq
                drained += batch.count
            }
        }
        #expect(drained == count)
        let mb = Double(count * body.count) / 1_048_576
        print(String(format: "hint figures: %d hints, %.0f MiB: append %.1f MiB/s (%.0f hints/s), reopen %.2f s, drain %.1f MiB/s",
                     count, mb, mb / seconds(appendTime), Double(count) / seconds(appendTime), seconds(recoverTime),
                     mb / seconds(drainTime)))
    }
}
