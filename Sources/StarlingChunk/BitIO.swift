import CPrefetch
import StarlingCore

// Bit-level I/O shared by both encodings. Bits are written most significant first; a chunk's
// bit stream starts on a byte boundary after its byte-aligned header and its last byte is padded
// with zero bits.

/// Bytes `appendUVarint` uses for `v`.
func uvarintSize(_ v: UInt64) -> Int {
    (64 - (v | 1).leadingZeroBitCount + 6) / 7
}

/// Where encoders put bits: a `BitWriter`, or a `BitCounter` that only measures, so the size of
/// an encoding is computed by the very code that writes it.
protocol BitSink {
    /// Appends the low `n` bits of `value` (`n` in 0...64), most significant first.
    mutating func write(_ value: UInt64, _ n: Int)
}

/// Counts the bits an encoder would write.
struct BitCounter: BitSink {
    var bitCount = 0
    @inline(__always)
    mutating func write(_ value: UInt64, _ n: Int) { bitCount &+= n }
}

/// Appends bits to a byte array. Whole 64-bit words go to `storage` as they fill; the bits of
/// the word being filled wait in `pending`, so a write costs a shift and an or, and a byte
/// array append every 64 bits instead of every 8. `bytes` materializes the stream (pending bits
/// zero-padded to a byte): a copy, taken when a chunk is snapshotted or finished.
@usableFromInline
struct BitWriter: BitSink, Sendable {
    /// Complete bytes: the header, then the bit stream's filled words.
    @usableFromInline private(set) var storage: [UInt8]
    /// The low `pendingBits` bits (0...63) are the stream's newest bits, not yet in `storage`.
    private var pending: UInt64 = 0
    private var pendingBits = 0

    var bitCount: Int { storage.count * 8 + pendingBits }

    /// Starts after `bytes`, which must be whole bytes (a header).
    init(bytes: [UInt8]) {
        self.storage = bytes
    }

    /// Resumes after `bitCount` bits of `bytes`; bytes past the data are dropped and the bits of
    /// a partial last byte continue as pending bits.
    init(resuming bytes: [UInt8], bitCount: Int) {
        precondition(bitCount >= 0 && bitCount <= bytes.count * 8, "bit count \(bitCount) outside \(bytes.count) bytes")
        var b = bytes
        let whole = bitCount / 8
        let rest = bitCount & 7
        if rest != 0 {
            pending = UInt64(b[whole] >> UInt8(8 - rest))
            pendingBits = rest
        }
        b.removeLast(b.count - whole)
        self.storage = b
    }

    mutating func reserveCapacity(_ n: Int) { storage.reserveCapacity(n) }

    /// Starts loading, for writing, the line of the byte array's header (its count, which the
    /// next word written reads and updates). A hint (see `starling_prefetch_write`).
    @inlinable @inline(__always)
    func prefetch() {
        starling_prefetch_write(unsafeBitCast(storage, to: UnsafeRawPointer.self))
    }

    /// The stream as bytes, the last one zero-padded.
    var bytes: [UInt8] {
        guard pendingBits > 0 else { return storage }
        var b = storage
        b.reserveCapacity(storage.count + 8)
        Self.appendPending(pending, pendingBits, to: &b)
        return b
    }

    /// The stream as bytes, without a copy; the writer is done.
    consuming func finish() -> [UInt8] {
        var b = storage
        Self.appendPending(pending, pendingBits, to: &b)
        return b
    }

    private static func appendPending(_ pending: UInt64, _ bits: Int, to b: inout [UInt8]) {
        guard bits > 0 else { return }
        var word = pending &<< UInt64(64 - bits)  // left-aligned
        var left = bits
        while left > 0 {
            b.append(UInt8(truncatingIfNeeded: word &>> 56))
            word &<<= 8
            left -= 8
        }
    }

    mutating func appendByte(_ v: UInt8) {
        precondition(pendingBits == 0, "byte written at an unaligned bit position")
        storage.append(v)
    }

    /// Appends whole bytes; only valid before any bits (in the header).
    mutating func appendUVarint(_ v: UInt64) {
        precondition(pendingBits == 0, "varint written at an unaligned bit position")
        storage.appendUVarint(v)
    }

    /// Appends the low `n` bits of `value`, most significant first. `n` in 0...64.
    @inline(__always)
    mutating func write(_ value: UInt64, _ n: Int) {
        guard n > 0 else { return }
        let v = n == 64 ? value : value & ((1 &<< UInt64(n)) &- 1)
        let free = 64 - pendingBits  // 1...64
        if n < free {
            pending = pending &<< UInt64(n) | v
            pendingBits += n
            return
        }
        // The word fills: its last `free` bits are the top of `v`.
        let spill = n - free  // 0...63
        let word = free == 64 ? v : pending &<< UInt64(free) | v &>> UInt64(spill)
        withUnsafeBytes(of: word.bigEndian) { storage.append(contentsOf: $0) }
        pending = v & ((1 &<< UInt64(spill)) &- 1)
        pendingBits = spill
    }
}

/// A private, zero-padded copy of a chunk's bytes that the decoders read with unaligned 8-byte
/// loads. The padding (`padding` bytes past the data) lets every load be unconditional: a decoder
/// checks after each sample that it has not consumed more bits than the chunk holds, and one
/// sample reads at most 146 bits, so no load can leave the allocation even on garbage input.
///
/// `@unchecked Sendable`: the memory is written only by `load`, which `ChunkIterator` calls at
/// creation and on `reset` when it holds the only reference; a buffer shared by copies of an
/// iterator is only ever read.
final class ChunkBuffer: @unchecked Sendable {
    static let padding = 32

    let base: UnsafeMutableRawPointer
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        base = UnsafeMutableRawPointer.allocate(byteCount: capacity + Self.padding, alignment: 8)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: capacity + Self.padding)
    }

    deinit { base.deallocate() }

    /// Copies `bytes` to the start of the buffer and zeroes the padding after them.
    func load(_ bytes: [UInt8]) {
        precondition(bytes.count <= capacity, "chunk of \(bytes.count) bytes loaded into a \(capacity)-byte buffer")
        bytes.withUnsafeBytes { src in
            if let s = src.baseAddress { base.copyMemory(from: s, byteCount: src.count) }
        }
        (base + bytes.count).initializeMemory(as: UInt8.self, repeating: 0, count: Self.padding)
    }
}

/// Reads bits from a `ChunkBuffer`'s memory. Every function takes the absolute bit position;
/// callers guarantee `pos` is within the data plus 146 bits (see `ChunkBuffer`).
enum BitRead {
    /// The 64 bits starting at `pos`; the first `64 - pos % 8` (at least 57) are meaningful.
    @inline(__always)
    static func peek(_ base: UnsafeRawPointer, _ pos: Int) -> UInt64 {
        base.loadUnaligned(fromByteOffset: pos &>> 3, as: UInt64.self).bigEndian &<< UInt64(pos & 7)
    }

    /// Reads `n` bits (0...64) as an unsigned integer and advances `pos`.
    @inline(__always)
    static func read(_ base: UnsafeRawPointer, _ pos: inout Int, _ n: Int) -> UInt64 {
        if n <= 56 {
            let v = peek(base, pos) >> UInt64(64 - n)  // smart shift: n == 0 yields 0
            pos &+= n
            return v
        }
        let hi = peek(base, pos) &>> 32
        pos &+= 32
        let lowBits = n - 32
        let lo = peek(base, pos) &>> UInt64(64 - lowBits)
        pos &+= lowBits
        return hi &<< UInt64(lowBits) | lo
    }
}

/// The timestamp stream, identical in both encodings: sample 0's timestamp is in the header;
/// for sample i ≥ 1 the stream holds `dod = (t[i] - t[i-1]) - (t[i-1] - t[i-2])`, with
/// `t[i-1] - t[i-2]` taken as 0 for i == 1 (so the first delta is coded as a dod). All arithmetic
/// wraps modulo 2^64, which makes every pair of Int64 timestamps representable.
///
/// | prefix  | payload | dod range (two's complement)     | bits | typical cause                         |
/// |---------|---------|----------------------------------|------|---------------------------------------|
/// | `0`     | —       | 0                                | 1    | regular scrape                        |
/// | `10`    | 7       | [-64, 63]                        | 9    | ms jitter of a scrape                 |
/// | `110`   | 9       | [-256, 255]                      | 12   | a slow scrape, GC pause               |
/// | `1110`  | 12      | [-2048, 2047]                    | 16   | a late or timed-out scrape            |
/// | `11110` | 20      | [-524288, 524287] (±8.7 minutes) | 25   | first delta, interval change, gap     |
/// | `11111` | 64      | any                              | 69   | long gap, arbitrary timestamps        |
enum TimestampCode {
    @inline(__always)
    static func write<S: BitSink>(_ dod: Int64, _ w: inout S) {
        let u = UInt64(bitPattern: dod)
        if dod == 0 {
            w.write(0, 1)
        } else if dod >= -64 && dod <= 63 {
            w.write(0b10 << 7 | (u & 0x7F), 9)
        } else if dod >= -256 && dod <= 255 {
            w.write(0b110 << 9 | (u & 0x1FF), 12)
        } else if dod >= -2048 && dod <= 2047 {
            w.write(0b1110 << 12 | (u & 0xFFF), 16)
        } else if dod >= -524_288 && dod <= 524_287 {
            w.write(0b11110 << 20 | (u & 0xF_FFFF), 25)
        } else {
            w.write(0b11111, 5)
            w.write(u, 64)
        }
    }

    @inline(__always)
    static func read(_ base: UnsafeRawPointer, _ pos: inout Int) -> Int64 {
        let w = BitRead.peek(base, pos)
        // The prefix is the count of leading one bits, capped at 5.
        switch (~w).leadingZeroBitCount {
        case 0:
            pos &+= 1
            return 0
        case 1:
            pos &+= 9
            return Int64(bitPattern: w &<< 2) &>> 57
        case 2:
            pos &+= 12
            return Int64(bitPattern: w &<< 3) &>> 55
        case 3:
            pos &+= 16
            return Int64(bitPattern: w &<< 4) &>> 52
        case 4:
            pos &+= 25
            return Int64(bitPattern: w &<< 5) &>> 44
        default:
            pos &+= 5
            return Int64(bitPattern: BitRead.read(base, &pos, 64))
        }
    }
}
