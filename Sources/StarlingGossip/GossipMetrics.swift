import Metrics
import StarlingMembership

/// Membership metrics (swift-metrics API; the node bootstraps the Prometheus backend). Counters
/// mirror `SWIMStats`: after each call into the instance the shell adds the difference since the
/// previous read. Names are documented in docs/membership.md.
struct GossipMetrics {
    let members: [MemberStatus: Gauge]
    let health: Gauge
    let probes: Counter
    let probesFailed: Counter
    let pingReqs: Counter
    let nacksReceived: Counter
    let suspicions: Counter
    let suspicionsLocal: Counter
    let refuted: Counter
    let selfRefutations: Counter
    let deaths: Counter
    let datagramsSent: Counter
    let bytesSent: Counter
    let datagramsReceived: Counter
    let bytesReceived: Counter
    let datagramBytes: Recorder
    let updatesSent: Counter
    let dropped: [String: Counter]
    let pushPull: [String: Counter]
    let udpRebinds: Counter

    init() {
        var m: [MemberStatus: Gauge] = [:]
        for s in MemberStatus.allCases { m[s] = Gauge(label: "starling_gossip_members", dimensions: [("status", s.description)]) }
        members = m
        health = Gauge(label: "starling_gossip_health_multiplier")
        probes = Counter(label: "starling_gossip_probes_total")
        probesFailed = Counter(label: "starling_gossip_probes_failed_total")
        pingReqs = Counter(label: "starling_gossip_ping_reqs_total")
        nacksReceived = Counter(label: "starling_gossip_nacks_received_total")
        suspicions = Counter(label: "starling_gossip_suspicions_total")
        suspicionsLocal = Counter(label: "starling_gossip_suspicions_started_total")
        refuted = Counter(label: "starling_gossip_suspicions_refuted_total")
        selfRefutations = Counter(label: "starling_gossip_self_refutations_total")
        deaths = Counter(label: "starling_gossip_deaths_total")
        datagramsSent = Counter(label: "starling_gossip_datagrams_sent_total")
        bytesSent = Counter(label: "starling_gossip_sent_bytes_total")
        datagramsReceived = Counter(label: "starling_gossip_datagrams_received_total")
        bytesReceived = Counter(label: "starling_gossip_received_bytes_total")
        datagramBytes = Recorder(label: "starling_gossip_datagram_bytes")
        updatesSent = Counter(label: "starling_gossip_updates_sent_total")
        var d: [String: Counter] = [:]
        for r in ["authentication", "malformed", "wrong_cluster", "version", "ping_for_other_node", "relay_limit",
                  "send_error", "inbound_queue_full", "pushpull_limit", "pushpull_frame_too_large", "duplicate_node_id"] {
            d[r] = Counter(label: "starling_gossip_dropped_total", dimensions: [("reason", r)])
        }
        dropped = d
        var p: [String: Counter] = [:]
        for r in ["started", "completed", "failed", "served", "rejected"] {
            p[r] = Counter(label: "starling_gossip_pushpull_total", dimensions: [("result", r)])
        }
        pushPull = p
        udpRebinds = Counter(label: "starling_gossip_udp_rebinds_total")
    }

    func record(from old: SWIMStats, to new: SWIMStats, counts: [MemberStatus: Int], health h: Int) {
        func add(_ c: Counter, _ a: UInt64, _ b: UInt64) { if b > a { c.increment(by: Int64(b - a)) } }
        add(probes, old.probesSent, new.probesSent)
        add(probesFailed, old.probesFailed, new.probesFailed)
        add(pingReqs, old.pingReqsSent, new.pingReqsSent)
        add(nacksReceived, old.nacksReceived, new.nacksReceived)
        add(suspicions, old.suspicionsRaised, new.suspicionsRaised)
        add(suspicionsLocal, old.suspicionsStartedLocally, new.suspicionsStartedLocally)
        add(refuted, old.suspicionsRefuted, new.suspicionsRefuted)
        add(selfRefutations, old.selfRefutations, new.selfRefutations)
        add(deaths, old.membersDeclaredDead, new.membersDeclaredDead)
        add(datagramsSent, old.datagramsSent, new.datagramsSent)
        add(bytesSent, old.bytesSent, new.bytesSent)
        add(datagramsReceived, old.datagramsReceived, new.datagramsReceived)
        add(bytesReceived, old.bytesReceived, new.bytesReceived)
        add(updatesSent, old.updatesSent, new.updatesSent)
        add(dropped["authentication"]!, old.authenticationFailures, new.authenticationFailures)
        add(dropped["malformed"]!, old.malformed, new.malformed)
        add(dropped["wrong_cluster"]!, old.wrongCluster, new.wrongCluster)
        add(dropped["version"]!, old.unsupportedVersion, new.unsupportedVersion)
        add(dropped["ping_for_other_node"]!, old.pingsForOtherNode, new.pingsForOtherNode)
        add(dropped["relay_limit"]!, old.relaysDroppedAtLimit, new.relaysDroppedAtLimit)
        add(dropped["duplicate_node_id"]!, old.duplicateNodeID, new.duplicateNodeID)
        add(pushPull["started"]!, old.pushPullsStarted, new.pushPullsStarted)
        add(pushPull["completed"]!, old.pushPullsCompleted, new.pushPullsCompleted)
        add(pushPull["failed"]!, old.pushPullsFailed, new.pushPullsFailed)
        add(pushPull["served"]!, old.pushPullsServed, new.pushPullsServed)
        add(pushPull["rejected"]!, old.pushPullsRejected, new.pushPullsRejected)
        for (s, g) in members { g.record(counts[s] ?? 0) }
        health.record(h + 1)
    }
}
