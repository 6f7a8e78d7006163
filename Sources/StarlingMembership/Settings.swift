/// Hard bounds on anything decoded from the network or queued for it. Each is enforced in the
/// codec or the instance, and each hit is counted in `SWIMStats` (and exported as a metric by the
/// shell) so an operator sees when a limit, not the network, is the problem.
public enum Limits {
    /// Longest host text in an address (a DNS name is at most 253 bytes).
    public static let maxHostBytes = 255
    /// Longest node name, in bytes.
    public static let maxNameBytes = 128
    /// Longest metadata string (each of HTTP address, peer address, zone, version), in bytes.
    public static let maxMetadataStringBytes = 128
    /// Most gossip updates decoded from one datagram. A 1,400-byte payload fits ~60 of the
    /// smallest updates; anything above this is hostile.
    public static let maxUpdatesPerDatagram = 256
    /// Largest datagram the decoder looks at (the UDP maximum); the *sender's* bound is the
    /// smaller `SWIMSettings.maxPayloadBytes`.
    public static let maxDatagramBytes = 65_507
    /// Most member records in one push-pull state.
    public static let maxPushPullMembers = 16_384
    /// Largest push-pull frame, in bytes (after decryption overhead). 16,384 members at ~200
    /// bytes each is ~3.2 MiB; 8 MiB leaves room without letting a peer make us buffer more.
    public static let maxPushPullBytes = 8 << 20
    /// Most ping-req relays a node keeps at once; beyond it, ping-reqs are dropped and counted.
    public static let maxRelayedProbes = 1_024
}

/// Settings of the membership protocol. Every duration is in milliseconds (`…Ms`). Defaults are
/// the LAN profile (`SWIMSettings.lan`), which follows memberlist's `DefaultLANConfig` and the
/// Lifeguard paper. `localTest` shrinks the timing for tests on one machine.
///
/// Failure detection time for a crashed member, with no confirmations, is roughly
/// `probeIntervalMs` (until someone probes it) + `probeIntervalMs` (direct + indirect probe)
/// + the suspicion timeout, which shrinks from `suspicionMaxTimeoutMultiplier ×` the minimum
/// towards the minimum as other members independently confirm the suspicion:
///
///     minimum = suspicionMultiplier × max(1, log10(n)) × probeIntervalMs
///     maximum = suspicionMaxTimeoutMultiplier × minimum
///     timeout(c) = max(minimum, maximum − (maximum − minimum) × log(c + 1) / log(k + 1))
///     k = suspicionMultiplier − 2 expected confirmations (0 when fewer than k other members)
///
/// See docs/membership.md for the derivation and docs/benchmarks.md for measured figures.
public struct SWIMSettings: Sendable, Equatable {
    /// Time between probes of successive members (randomized round robin). Lower detects faster
    /// at the cost of more traffic (one ping + ack per node per interval). Default 1,000 ms.
    public var probeIntervalMs: Int64 = 1_000
    /// How long to wait for a direct ack before asking `indirectProbes` peers to probe (ping-req).
    /// Should exceed the 99th-percentile round-trip time. Default 500 ms.
    public var probeTimeoutMs: Int64 = 500
    /// Number of peers asked to probe a member that did not answer directly (SWIM's k). More
    /// tolerates more lossy paths, at the cost of 2×k extra datagrams per failed probe. Default 3.
    public var indirectProbes: Int = 3
    /// Scales the minimum suspicion timeout (see above). Higher = fewer false positives on a
    /// congested network, slower detection. Default 4 (memberlist LAN).
    public var suspicionMultiplier: Int = 4
    /// The maximum suspicion timeout as a multiple of the minimum; applies when nobody else
    /// confirms the suspicion (Lifeguard). Default 6.
    public var suspicionMaxTimeoutMultiplier: Int = 6
    /// Retransmit limit of each gossip update is `retransmitMultiplier × ceil(log10(n + 1))`.
    /// Higher spreads updates more reliably under loss, at the cost of bytes. Default 4.
    public var retransmitMultiplier: Int = 4
    /// Interval of the dedicated gossip round (updates are also piggybacked on every probe).
    /// Sent only when there is something to say. Default 200 ms.
    public var gossipIntervalMs: Int64 = 200
    /// Random members each gossip round sends to. Default 3.
    public var gossipFanout: Int = 3
    /// Keep gossiping to a dead member this long after it died, so that if it is alive after all
    /// (partition, pause) it learns it was declared dead and refutes. Default 30,000 ms.
    public var gossipToTheDeadMs: Int64 = 30_000
    /// Lifeguard local-health awareness: timeouts and probe intervals are multiplied by
    /// `health + 1`, where health ranges 0...`awarenessMaxMultiplier - 1` and rises when this
    /// node misses acks/nacks or has to refute a suspicion about itself. 1 disables. Default 8.
    public var awarenessMaxMultiplier: Int = 8
    /// Anti-entropy: full state exchange over TCP with one random member. Scaled up for clusters
    /// larger than 32 by `ceil(log2(n) − 5) + 1`, like memberlist. 0 disables. Default 30,000 ms.
    public var pushPullIntervalMs: Int64 = 30_000
    /// Tombstone lifetime: a dead or left member stays in the view (and in push-pull state, so
    /// that every node learns of the death) for this long, then is removed (`removed` event).
    /// Placement treats removal as "gone for good" and re-replicates. Dead members are also
    /// the targets of every other push-pull round (reconnect after a partition), so this must
    /// span a few push-pull intervals. Default 60,000 ms.
    public var tombstoneReclaimMs: Int64 = 60_000
    /// First delay before retrying a join that reached no seed; doubles per attempt up to
    /// `joinRetryMaxMs`, with ±20% jitter. Default 1,000 ms.
    public var joinRetryInitialMs: Int64 = 1_000
    /// Upper bound of the join retry backoff. Default 30,000 ms.
    public var joinRetryMaxMs: Int64 = 30_000
    /// Largest datagram payload this node sends, including the encryption envelope. 1,400 stays
    /// under a 1,500-byte Ethernet MTU with IP/UDP headers. Raise only on jumbo-frame networks.
    /// Default 1,400 bytes.
    public var maxPayloadBytes: Int = 1_400
    /// Fraction of the probe timeout after which a ping-req relay that got no ack sends a nack to
    /// the origin, so the nack arrives before the origin's own deadline. Default 0.8.
    public var nackFraction: Double = 0.8

    public init() {}

    /// LAN profile: the defaults above.
    public static let lan = SWIMSettings()

    /// Fast local-test profile, for processes on one machine: 200 ms probes, 100 ms timeout,
    /// 50 ms gossip, 5 s push-pull, 30 s tombstones (several reconnect rounds), 200 ms join retry.
    public static var localTest: SWIMSettings {
        var s = SWIMSettings()
        s.probeIntervalMs = 200
        s.probeTimeoutMs = 100
        s.gossipIntervalMs = 50
        s.gossipToTheDeadMs = 5_000
        s.pushPullIntervalMs = 5_000
        s.tombstoneReclaimMs = 30_000
        s.joinRetryInitialMs = 200
        s.joinRetryMaxMs = 2_000
        return s
    }

    /// A profile by name (`lan`, `local-test`), for the `--gossip-profile` flag.
    public static func profile(named name: String) -> SWIMSettings? {
        switch name {
        case "lan", "default": return .lan
        case "local-test", "localTest", "local": return .localTest
        default: return nil
        }
    }

    public static let profileNames = ["lan", "local-test"]

    /// Checks internal consistency; returns the first problem found.
    public func validate() -> String? {
        if probeIntervalMs <= 0 { return "probeIntervalMs must be > 0" }
        if probeTimeoutMs <= 0 || probeTimeoutMs >= probeIntervalMs {
            return "probeTimeoutMs must be > 0 and < probeIntervalMs"
        }
        if indirectProbes < 0 { return "indirectProbes must be >= 0" }
        if suspicionMultiplier < 1 { return "suspicionMultiplier must be >= 1" }
        if suspicionMaxTimeoutMultiplier < 1 { return "suspicionMaxTimeoutMultiplier must be >= 1" }
        if retransmitMultiplier < 1 { return "retransmitMultiplier must be >= 1" }
        if gossipIntervalMs <= 0 { return "gossipIntervalMs must be > 0" }
        if gossipFanout < 0 { return "gossipFanout must be >= 0" }
        if awarenessMaxMultiplier < 1 { return "awarenessMaxMultiplier must be >= 1" }
        if pushPullIntervalMs < 0 { return "pushPullIntervalMs must be >= 0" }
        if tombstoneReclaimMs < 0 { return "tombstoneReclaimMs must be >= 0" }
        if joinRetryInitialMs <= 0 || joinRetryMaxMs < joinRetryInitialMs {
            return "joinRetryInitialMs must be > 0 and <= joinRetryMaxMs"
        }
        if maxPayloadBytes < 512 || maxPayloadBytes > Limits.maxDatagramBytes {
            return "maxPayloadBytes must be in 512...\(Limits.maxDatagramBytes)"
        }
        if !(nackFraction > 0 && nackFraction < 1) { return "nackFraction must be in (0, 1)" }
        return nil
    }

    // MARK: Derived quantities (pure functions of n, shared by the instance, docs and tests)

    /// Minimum suspicion timeout for a cluster of `n` members (ms).
    public func suspicionMinTimeoutMs(memberCount n: Int) -> Int64 {
        let scale = max(1.0, log10(Double(max(1, n))))
        return Int64((Double(suspicionMultiplier) * scale * Double(probeIntervalMs)).rounded(.down))
    }

    /// Maximum suspicion timeout (ms).
    public func suspicionMaxTimeoutMs(memberCount n: Int) -> Int64 {
        Int64(suspicionMaxTimeoutMultiplier) * suspicionMinTimeoutMs(memberCount: n)
    }

    /// Independent confirmations after which the timeout reaches its minimum.
    public func expectedConfirmations(memberCount n: Int) -> Int {
        let k = suspicionMultiplier - 2
        return (n - 2 < k) ? 0 : max(0, k)
    }

    /// Lifeguard's suspicion timeout after `confirmations` independent suspicions (ms, from the
    /// start of the suspicion).
    public static func suspicionTimeoutMs(confirmations c: Int, expected k: Int, minMs: Int64, maxMs: Int64) -> Int64 {
        guard k > 0 else { return minMs }
        let frac = log(Double(c) + 1) / log(Double(k) + 1)
        let raw = Double(maxMs) - frac * Double(maxMs - minMs)
        return max(minMs, Int64(raw.rounded(.down)))
    }

    /// How many times each update is transmitted.
    public func retransmitLimit(memberCount n: Int) -> Int {
        retransmitMultiplier * Int(log10(Double(n + 1)).rounded(.up))
    }

    /// Push-pull interval for `n` members (ms).
    public func scaledPushPullIntervalMs(memberCount n: Int) -> Int64 {
        guard n > 32 else { return pushPullIntervalMs }
        let mult = Int64((log2(Double(n)) - log2(32)).rounded(.up)) + 1
        return pushPullIntervalMs * mult
    }
}

// Foundation-free math: the pure target links no Foundation.
@inline(__always) func log(_ x: Double) -> Double { _log(x) }
@inline(__always) func log10(_ x: Double) -> Double { _log(x) / _log(10) }
@inline(__always) func log2(_ x: Double) -> Double { _log(x) / _log(2) }

/// Natural logarithm without Foundation/Glibc: reduce to m·2^e with m in [1, 2), then the
/// atanh series ln(m) = 2·atanh((m−1)/(m+1)), which converges fast for m in that range.
@usableFromInline func _log(_ x: Double) -> Double {
    precondition(x > 0, "log of non-positive \(x)")
    let e = Double(x.exponent)
    let m = x.significand  // [1, 2)
    let t = (m - 1) / (m + 1)
    let t2 = t * t
    var term = t
    var sum = 0.0
    var k = 1.0
    while true {
        let add = term / k
        sum += add
        if abs(add) < 1e-17 { break }
        term *= t2
        k += 2
    }
    return 2 * sum + e * 0.693_147_180_559_945_309_4
}
