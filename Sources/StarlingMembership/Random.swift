/// The randomness the membership instance uses (probe order, indirect-probe peers, gossip
/// targets, backoff jitter). It is an input, like time: the instance owns a generator passed in
/// at construction and never touches the system RNG, so a simulation seeded with one number
/// replays exactly. The shell seeds it from the system generator.
public protocol SeededRandom: RandomNumberGenerator, Sendable {
    init(seed: UInt64)
}

/// xoshiro256** (Blackman & Vigna), seeded through SplitMix64 so that nearby seeds give unrelated
/// streams. Fast, 256 bits of state, and identical output on every platform.
public struct Xoshiro256: SeededRandom {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    public init(seed: UInt64) {
        var sm = seed
        func splitmix() -> UInt64 {
            sm &+= 0x9E37_79B9_7F4A_7C15
            var z = sm
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix(); s1 = splitmix(); s2 = splitmix(); s3 = splitmix()
    }

    @inline(__always)
    private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 &- k)) }

    public mutating func next() -> UInt64 {
        let result = Self.rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = Self.rotl(s3, 45)
        return result
    }
}

extension RandomNumberGenerator {
    /// A uniform double in [0, 1).
    @inlinable
    mutating func unitDouble() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }
}
