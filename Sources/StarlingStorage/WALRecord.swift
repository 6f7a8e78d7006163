import StarlingCore

/// One write-ahead-log record: the samples of one accepted append, by series ID. Stored under
/// `Keyspace.walKey(seq)` in the same atomic write as the series records and index entries the
/// append created, so replay always finds the labels of every series it references.
///
/// ```
/// u8      version (1)
/// uvarint series count
/// per series:
///   u64 BE   series ID
///   uvarint  sample count (≥ 1)
///   per sample: varint  timestamp delta (first: delta from 0), u64 LE value bits
/// ```
/// Values are stored raw (bit-exact, stale markers included); the record lives only until the
/// next checkpoint, so decode speed matters more than size.
public enum WALRecord {
    public static let version: UInt8 = 1

    public struct Entry: Sendable {
        public var id: SeriesID
        public var samples: [Sample]
        public init(id: SeriesID, samples: [Sample]) {
            self.id = id
            self.samples = samples
        }
    }

    public static func encode(_ entries: [Entry]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(16 + entries.reduce(0) { $0 + 10 + $1.samples.count * 11 })
        out.append(version)
        out.appendUVarint(UInt64(entries.count))
        for e in entries {
            out.appendBigEndian(e.id.rawValue)
            out.appendUVarint(UInt64(e.samples.count))
            var prev: Int64 = 0
            for s in e.samples {
                out.appendVarint(s.timestampMs &- prev)
                prev = s.timestampMs
                out.appendLittleEndian(s.value.bitPattern)
            }
        }
        return out
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> [Entry] {
        var r = ByteReader(bytes)
        let v = try r.readByte("WAL record version")
        guard v == version else { throw .malformed(context: "unknown WAL record version \(v)") }
        let n = try r.readUVarint("WAL series count")
        guard n <= UInt64(r.remaining) else { throw .malformed(context: "WAL series count \(n) exceeds record size") }
        var entries: [Entry] = []
        entries.reserveCapacity(Int(n))
        for _ in 0..<n {
            let id = SeriesID(rawValue: try r.readBigEndian(UInt64.self, "WAL series ID"))
            let count = try r.readUVarint("WAL sample count")
            guard count <= UInt64(r.remaining / 9) else { throw .malformed(context: "WAL sample count \(count) exceeds record size") }
            var samples: [Sample] = []
            samples.reserveCapacity(Int(count))
            var t: Int64 = 0
            for _ in 0..<count {
                t = t &+ (try r.readVarint("WAL timestamp"))
                let bits = try r.readLittleEndian(UInt64.self, "WAL value")
                samples.append(Sample(t, Double(bitPattern: bits)))
            }
            entries.append(Entry(id: id, samples: samples))
        }
        return entries
    }
}
