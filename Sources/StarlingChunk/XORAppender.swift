import StarlingCore

/// Builds an encoding-1 (XOR) chunk one sample at a time: the head's open chunk of a series.
///
/// Layout (see `docs/formats/chunk.md`): `0x01`, sample count as big-endian `UInt16`, and when
/// the chunk has samples, the first timestamp as a zig-zag varint followed by the bit stream:
/// the first value's 64 bits, then per sample a timestamp delta-of-delta code
/// (`TimestampCode`) and an XOR value code:
///
/// | code                                   | meaning                                                  |
/// |----------------------------------------|----------------------------------------------------------|
/// | `0`                                    | same bits as the previous value                          |
/// | `10` + *n* bits                        | XOR fits the current window (*n* = 64 − leading − trailing)|
/// | `11` + 5-bit leading + 6-bit *n* + *n* | new window; leading zeros capped at 31, *n* = 64 stored as 0 |
///
/// Appends only add bits to the writer (`BitWriter` buffers the word being filled); `bytes`
/// materializes a complete chunk, sample count included, as a copy of a few hundred bytes. Values
/// are kept bit for bit (NaN payloads such as the stale marker, ±Inf, -0.0, subnormals).
public struct XORAppender: Sendable {
    @usableFromInline private(set) var writer: BitWriter
    /// Samples in the chunk, 0...`ChunkCodec.maxSamplesPerChunk`.
    public private(set) var count: Int = 0
    /// Timestamp of the first sample; `Int64.max` while empty, so that `[minTimeMs, maxTimeMs]`
    /// is an empty interval (`minTimeMs > maxTimeMs` marks an empty chunk).
    public private(set) var minTimeMs: Int64 = .max
    /// Timestamp of the last sample; `Int64.min` while empty.
    public private(set) var maxTimeMs: Int64 = .min
    private var delta: Int64 = 0
    private var values = XORValueCoder()

    /// An empty chunk. `expectedSamples` only sizes the initial allocation.
    public init(expectedSamples: Int = ChunkCodec.defaultSamplesPerChunk) {
        writer = BitWriter(bytes: [ChunkEncoding.xor.rawValue, 0, 0])
        // ~2 bytes per sample on jittery float data; the array grows geometrically beyond.
        writer.reserveCapacity(16 + 2 * max(0, expectedSamples))
    }

    /// Reopens a persisted chunk for appending. An encoding-1 chunk is resumed in place (one
    /// decode pass to restore the state); an encoding-2 chunk is transcoded to encoding 1.
    /// Throws `DecodeError` if the chunk is damaged (see `ChunkCodec.validate` for the checks
    /// other than exact length; bytes past the end of the data are dropped).
    public init(resuming bytes: [UInt8]) throws(DecodeError) {
        var it = try ChunkIterator(bytes)
        switch it.encoding {
        case .decimal:
            self.init(expectedSamples: it.count)
            while try it.next() { append(it.timestampMs, it.value) }
        case .xor:
            var n = 0
            var first = Int64.max
            while try it.next() {
                if n == 0 { first = it.timestampMs }
                n += 1
            }
            guard n == it.count else { throw .malformed(context: "xor chunk: decoded \(n) samples, header says \(it.count)") }
            self.init(expectedSamples: 0)
            writer = BitWriter(resuming: bytes, bitCount: it.bitPosition)
            count = n
            if n > 0 {
                minTimeMs = first
                maxTimeMs = it.timestampMs
                delta = it.timestampDelta
                values = XORValueCoder(lastBits: it.value.bitPattern, leading: it.xorLeading, trailing: it.xorTrailing)
            }
        }
    }

    /// The chunk as it is now: a complete encoding-1 chunk (a copy).
    public var bytes: [UInt8] {
        var b = writer.bytes
        b[ChunkCodec.countOffset] = UInt8(truncatingIfNeeded: count >> 8)
        b[ChunkCodec.countOffset + 1] = UInt8(truncatingIfNeeded: count)
        return b
    }

    /// Starts loading the chunk's buffer for the next append: a series' open chunk is touched
    /// once per batch, so its buffer is rarely in cache. A hint only.
    @inlinable @inline(__always)
    public func prefetch() { writer.prefetch() }

    /// The last value appended; meaningless while `count == 0`.
    public var lastValue: Double { Double(bitPattern: values.lastBits) }

    /// `true` when no further sample fits (`count == ChunkCodec.maxSamplesPerChunk`).
    public var isFull: Bool { count >= ChunkCodec.maxSamplesPerChunk }

    /// The current chunk with its bounds, in encoding 1.
    public var chunk: EncodedChunk { EncodedChunk(minTimeMs: minTimeMs, maxTimeMs: maxTimeMs, bytes: bytes) }

    /// The chunk in its smallest encoding, for persisting a chunk the head closes: encoding 2
    /// when every value is decimal and that is smaller, else the appender's own bytes. Costs one
    /// decode of the chunk and, for decimal candidates, one encode.
    public func closed() -> EncodedChunk {
        let xor = chunk
        guard count > 0 else { return xor }
        var samples: [Sample] = []
        samples.reserveCapacity(count)
        do {
            var it = try ChunkIterator(xor.bytes)
            while try it.next() { samples.append(it.sample) }
        } catch {
            preconditionFailure("XORAppender produced an undecodable chunk: \(error)")
        }
        return samples.withUnsafeBufferPointer { buf in
            if let dec = DecimalCodec.encode(buf), dec.count < xor.bytes.count {
                return EncodedChunk(minTimeMs: minTimeMs, maxTimeMs: maxTimeMs, bytes: dec)
            }
            return xor
        }
    }

    /// Appends a sample. `timestampMs` must be greater than `maxTimeMs` (the caller routes
    /// out-of-order and duplicate samples elsewhere) and the chunk must not be full.
    public mutating func append(_ timestampMs: Int64, _ value: Double) {
        precondition(count < ChunkCodec.maxSamplesPerChunk, "XOR chunk full (\(count) samples)")
        let bits = value.bitPattern
        if count == 0 {
            writer.appendUVarint(ZigZag.encode(timestampMs))
            writer.write(bits, 64)
            minTimeMs = timestampMs
        } else {
            precondition(timestampMs > maxTimeMs, "sample at \(timestampMs) appended after \(maxTimeMs)")
            let d = timestampMs &- maxTimeMs
            TimestampCode.write(d &- delta, &writer)
            delta = d
            values.write(bits, &writer)
        }
        maxTimeMs = timestampMs
        values.lastBits = bits
        count += 1
    }

    /// The exact size in bytes of the encoding-1 chunk of `samples` (strictly increasing
    /// timestamps), computed by the appender's own coding logic without writing anything: what
    /// `ChunkEncoder` compares a decimal encoding against.
    static func encodedSize(_ samples: UnsafeBufferPointer<Sample>) -> Int {
        guard let first = samples.first else { return ChunkCodec.fixedHeaderSize }
        var counter = BitCounter()
        counter.write(first.value.bitPattern, 64)
        var values = XORValueCoder(lastBits: first.value.bitPattern)
        var prevT = first.timestampMs
        var delta: Int64 = 0
        for s in samples.dropFirst() {
            let d = s.timestampMs &- prevT
            TimestampCode.write(d &- delta, &counter)
            delta = d
            prevT = s.timestampMs
            let bits = s.value.bitPattern
            values.write(bits, &counter)
            values.lastBits = bits
        }
        return ChunkCodec.fixedHeaderSize + uvarintSize(ZigZag.encode(first.timestampMs)) + (counter.bitCount + 7) / 8
    }
}

/// The XOR value code (Gorilla): the state is the previous value's bits and the current window.
struct XORValueCoder: Sendable {
    var lastBits: UInt64 = 0
    /// The window; `leading == 0xFF` until the first window is written.
    var leading: Int = 0xFF
    var trailing: Int = 0

    /// Writes the code of `bits` against `lastBits` (which the caller then updates).
    @inline(__always)
    mutating func write<S: BitSink>(_ bits: UInt64, _ writer: inout S) {
        let x = bits ^ lastBits
        if x == 0 {
            writer.write(0, 1)
            return
        }
        let lead = min(x.leadingZeroBitCount, 31)
        let trail = x.trailingZeroBitCount
        if leading != 0xFF && lead >= leading && trail >= trailing {
            let n = 64 - leading - trailing
            let payload = x &>> UInt64(trailing)
            if n <= 62 {
                writer.write(0b10 &<< UInt64(n) | payload, n + 2)
            } else {
                writer.write(0b10, 2)
                writer.write(payload, n)
            }
        } else {
            leading = lead
            trailing = trail
            let n = 64 - lead - trail
            let control = 0b11 << 11 | UInt64(lead) << 6 | UInt64(n & 63)
            let payload = x &>> UInt64(trail)
            if n <= 51 {
                writer.write(control &<< UInt64(n) | payload, n + 13)
            } else {
                writer.write(control, 13)
                writer.write(payload, n)
            }
        }
    }
}
