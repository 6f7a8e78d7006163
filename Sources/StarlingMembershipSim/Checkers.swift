import StarlingMembership

/// Properties checked on simulation runs. Each returns human-readable violations (empty = ok);
/// a test prints them together with the seed that reproduces the run.
extension Simulation {
    /// Every running node sees every other running node as alive, and every killed or stopped
    /// node as dead, left, or already removed. (Frozen nodes are not checked either way.)
    public func convergenceViolations() -> [String] {
        var out: [String] = []
        let running = liveIndices
        for o in running {
            for s in nodes.indices where s != o {
                let st = status(of: s, seenBy: o)
                switch nodes[s].run {
                case .running:
                    if st != .alive { out.append("node\(o) sees running node\(s) as \(st.map(\.description) ?? "unknown")") }
                case .killed:
                    if let st, st.isLive { out.append("node\(o) sees killed node\(s) as \(st)") }
                case .stopped:
                    if let st, st.isLive { out.append("node\(o) sees stopped node\(s) as \(st)") }
                case .frozen:
                    break
                }
            }
        }
        return out
    }

    /// Whether every running node agrees with the truth (see `convergenceViolations`).
    public var isConverged: Bool { convergenceViolations().isEmpty }

    /// Every running node other than `subject` has `subject` as dead (or removed).
    public func isDeclaredDeadByAll(_ subject: Int) -> Bool {
        liveIndices.allSatisfy { o in
            o == subject || { let s = status(of: subject, seenBy: o); return s == nil || s == .dead }()
        }
    }

    /// Every running node other than `subject` has `subject` as left (or removed).
    public func isSeenLeftByAll(_ subject: Int) -> Bool {
        liveIndices.allSatisfy { o in
            o == subject || { let s = status(of: subject, seenBy: o); return s == nil || s == .left }()
        }
    }

    /// The "no live node declared dead while the network is healthy" property. Applies only to
    /// runs without injected faults; with faults it returns nothing (false deaths are then a
    /// figure, `deathsOfRunningNodes`).
    public func falseDeathViolations() -> [String] {
        guard !hadNetworkFault else { return [] }
        return deathsOfRunningNodes.map {
            "t=\($0.timeMs)ms node\($0.observer) declared running \($0.change.member.name) dead"
        }
    }

    /// Sum of all nodes' stats.
    public var totalStats: SWIMStats {
        var t = SWIMStats()
        for n in nodes {
            let s = n.swim.stats
            t.probesSent += s.probesSent
            t.probesFailed += s.probesFailed
            t.pingReqsSent += s.pingReqsSent
            t.suspicionsRaised += s.suspicionsRaised
            t.suspicionsStartedLocally += s.suspicionsStartedLocally
            t.suspicionsRefuted += s.suspicionsRefuted
            t.selfRefutations += s.selfRefutations
            t.membersDeclaredDead += s.membersDeclaredDead
            t.datagramsSent += s.datagramsSent
            t.bytesSent += s.bytesSent
            t.largestDatagramSent = max(t.largestDatagramSent, s.largestDatagramSent)
            t.updatesSent += s.updatesSent
            t.authenticationFailures += s.authenticationFailures
            t.malformed += s.malformed
            t.pushPullsCompleted += s.pushPullsCompleted
            t.pushPullsFailed += s.pushPullsFailed
        }
        return t
    }
}

/// Seeds for simulation tests: a fixed list for CI, one seed from `STARLING_SIM_SEED` to replay
/// a failure, or many more with `STARLING_SIM_LONG=1`.
public enum SimulationSeeds {
    public static func seeds(ci: [UInt64], long: Int = 200) -> [UInt64] {
        if let s = environment("STARLING_SIM_SEED"), let seed = UInt64(s) { return [seed] }
        if environment("STARLING_SIM_LONG") == "1" {
            var r = Xoshiro256(seed: 0x5EED)
            return ci + (0..<long).map { _ in r.next() }
        }
        return ci
    }

    public static var isLong: Bool { environment("STARLING_SIM_LONG") == "1" }

    static func environment(_ name: String) -> String? {
        guard let p = getenv(name) else { return nil }
        return String(cString: p)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
