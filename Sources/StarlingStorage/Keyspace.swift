import StarlingCore

/// The RocksDB key layout (documented in docs/formats/storage.md). One keyspace, partitioned by
/// a one-byte prefix. All integers are big-endian so that byte order equals numeric order;
/// signed integers (timestamps, block numbers) have their sign bit flipped for the same reason.
///
/// ```
/// 0x01 meta        01 | name                                    → value
/// 0x02 series      02 | seriesID u64                            → canonical label bytes
/// 0x03 last block  03 | seriesID u64                            → block i32 (newest indexed block)
/// 0x04 postings    04 | block i32 | name | 00 | value | 00 | seriesID u64 → ∅
///                  (name = value = "" is the all-series posting of the block)
/// 0x05 chunk       05 | shard u16 | block i32 | low48 | minT i64 | uniq u64 | kind u8
///                                                               → uvarint(maxT-minT) chunk
/// 0x06 wal         06 | seq u64                                 → WAL record
/// 0x07 metadata    07 | utf8 key                                → value (MetadataStore)
/// 0x08 dirty       08 | shard u16 | block i32 | low48           → ∅ (series-block to compact)
/// 0x09 hint        09 | uvarint len | target utf8 | seq u64     → varint stored_at_ms ‖
///                                                                 uvarint samples ‖ payload
///                  09 | 00                                      → u64 highest hint seq handed out
/// ```
///
/// Shard-first chunk keys make one shard's data contiguous, and `shard | block` contiguous
/// within it: streaming, digesting or dropping a shard per block is a range operation. Postings
/// are per block (a UTC day), so a query touches only the index of the blocks it spans and
/// retention drops a block's index with one range delete.
public enum Keyspace {
    public static let metaPrefix: UInt8 = 0x01
    public static let seriesPrefix: UInt8 = 0x02
    public static let lastBlockPrefix: UInt8 = 0x03
    public static let postingsPrefix: UInt8 = 0x04
    public static let chunkPrefix: UInt8 = 0x05
    public static let walPrefix: UInt8 = 0x06
    public static let metadataPrefix: UInt8 = 0x07
    public static let dirtyPrefix: UInt8 = 0x08
    public static let hintPrefix: UInt8 = 0x09

    /// Length of a block: one UTC day. Index, chunk keys, compaction and retention all work in
    /// whole blocks. Recorded in the meta keyspace; changing it needs a data migration.
    public static let blockDurationMs: Int64 = 86_400_000

    /// The block containing timestamp `t` (floor division, so negative timestamps work). Total
    /// over Int64 and monotonic: a time range from a peer may start at `Int64.min`, and times
    /// beyond the ±5.8 million years blocks can number saturate at the first or last block
    /// (the store refuses samples there, `timestamp_out_of_range`).
    @inlinable
    public static func block(ofMs t: Int64) -> Int32 {
        Int32(clamping: t >= 0 ? t / blockDurationMs : (t + 1) / blockDurationMs - 1)
    }

    /// First millisecond of `block`.
    @inlinable
    public static func blockStartMs(_ block: Int32) -> Int64 { Int64(block) * blockDurationMs }

    /// The smallest key greater than every key that starts with `prefix`.
    public static func prefixEnd(_ prefix: [UInt8]) -> [UInt8] {
        var end = prefix
        while let last = end.last {
            if last < 0xFF {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        return []  // the whole keyspace; iterators treat an empty upper bound as unbounded
    }

    // MARK: - Encoding helpers

    @inlinable
    static func appendBlock(_ b: inout [UInt8], _ block: Int32) {
        b.appendBigEndian(UInt32(bitPattern: block) ^ 0x8000_0000)
    }

    @inlinable
    static func appendTime(_ b: inout [UInt8], _ t: Int64) {
        b.appendBigEndian(UInt64(bitPattern: t) ^ 0x8000_0000_0000_0000)
    }

    @inlinable
    static func readBlock(_ p: UnsafeRawBufferPointer, _ at: Int) -> Int32 {
        Int32(bitPattern: readU32(p, at) ^ 0x8000_0000)
    }

    @inlinable
    static func readTime(_ p: UnsafeRawBufferPointer, _ at: Int) -> Int64 {
        Int64(bitPattern: readU64(p, at) ^ 0x8000_0000_0000_0000)
    }

    @inlinable
    static func readU64(_ p: UnsafeRawBufferPointer, _ at: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(p[at + i]) }
        return v
    }

    @inlinable
    static func readU32(_ p: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(p[at + i]) }
        return v
    }

    @inlinable
    static func readU16(_ p: UnsafeRawBufferPointer, _ at: Int) -> UInt16 {
        UInt16(p[at]) << 8 | UInt16(p[at + 1])
    }

    static func appendLow48(_ b: inout [UInt8], _ low: UInt64) {
        for shift in stride(from: 40, through: 0, by: -8) { b.append(UInt8(truncatingIfNeeded: low >> UInt64(shift))) }
    }

    static func readLow48(_ p: UnsafeRawBufferPointer, _ at: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<6 { v = v << 8 | UInt64(p[at + i]) }
        return v
    }

    // MARK: - Meta

    public static func metaKey(_ name: String) -> [UInt8] {
        [metaPrefix] + Array(name.utf8)
    }

    // MARK: - Series

    public static func seriesKey(_ id: SeriesID) -> [UInt8] {
        var k: [UInt8] = [seriesPrefix]
        k.reserveCapacity(9)
        k.appendBigEndian(id.rawValue)
        return k
    }

    public static func lastBlockKey(_ id: SeriesID) -> [UInt8] {
        var k: [UInt8] = [lastBlockPrefix]
        k.appendBigEndian(id.rawValue)
        return k
    }

    /// The series ID in a series or last-block key.
    public static func seriesID(fromSeriesKey k: UnsafeRawBufferPointer) -> SeriesID {
        SeriesID(rawValue: readU64(k, 1))
    }

    // MARK: - Postings

    /// `04 | block | name | 00 | value | 00` — the prefix of one label pair's postings.
    public static func postingsPrefix(block: Int32, name: String, value: String) -> [UInt8] {
        var k: [UInt8] = [postingsPrefix]
        k.reserveCapacity(7 + name.utf8.count + value.utf8.count)
        appendBlock(&k, block)
        k.append(contentsOf: name.utf8)
        k.append(0)
        k.append(contentsOf: value.utf8)
        k.append(0)
        return k
    }

    /// `04 | block | name | 00` — every value of label `name` in `block`.
    public static func postingsNamePrefix(block: Int32, name: String) -> [UInt8] {
        var k: [UInt8] = [postingsPrefix]
        appendBlock(&k, block)
        k.append(contentsOf: name.utf8)
        k.append(0)
        return k
    }

    /// `04 | block` — the whole index of a block.
    public static func postingsBlockPrefix(block: Int32) -> [UInt8] {
        var k: [UInt8] = [postingsPrefix]
        appendBlock(&k, block)
        return k
    }

    /// The all-series posting prefix of a block (`name = value = ""`).
    public static func allPostingsPrefix(block: Int32) -> [UInt8] {
        postingsPrefix(block: block, name: "", value: "")
    }

    public static func postingKey(block: Int32, nameBytes: UnsafeRawBufferPointer, valueBytes: UnsafeRawBufferPointer, id: SeriesID) -> [UInt8] {
        var k: [UInt8] = [postingsPrefix]
        k.reserveCapacity(15 + nameBytes.count + valueBytes.count)
        appendBlock(&k, block)
        k.append(contentsOf: nameBytes)
        k.append(0)
        k.append(contentsOf: valueBytes)
        k.append(0)
        k.appendBigEndian(id.rawValue)
        return k
    }

    public static func allPostingKey(block: Int32, id: SeriesID) -> [UInt8] {
        var k = allPostingsPrefix(block: block)
        k.appendBigEndian(id.rawValue)
        return k
    }

    /// Every posting key of a series in a block: one per label, plus the all-series posting.
    public static func postingKeys(block: Int32, labels: Labels, id: SeriesID) -> [[UInt8]] {
        var keys: [[UInt8]] = [allPostingKey(block: block, id: id)]
        labels.forEachRaw { n, v in keys.append(postingKey(block: block, nameBytes: n, valueBytes: v, id: id)) }
        return keys
    }

    /// The block of a posting key (`04 | block | …`).
    public static func block(fromPostingKey k: UnsafeRawBufferPointer) -> Int32 { readBlock(k, 1) }

    /// The series ID at the end of a posting key.
    @inlinable
    public static func seriesID(fromPostingKey k: UnsafeRawBufferPointer) -> SeriesID {
        SeriesID(rawValue: readU64(k, k.count - 8))
    }

    // MARK: - Chunks

    /// Kind byte of a chunk key: chunks written by the in-order head path and by the
    /// out-of-order buffer never share a key even with equal `minT` and `uniq`.
    public enum ChunkKind: UInt8, Sendable {
        case inOrder = 0
        case outOfOrder = 1
        case compacted = 2
    }

    public static let chunkKeyLength = 30

    public static func chunkKey(id: SeriesID, block: Int32, minTimeMs: Int64, uniq: UInt64, kind: ChunkKind) -> [UInt8] {
        var k: [UInt8] = [chunkPrefix]
        k.reserveCapacity(chunkKeyLength)
        k.appendBigEndian(id.shard.rawValue)
        appendBlock(&k, block)
        appendLow48(&k, id.low)
        appendTime(&k, minTimeMs)
        k.appendBigEndian(uniq)
        k.append(kind.rawValue)
        return k
    }

    /// `05 | shard | block | low48` — one series' chunks in one block.
    public static func chunkSeriesBlockPrefix(id: SeriesID, block: Int32) -> [UInt8] {
        var k: [UInt8] = [chunkPrefix]
        k.appendBigEndian(id.shard.rawValue)
        appendBlock(&k, block)
        appendLow48(&k, id.low)
        return k
    }

    /// `05 | shard | block` — one shard's chunks in one block.
    public static func chunkShardBlockPrefix(shard: ShardID, block: Int32) -> [UInt8] {
        var k: [UInt8] = [chunkPrefix]
        k.appendBigEndian(shard.rawValue)
        appendBlock(&k, block)
        return k
    }

    /// `05 | shard` — all of one shard's chunks.
    public static func chunkShardPrefix(shard: ShardID) -> [UInt8] {
        var k: [UInt8] = [chunkPrefix]
        k.appendBigEndian(shard.rawValue)
        return k
    }

    public struct ChunkKeyParts: Sendable, Equatable {
        public var id: SeriesID
        public var block: Int32
        public var minTimeMs: Int64
        public var uniq: UInt64
        public var kind: UInt8
    }

    public static func parseChunkKey(_ k: UnsafeRawBufferPointer) -> ChunkKeyParts? {
        guard k.count == chunkKeyLength, k[0] == chunkPrefix else { return nil }
        let shard = ShardID(rawValue: readU16(k, 1))
        return ChunkKeyParts(
            id: SeriesID(shard: shard, low: readLow48(k, 7)),
            block: readBlock(k, 3),
            minTimeMs: readTime(k, 13),
            uniq: readU64(k, 21),
            kind: k[29])
    }

    /// Chunk value: `uvarint(maxT - minT)` then the encoded chunk.
    public static func chunkValue(_ chunk: EncodedChunk) -> [UInt8] {
        var v: [UInt8] = []
        v.reserveCapacity(chunk.bytes.count + 4)
        v.appendUVarint(UInt64(chunk.maxTimeMs - chunk.minTimeMs))
        v.append(contentsOf: chunk.bytes)
        return v
    }

    public static func decodeChunkValue(_ v: [UInt8], minTimeMs: Int64) throws(DecodeError) -> EncodedChunk {
        var r = ByteReader(v)
        let span = try r.readUVarint("chunk time span")
        guard span < UInt64(Int64.max) else { throw .malformed(context: "chunk time span too large") }
        return EncodedChunk(minTimeMs: minTimeMs, maxTimeMs: minTimeMs &+ Int64(span), bytes: Array(v[r.offset...]))
    }

    // MARK: - WAL, metadata, dirty markers

    public static func walKey(_ seq: UInt64) -> [UInt8] {
        var k: [UInt8] = [walPrefix]
        k.appendBigEndian(seq)
        return k
    }

    public static func walSeq(fromKey k: UnsafeRawBufferPointer) -> UInt64 { readU64(k, 1) }

    public static func metadataKey(_ key: String) -> [UInt8] { [metadataPrefix] + Array(key.utf8) }

    public static func dirtyKey(id: SeriesID, block: Int32) -> [UInt8] {
        var k: [UInt8] = [dirtyPrefix]
        k.appendBigEndian(id.shard.rawValue)
        appendBlock(&k, block)
        appendLow48(&k, id.low)
        return k
    }

    public static func parseDirtyKey(_ k: UnsafeRawBufferPointer) -> (SeriesID, Int32)? {
        guard k.count == 13, k[0] == dirtyPrefix else { return nil }
        return (SeriesID(shard: ShardID(rawValue: readU16(k, 1)), low: readLow48(k, 7)), readBlock(k, 3))
    }

    // MARK: - Hints

    /// `09 | 00` — the hint sequence high-water mark. No target ID is empty, so this key never
    /// collides with a hint key (whose second byte is a length ≥ 1).
    public static let hintSeqKey: [UInt8] = [hintPrefix, 0x00]

    /// `09 | uvarint len | target` — every hint for one target node. The length prefix keeps
    /// one target's range from containing another whose ID merely starts with the same bytes.
    public static func hintTargetPrefix(_ target: String) -> [UInt8] {
        var k: [UInt8] = [hintPrefix]
        k.reserveCapacity(target.utf8.count + 11)
        k.appendLengthPrefixed(target)
        return k
    }

    public static func hintKey(target: String, seq: UInt64) -> [UInt8] {
        var k = hintTargetPrefix(target)
        k.appendBigEndian(seq)
        return k
    }

    /// Target and sequence number of a hint key; nil when the key is not a well-formed hint key
    /// (including the high-water mark key).
    public static func parseHintKey(_ k: [UInt8]) -> (target: String, seq: UInt64)? {
        guard k.first == hintPrefix else { return nil }
        var r = ByteReader(k, offset: 1)
        guard let n = try? r.readUVarint(), n >= 1, UInt64(r.remaining) == n + 8,
              let raw = try? r.readBytes(Int(n)), let target = String(validating: raw, as: UTF8.self),
              let seq = try? r.readBigEndian(UInt64.self)
        else { return nil }
        return (target, seq)
    }
}
