/// Redial delays after failed connections to one peer: capped exponential backoff with
/// "equal jitter". The n-th consecutive failure waits a delay drawn uniformly from
/// `[d/2, d]` where `d = min(initialMs · 2^(n−1), maxMs)`.
///
/// Why jitter: when a node restarts, every other node's pool lost its connection at the same
/// instant; without jitter their redials (and their failures while the node boots) stay in
/// lockstep. Why only half: the lower bound keeps a floor under the delay, so a peer that refuses
/// at once is never redialled in a tight loop.
///
/// Pure: the caller passes the random source (the pool uses the system generator; tests a
/// seeded one).
public struct PeerBackoff: Sendable, Hashable {
    /// Delay after the first failure, in ms (before jitter). Must be ≥ 1.
    public var initialMs: Int64
    /// Cap on the delay, in ms (before jitter). Must be ≥ `initialMs`.
    public var maxMs: Int64

    public init(initialMs: Int64, maxMs: Int64) {
        precondition(initialMs >= 1 && maxMs >= initialMs, "backoff \(initialMs)…\(maxMs) ms: need 1 ≤ initial ≤ max")
        self.initialMs = initialMs
        self.maxMs = maxMs
    }

    /// The un-jittered delay after `failures` consecutive failures (≥ 1), in ms.
    public func ceilingMs(failures: Int) -> Int64 {
        precondition(failures >= 1, "backoff asked for \(failures) failures")
        // 2^62 overflows nothing; beyond ~40 doublings every realistic cap has been reached.
        let shift = min(failures - 1, 40)
        let (scaled, overflow) = initialMs.multipliedReportingOverflow(by: Int64(1) << shift)
        return overflow ? maxMs : min(scaled, maxMs)
    }

    /// The jittered delay after `failures` consecutive failures (≥ 1), in ms: uniform in
    /// `[ceiling/2, ceiling]`, never below 1.
    public func delayMs(failures: Int, random: inout some RandomNumberGenerator) -> Int64 {
        let ceiling = ceilingMs(failures: failures)
        let floor = max(1, ceiling / 2)
        return floor >= ceiling ? ceiling : Int64.random(in: floor...ceiling, using: &random)
    }
}
