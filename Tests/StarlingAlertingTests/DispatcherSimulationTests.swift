import StarlingCore
import StarlingTestKit
import Testing

@testable import StarlingAlerting

/// Seeded simulations of the dispatcher against Alertmanager's promises: every alert that fires
/// long enough is notified, every notified alert's resolution is notified (send_resolved), no
/// notification is empty, and the state drains when everything is over.
@Suite struct DispatcherSimulationTests {
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func everyLongFiringAlertIsNotifiedAndItsResolutionToo(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let config = DispatcherTests.config()  // group_wait 30s, group_interval 5m, repeat 1h
        var d = Dispatcher(config: config)
        let t0: Int64 = 1_700_000_000_000
        struct Planned { let labels: Labels; let startMs: Int64; let endMs: Int64 }
        // Each alert has unique labels, so it never fires twice.
        let plan: [Planned] = (0..<200).map { i in
            let start = t0 + Int64.random(in: 0..<7_200_000, using: &rng) / 1_000 * 1_000
            let dur = Int64.random(in: 60_000..<3_600_000, using: &rng) / 1_000 * 1_000
            return Planned(labels: Labels(["alertname": "A\(i % 5)", "instance": "i\(i)"]), startMs: start, endMs: start + dur)
        }
        var notifiedFiring: Set<AlertFingerprint> = []
        var notifiedResolved: Set<AlertFingerprint> = []
        var now = t0
        let stop = t0 + 7_200_000 + 3_600_000 + 2 * 3_600_000
        while now <= stop {
            // Prometheus-style: every minute, re-send active alerts; send the resolution once.
            if (now - t0) % 60_000 == 0 {
                var batch: [Alert] = []
                for p in plan where p.startMs <= now && now < p.endMs + 60_000 {
                    let ended = now >= p.endMs
                    batch.append(
                        Alert.received(
                            labels: p.labels, startsAtMs: p.startMs, endsAtMs: ended ? p.endMs : nil, nowMs: now, resolveTimeoutMs: 300_000))
                }
                d.receive(batch, nowMs: now)
            }
            if let t = d.nextTickMs, t <= now {
                for x in d.tick(nowMs: now) {
                    #expect(!x.alerts.isEmpty, "seed \(seed): empty notification")
                    notifiedFiring.formUnion(x.firing)
                    notifiedResolved.formUnion(x.resolved)
                    d.onDelivered(x, nowMs: now)
                }
            }
            now += 10_000
        }
        for p in plan {
            let fp = p.labels.alertFingerprint
            if p.endMs - p.startMs >= 30_000 + 300_000 {
                #expect(notifiedFiring.contains(fp), "seed \(seed): \(p.labels) fired \(p.endMs - p.startMs) ms, never notified")
            }
            if notifiedFiring.contains(fp) {
                #expect(notifiedResolved.contains(fp), "seed \(seed): resolution of \(p.labels) never notified")
            }
        }
        d.collectGarbage(nowMs: now)
        #expect(d.groups.isEmpty && d.alerts.isEmpty, "seed \(seed): state did not drain")
    }
}
