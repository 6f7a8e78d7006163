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
        var w = Writer(expectedSeries: entries.count, expectedSamples: entries.reduce(0) { $0 + $1.samples.count })
        for e in entries { w.add(e.id, e.samples) }
        return w.finish()
    }

    /// Builds a record one series at a time, so an append encodes each series while its samples
    /// are in cache instead of collecting entries for a second pass.
    public struct Writer {
        /// The series count goes before the entries but is known only at the end: entries start
        /// after room for the largest header, and `finish` moves the header next to them.
        private static let headerRoom = 1 + 10
        private var bytes: [UInt8]
        public private(set) var seriesCount = 0

        /// The sizes only reserve capacity.
        public init(expectedSeries: Int = 0, expectedSamples: Int = 0) {
            bytes = [UInt8](repeating: 0, count: Self.headerRoom)
            bytes.reserveCapacity(Self.headerRoom + 10 * expectedSeries + 11 * expectedSamples)
        }

        /// Adds one series' samples (at least one, sorted by timestamp).
        public mutating func add(_ id: SeriesID, _ samples: [Sample]) {
            samples.withUnsafeBufferPointer { add(id, $0) }
        }

        /// Adds one series' samples (at least one, sorted by timestamp).
        public mutating func add(_ id: SeriesID, _ samples: UnsafeBufferPointer<Sample>) {
            precondition(!samples.isEmpty, "WAL entry without samples")
            seriesCount += 1
            bytes.appendBigEndian(id.rawValue)
            bytes.appendUVarint(UInt64(samples.count))
            var prev: Int64 = 0
            for s in samples {
                bytes.appendVarint(s.timestampMs &- prev)
                prev = s.timestampMs
                bytes.appendLittleEndian(s.value.bitPattern)
            }
        }

        /// The record.
        public consuming func finish() -> [UInt8] {
            var header: [UInt8] = [version]
            header.appendUVarint(UInt64(seriesCount))
            var b = bytes
            b.replaceSubrange(0..<Self.headerRoom, with: header)
            return b
        }
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
