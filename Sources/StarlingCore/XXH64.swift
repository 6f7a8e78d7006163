/// XXH64, the 64-bit xxHash by Yann Collet (algorithm specification:
/// https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md).
///
/// Starling needs a hash that is identical on every node, process and release: series identity,
/// shard assignment and digests are computed from it and compared across peers. Swift's `Hasher`
/// is randomly seeded per process, so it must never be used for anything that leaves the process.
public enum XXH64 {
    @usableFromInline static let p1: UInt64 = 11_400_714_785_074_694_791
    @usableFromInline static let p2: UInt64 = 14_029_467_366_897_019_727
    @usableFromInline static let p3: UInt64 = 1_609_587_929_392_839_161
    @usableFromInline static let p4: UInt64 = 9_650_029_242_287_828_579
    @usableFromInline static let p5: UInt64 = 2_870_177_450_012_600_261

    @inlinable @inline(__always)
    static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 &- r)) }

    @inlinable @inline(__always)
    static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        rotl(acc &+ input &* p2, 31) &* p1
    }

    @inlinable @inline(__always)
    static func mergeRound(_ acc: UInt64, _ val: UInt64) -> UInt64 {
        (acc ^ round(0, val)) &* p1 &+ p4
    }

    /// Hashes `bytes` with `seed`.
    @inlinable
    public static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        let count = bytes.count
        var i = 0
        var h: UInt64
        @inline(__always) func read64(_ at: Int) -> UInt64 {
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))
        }
        @inline(__always) func read32(_ at: Int) -> UInt64 {
            UInt64(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
        }
        if count >= 32 {
            var v1 = seed &+ p1 &+ p2
            var v2 = seed &+ p2
            var v3 = seed
            var v4 = seed &- p1
            let limit = count - 32
            while i <= limit {
                v1 = round(v1, read64(i))
                v2 = round(v2, read64(i + 8))
                v3 = round(v3, read64(i + 16))
                v4 = round(v4, read64(i + 24))
                i += 32
            }
            h = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
            h = mergeRound(h, v1)
            h = mergeRound(h, v2)
            h = mergeRound(h, v3)
            h = mergeRound(h, v4)
        } else {
            h = seed &+ p5
        }
        h &+= UInt64(count)
        while i + 8 <= count {
            h ^= round(0, read64(i))
            h = rotl(h, 27) &* p1 &+ p4
            i += 8
        }
        if i + 4 <= count {
            h ^= read32(i) &* p1
            h = rotl(h, 23) &* p2 &+ p3
            i += 4
        }
        while i < count {
            h ^= UInt64(bytes[i]) &* p5
            h = rotl(h, 11) &* p1
            i += 1
        }
        h ^= h >> 33
        h &*= p2
        h ^= h >> 29
        h &*= p3
        h ^= h >> 32
        return h
    }

    @inlinable
    public static func hash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        bytes.withUnsafeBytes { hash($0, seed: seed) }
    }

    @inlinable
    public static func hash(_ bytes: ArraySlice<UInt8>, seed: UInt64 = 0) -> UInt64 {
        bytes.withUnsafeBytes { hash($0, seed: seed) }
    }

    public static func hash(_ string: String, seed: UInt64 = 0) -> UInt64 {
        var s = string
        return s.withUTF8 { hash(UnsafeRawBufferPointer($0), seed: seed) }
    }
}
