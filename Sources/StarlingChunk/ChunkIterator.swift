import StarlingCore

/// Decodes one chunk of either encoding, sample by sample, without allocating per sample.
///
/// The iterator copies the chunk into a private zero-padded buffer (reused by `reset`) so the
/// hot loop reads with unconditional unaligned loads; after each sample it checks that it has not
/// consumed more bits than the chunk holds. Damaged input therefore ends in a thrown
/// `DecodeError`, never a trap or an out-of-bounds read. Checked as it goes: a known encoding, a
/// well-formed header, strictly increasing timestamps, enough bits for `count` samples.
///
/// After `next()` returned false or threw, the iterator is finished: `next()` returns false.
///
/// ```swift
/// var it = try ChunkIterator(chunk.bytes)
/// while try it.next() { use(it.timestampMs, it.value) }
/// ```
public struct ChunkIterator: Sendable {
    private var buffer: ChunkBuffer
    /// Bit position of the next code; after the last sample, the end of the data.
    private(set) var bitPosition: Int = 0
    /// Bits of chunk data (the copy's length × 8); reading beyond means truncation.
    private var endBit: Int = 0
    /// Samples the header announces.
    public private(set) var count: Int = 0
    /// Samples returned so far.
    private var index: Int = 0
    private var finished = false
    public private(set) var encoding: ChunkEncoding = .xor

    /// The current sample; valid after `next()` or `seek` returned true.
    public private(set) var timestampMs: Int64 = 0
    public private(set) var value: Double = 0

    /// Timestamp delta between the last two samples (state for the next dod).
    private(set) var timestampDelta: Int64 = 0
    // XOR state: the current window (leading == 0xFF: none yet).
    private(set) var xorLeading: Int = 0xFF
    private(set) var xorTrailing: Int = 0
    // Decimal state.
    private var valueMode: DecimalCodec.Mode = .constant
    private var mantissa: Int64 = 0
    private var mantissaDelta: Int64 = 0
    private var divisor: Int64 = 1
    private var centre: Int64 = 0
    private var widths: UInt32 = 0
    /// A one-range chunk's truncated-binary parameters (`DecimalCodec.OneRange`); k < 0: buckets.
    private var rangeK = -1
    private var rangeU: UInt64 = 0
    private var multiplier: Double = 1
    private var denominator: Double = 1

    /// The current sample as a value.
    public var sample: Sample { Sample(timestampMs, value) }

    /// Prepares to decode `bytes`; throws if the header is damaged.
    public init(_ bytes: [UInt8]) throws(DecodeError) {
        buffer = ChunkBuffer(capacity: max(min(bytes.count, ChunkCodec.maxChunkBytes), 256))
        try load(bytes)
    }

    public init(_ chunk: EncodedChunk) throws(DecodeError) {
        try self.init(chunk.bytes)
    }

    /// Restarts on another chunk, reusing the buffer when this iterator holds the only
    /// reference to it and it is large enough. On a thrown error the iterator is finished.
    public mutating func reset(_ bytes: [UInt8]) throws(DecodeError) {
        if !isKnownUniquelyReferenced(&buffer) || buffer.capacity < min(bytes.count, ChunkCodec.maxChunkBytes) {
            buffer = ChunkBuffer(capacity: max(min(bytes.count, ChunkCodec.maxChunkBytes), 256))
        }
        try load(bytes)
    }

    private mutating func load(_ bytes: [UInt8]) throws(DecodeError) {
        finished = true
        index = 0
        timestampDelta = 0
        xorLeading = 0xFF
        xorTrailing = 0
        mantissaDelta = 0
        encoding = try ChunkEncoding.of(bytes)
        guard bytes.count <= ChunkCodec.maxChunkBytes else {
            throw .malformed(context: "chunk of \(bytes.count) bytes exceeds the \(ChunkCodec.maxChunkBytes)-byte limit")
        }
        var r = ByteReader(bytes)
        _ = try r.readByte("chunk encoding")
        count = Int(try r.readBigEndian(UInt16.self, "chunk sample count"))
        if count > 0 {
            timestampMs = try r.readVarint("chunk first timestamp")
        }
        switch encoding {
        case .xor:
            break
        case .decimal:
            guard count > 0 else { throw .malformed(context: "decimal chunk: sample count is 0") }
            let e = Int(Int8(bitPattern: try r.readByte("decimal chunk exponent")))
            guard e.magnitude <= DecimalCodec.maxExponent else {
                throw .malformed(context: "decimal chunk: exponent \(e) outside -22...22")
            }
            let p = DecimalCodec.powersOfTen[Int(e.magnitude)]
            (multiplier, denominator) = e >= 0 ? (1, p) : (p, 1)
            let modeByte = try r.readByte("decimal chunk value mode")
            guard let mode = DecimalCodec.Mode(rawValue: modeByte) else {
                throw .malformed(context: "decimal chunk: unknown value mode \(modeByte)")
            }
            valueMode = mode
            mantissa = try r.readVarint("decimal chunk first mantissa")
            if mode != .constant {
                guard count > 1 else { throw .malformed(context: "decimal chunk: one sample needs value mode 0, got \(modeByte)") }
                let g = try r.readUVarint("decimal chunk divisor")
                guard g >= 1, g <= UInt64(Int64.max) else {
                    throw .malformed(context: "decimal chunk: divisor \(g) outside 1...2^63-1")
                }
                divisor = Int64(g)
                centre = 0
                if mode == .centredDelta {
                    centre = try r.readVarint("decimal chunk centre")
                }
                widths = 0
                rangeK = -1
                for b in 0..<4 {
                    let wb = try r.readByte("decimal chunk bucket width")
                    if b == 0 && wb == DecimalCodec.oneRangeMarker {
                        let largest = try r.readUVarint("decimal chunk largest code")
                        guard let range = DecimalCodec.OneRange(max: largest) else {
                            throw .malformed(context: "decimal chunk: largest code \(largest) is not below 2^63")
                        }
                        (rangeK, rangeU) = (range.k, range.u)
                        break
                    }
                    guard wb <= 64 else { throw .malformed(context: "decimal chunk: bucket width \(wb) exceeds 64") }
                    widths |= UInt32(wb) << (8 * UInt32(b))
                }
            }
            value = Double(mantissa) * multiplier / denominator
        }
        buffer.load(bytes)
        bitPosition = r.offset * 8
        endBit = bytes.count * 8
        finished = false
    }

    /// Advances to the next sample; false at the end of the chunk.
    @inline(__always)
    public mutating func next() throws(DecodeError) -> Bool {
        guard index < count, !finished else {
            finished = true
            return false
        }
        let base = UnsafeRawPointer(buffer.base)
        var pos = bitPosition
        if index == 0 {
            // The timestamp is in the header; an XOR chunk's first value opens the bit stream.
            if encoding == .xor { value = Double(bitPattern: BitRead.read(base, &pos, 64)) }
        } else {
            timestampDelta &+= TimestampCode.read(base, &pos)
            let t = timestampMs &+ timestampDelta
            guard t > timestampMs else {
                finished = true
                throw .malformed(context: "chunk: timestamp \(t) of sample \(index) not after \(timestampMs)")
            }
            timestampMs = t
            if encoding == .xor {
                try nextXORValue(base, &pos)
            } else if valueMode != .constant {
                nextDecimalValue(base, &pos)
            }
        }
        guard pos <= endBit else {
            finished = true
            throw .truncated(context: "\(encoding) chunk sample \(index) of \(count)")
        }
        bitPosition = pos
        index &+= 1
        return true
    }

    @inline(__always)
    private mutating func nextXORValue(_ base: UnsafeRawPointer, _ pos: inout Int) throws(DecodeError) {
        let w = BitRead.peek(base, pos)
        if w < 1 << 63 {  // `0`: same value
            pos &+= 1
            return
        }
        if w < 0b11 << 62 {  // `10`: reuse the window
            guard xorLeading != 0xFF else {
                finished = true
                throw .malformed(context: "xor chunk: sample \(index) reuses a window before any was set")
            }
            pos &+= 2
            let bits = BitRead.read(base, &pos, 64 - xorLeading - xorTrailing)
            value = Double(bitPattern: value.bitPattern ^ (bits &<< UInt64(xorTrailing)))
            return
        }
        // `11`: 5 bits leading zeros, 6 bits significant bits (0 means 64).
        let lead = Int((w &>> 57) & 0x1F)
        var n = Int((w &>> 51) & 0x3F)
        if n == 0 { n = 64 }
        guard lead + n <= 64 else {
            finished = true
            throw .malformed(context: "xor chunk: sample \(index) window \(lead)+\(n) exceeds 64 bits")
        }
        xorLeading = lead
        xorTrailing = 64 - lead - n
        pos &+= 13
        let bits = BitRead.read(base, &pos, n)
        value = Double(bitPattern: value.bitPattern ^ (bits &<< UInt64(xorTrailing)))
    }

    @inline(__always)
    private mutating func nextDecimalValue(_ base: UnsafeRawPointer, _ pos: inout Int) {
        var z: UInt64
        if rangeK >= 0 {
            if rangeK < 56 {
                // Both candidate codes from one load, picked without a branch: noise makes the
                // choice unpredictable.
                let y = BitRead.peek(base, pos) &>> UInt64(63 &- rangeK)  // k + 1 bits
                let x = y &>> 1
                let long = x >= rangeU
                z = long ? y &- rangeU : x
                pos &+= long ? rangeK &+ 1 : rangeK
            } else {
                z = BitRead.read(base, &pos, rangeK)
                if z >= rangeU { z = (z &<< 1 | BitRead.read(base, &pos, 1)) &- rangeU }
            }
        } else {
            let w = BitRead.peek(base, pos)
            let entry = Int(truncatingIfNeeded: DecimalCodec.prefixTable &>> ((w &>> 61) &* 4)) & 0xF
            let width = Int(truncatingIfNeeded: widths &>> UInt32(8 &* (entry & 3))) & 0xFF
            pos &+= entry &>> 2
            z = BitRead.read(base, &pos, width)
        }
        let q = (ZigZag.decode(z) &+ centre) &* divisor
        if valueMode != .deltaOfDelta {
            mantissa &+= q
        } else {
            mantissaDelta &+= q
            mantissa &+= mantissaDelta
        }
        value = Double(mantissa) * multiplier / denominator
    }

    /// Advances to the first sample at or after `timestampMs`, staying put if the current sample
    /// already is; false if there is none.
    public mutating func seek(toTimeMs target: Int64) throws(DecodeError) -> Bool {
        if finished { return false }
        if index > 0 && self.timestampMs >= target { return true }
        while try next() {
            if self.timestampMs >= target { return true }
        }
        return false
    }
}
