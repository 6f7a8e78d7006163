import StarlingCore

/// The chunk encodings, identified by a chunk's first byte. The full byte and bit layout of each
/// is in `docs/formats/chunk.md`.
///
/// **Append only.** A value, once released, keeps its meaning forever: chunks are persisted in
/// RocksDB and exchanged between peers of different versions. A new encoding gets the next
/// unused value; a retired one keeps its number reserved.
public enum ChunkEncoding: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Gorilla-style chunk: delta-of-delta timestamps and XOR-compressed float64 values. Holds
    /// any float bit pattern; appendable (`XORAppender`).
    case xor = 1
    /// Decimal chunk: the same timestamp stream, and values stored as integer mantissas of one
    /// per-chunk power of ten, delta or delta-of-delta coded in per-chunk bit buckets. Only for
    /// chunks whose every value round-trips bit for bit; produced when a chunk is closed or
    /// compacted, never appended to.
    case decimal = 2

    /// The encoding of a chunk, from its first byte.
    public static func of(_ bytes: [UInt8]) throws(DecodeError) -> ChunkEncoding {
        guard let first = bytes.first else { throw .truncated(context: "chunk encoding byte") }
        guard let encoding = ChunkEncoding(rawValue: first) else {
            throw .malformed(context: "chunk: unknown encoding \(first) (known: 1 xor, 2 decimal)")
        }
        return encoding
    }

    public var description: String {
        switch self {
        case .xor: return "xor"
        case .decimal: return "decimal"
        }
    }
}

/// Limits, header access and validation shared by both encodings.
public enum ChunkCodec {
    /// Largest number of samples one chunk can hold: the header stores the count as a big-endian
    /// `UInt16`. Two bytes keep the header small; a chunk larger than this would also make a
    /// single RocksDB value and a single decode step needlessly coarse.
    public static let maxSamplesPerChunk = Int(UInt16.max)

    /// Samples per chunk the encoder aims for by default: 240 samples is one hour at a 15 s scrape
    /// interval. Larger chunks amortize the ~12-byte header and the first sample (XOR: ~14 bytes)
    /// over more samples but make every read of a short range decode more; Prometheus uses 120.
    public static let defaultSamplesPerChunk = 240

    /// Largest valid chunk in bytes: the headers (3 common bytes, a 10-byte timestamp varint, 43
    /// decimal bytes at most), the first XOR value, and 146 bits per further sample (the longest
    /// timestamp code, 69 bits, plus the longest value code, 77). Decoders refuse anything
    /// longer before copying it, so a hostile length cannot make them allocate more.
    public static let maxChunkBytes = 3 + 10 + 43 + (64 + (maxSamplesPerChunk - 1) * 146 + 7) / 8

    /// Bytes before the encoding-specific part: encoding byte and the 2-byte sample count.
    static let countOffset = 1
    static let fixedHeaderSize = 3

    /// The sample count recorded in a chunk's header, read without decoding the chunk.
    public static func sampleCount(_ bytes: [UInt8]) throws(DecodeError) -> Int {
        _ = try ChunkEncoding.of(bytes)
        guard bytes.count >= fixedHeaderSize else { throw .truncated(context: "chunk sample count") }
        return Int(bytes[1]) << 8 | Int(bytes[2])
    }

    /// Fully decodes `chunk` and checks everything a reader relies on: a known encoding, a
    /// well-formed header, exactly `count` samples with strictly increasing timestamps, that the
    /// first and last timestamps equal `chunk.minTimeMs` and `chunk.maxTimeMs`, and that the bit
    /// stream ends in the last byte with zero padding (no trailing bytes). A chunk without samples
    /// is valid only as an encoding-1 chunk whose bounds are the empty interval
    /// (`minTimeMs > maxTimeMs`), which is how `XORAppender` describes an empty chunk.
    ///
    /// Use it on chunks received from peers or read back after a suspected corruption; the
    /// iterators check the same properties as they go, except the exact length and padding.
    ///
    /// - Returns: the number of samples in the chunk.
    @discardableResult
    public static func validate(_ chunk: EncodedChunk) throws(DecodeError) -> Int {
        var it = try ChunkIterator(chunk.bytes)
        let count = it.count
        if count == 0 {
            guard chunk.minTimeMs > chunk.maxTimeMs else {
                throw .malformed(context: "chunk: no samples but bounds [\(chunk.minTimeMs), \(chunk.maxTimeMs)] are not empty")
            }
        }
        var decoded = 0
        var first = Int64.min
        var last = Int64.min
        while try it.next() {
            if decoded == 0 { first = it.timestampMs }
            last = it.timestampMs
            decoded += 1
        }
        guard decoded == count else {
            throw .malformed(context: "chunk: decoded \(decoded) samples, header says \(count)")
        }
        if count > 0 {
            guard first == chunk.minTimeMs else {
                throw .malformed(context: "chunk: first timestamp \(first) differs from minTimeMs \(chunk.minTimeMs)")
            }
            guard last == chunk.maxTimeMs else {
                throw .malformed(context: "chunk: last timestamp \(last) differs from maxTimeMs \(chunk.maxTimeMs)")
            }
        }
        let endBit = it.bitPosition
        let needed = (endBit + 7) / 8
        guard needed == chunk.bytes.count else {
            throw .malformed(context: "chunk: \(chunk.bytes.count) bytes but the data ends in byte \(needed)")
        }
        if endBit & 7 != 0 {
            let padding = chunk.bytes[needed - 1] & UInt8(0xFF >> (endBit & 7))
            guard padding == 0 else { throw .malformed(context: "chunk: nonzero padding bits in the last byte") }
        }
        return count
    }
}
