/// A small, fast, seedable PRNG (SplitMix64) for deterministic tests and simulations. Printing
/// the seed of a failing run and passing it back replays the run exactly.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64
    public let seed: UInt64

    public init(seed: UInt64) {
        self.seed = seed
        self.state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A clock for tests: time moves only when the test says so.
public final class ManualClock: @unchecked Sendable {
    public private(set) var nowMs: Int64
    public init(nowMs: Int64 = 1_700_000_000_000) { self.nowMs = nowMs }
    public func advance(byMs ms: Int64) { nowMs += ms }
    public func set(_ ms: Int64) { nowMs = ms }
}
