import StarlingMembership

/// The experiments behind the figures in docs/benchmarks.md ("Membership"). Each is a pure function of its
/// inputs (including the seed), so the published numbers can be reproduced exactly with
/// `swift run -c release starling-swim-sim …`.
public enum Figures {
    public struct Detection: Sendable {
        public var nodeCount: Int
        public var seed: UInt64
        /// From the kill to the first suspicion anywhere.
        public var firstSuspectMs: Int64?
        /// From the kill until every live node had suspected (or already declared dead) the victim.
        public var suspectedByAllMs: Int64?
        /// From the kill until every live node had declared the victim dead.
        public var deadEverywhereMs: Int64?
        public var falseDeaths: Int
    }

    /// Starts `n` converged nodes, lets them run `warmupMs` (plus a seed-dependent offset so the
    /// kill does not align with probe rounds), kills one, and runs until all others declare it
    /// dead (at most `limitMs`).
    public static func detection(nodeCount n: Int, seed: UInt64, settings: SWIMSettings = .lan,
                                 network: Simulation.Network = .init(), warmupMs: Int64 = 5_000,
                                 limitMs: Int64 = 180_000) -> Detection {
        var config = Simulation.Config(nodeCount: n, seed: seed)
        config.settings = settings
        config.network = network
        config.startConverged = true
        let sim = Simulation(config)
        var r = Xoshiro256(seed: seed ^ 0xDEAD)
        let victim = Int(r.next() % UInt64(n))
        let killAt = warmupMs + Int64(r.next() % UInt64(settings.probeIntervalMs))
        sim.run(untilMs: killAt)
        sim.kill(victim)
        let victimID = sim.nodes[victim].id
        sim.run(untilMs: killAt + limitMs, checkEveryMs: n > 50 ? 100 : 0) { $0.isDeclaredDeadByAll(victim) }

        var firstSuspicion: [Int: Int64] = [:]
        var death: [Int: Int64] = [:]
        for o in sim.observations where o.timeMs >= killAt && o.change.member.id == victimID {
            switch o.change.kind {
            case .suspect, .dead:
                if firstSuspicion[o.observer] == nil { firstSuspicion[o.observer] = o.timeMs - killAt }
                if o.change.kind == .dead && death[o.observer] == nil { death[o.observer] = o.timeMs - killAt }
            default: break
            }
        }
        let observers = sim.liveIndices.filter { $0 != victim }
        let all = observers.count
        return Detection(
            nodeCount: n, seed: seed,
            firstSuspectMs: firstSuspicion.values.min(),
            suspectedByAllMs: firstSuspicion.count == all ? firstSuspicion.values.max() : nil,
            deadEverywhereMs: death.count == all ? death.values.max() : nil,
            falseDeaths: sim.deathsOfRunningNodes.count)
    }

    public struct FalsePositives: Sendable {
        public var nodeCount: Int
        public var seed: UInt64
        public var lossRate: Double
        public var durationMs: Int64
        /// Live members declared dead (by any observer).
        public var falseDeaths: Int
        /// Suspicions started by a node's own failed probe.
        public var suspicionsStarted: UInt64
        /// Times a node refuted a suspicion about itself.
        public var selfRefutations: UInt64
        /// Suspect → alive transitions seen by observers.
        public var refutationsObserved: UInt64
        public var probesFailed: UInt64
        public var probesSent: UInt64
    }

    /// Runs `n` converged nodes for `durationMs` with `lossRate` loss on every datagram.
    public static func falsePositives(nodeCount n: Int, seed: UInt64, lossRate: Double, durationMs: Int64,
                                      settings: SWIMSettings = .lan) -> FalsePositives {
        var config = Simulation.Config(nodeCount: n, seed: seed)
        config.settings = settings
        config.network.lossRate = lossRate
        config.startConverged = true
        let sim = Simulation(config)
        sim.run(untilMs: durationMs)
        let t = sim.totalStats
        return FalsePositives(nodeCount: n, seed: seed, lossRate: lossRate, durationMs: durationMs,
                              falseDeaths: sim.deathsOfRunningNodes.count,
                              suspicionsStarted: t.suspicionsStartedLocally, selfRefutations: t.selfRefutations,
                              refutationsObserved: t.suspicionsRefuted, probesFailed: t.probesFailed, probesSent: t.probesSent)
    }

    public struct Dissemination: Sendable {
        public var nodeCount: Int
        public var seed: UInt64
        /// Time from the update until the last node learned it.
        public var msToAll: Int64?
        /// `msToAll` in gossip intervals.
        public var gossipRounds: Double?
        /// Times the update was put on the wire, in total.
        public var transmissions: Int
        /// Bytes of the update entry on the wire, summed over transmissions, per node.
        public var updateBytesPerNode: Double
        /// All bytes sent by all nodes between the update and full reach, per node (includes
        /// the probing that goes on regardless).
        public var totalBytesPerNode: Double
        /// The transmit limit `retransmitMultiplier × ceil(log10(n+1))` that bounds each node.
        public var retransmitLimit: Int
    }

    /// One node announces new metadata; measures how long and how many bytes until all know.
    public static func dissemination(nodeCount n: Int, seed: UInt64, settings: SWIMSettings = .lan,
                                     limitMs: Int64 = 60_000) -> Dissemination {
        var config = Simulation.Config(nodeCount: n, seed: seed)
        config.settings = settings
        config.startConverged = true
        let sim = Simulation(config)
        sim.run(untilMs: 3_000)
        let origin = 0
        let originID = sim.nodes[origin].id
        var transmissions = 0
        var updateBytes = 0
        var totalBytes = 0
        var newIncarnation: UInt64 = 0
        sim.onSend = { _, _, packet, size in
            totalBytes += size
            for u in packet.updates {
                if case .alive(let a) = u, a.id == originID, a.incarnation == newIncarnation {
                    transmissions += 1
                    updateBytes += SWIMCodec.encodedSize(u)
                }
            }
        }
        var meta = sim.nodes[origin].swim.myself.metadata
        meta.zone = "moved"
        let start = sim.nowMs
        newIncarnation = sim.nodes[origin].swim.myself.incarnation + 1
        var informed = Set<Int>([origin])
        var lastAt = start
        sim.onObservation = { o in
            if o.change.kind == .metadataChanged && o.change.member.id == originID && o.change.member.metadata.zone == "moved" {
                if informed.insert(o.observer).inserted { lastAt = o.timeMs }
            }
        }
        sim.schedule(at: start) { s in
            s.command(origin) { $0.updateMetadata(meta, nowMs: $1) }
        }
        let reached = sim.run(untilMs: start + limitMs, checkEveryMs: 10) { _ in informed.count == n }
        let ms = reached ? lastAt - start : nil
        return Dissemination(nodeCount: n, seed: seed, msToAll: ms,
                             gossipRounds: ms.map { Double($0) / Double(settings.gossipIntervalMs) },
                             transmissions: transmissions, updateBytesPerNode: Double(updateBytes) / Double(n),
                             totalBytesPerNode: Double(totalBytes) / Double(n),
                             retransmitLimit: settings.retransmitLimit(memberCount: n))
    }
}
