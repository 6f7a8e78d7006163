import StarlingAlerting
import StarlingCore
import StarlingPromQL
import StarlingTestKit
import Synchronization
import Testing

/// A group's output is written once per evaluation, except that what is pending is written
/// before a rule that may read it, so later rules see earlier results as in Prometheus.
@Suite struct RuleWriteBatchingTests {
    final class Recorder: Sendable {
        let storage = MemoryQuerier()
        /// Metric names of each write, in order.
        let writes = Mutex<[[String]]>([])
        let failing = Mutex(false)

        var query: @Sendable (String, Int64) async throws -> [(Labels, Double)] {
            let storage = self.storage
            return { expr, t in
                let r = try await Engine().instantQuery(expr, timeMs: t, querier: storage)
                guard case .vector(let v) = r.value else { return [] }
                return v.map { ($0.labels, $0.value) }
            }
        }

        var write: @Sendable ([SeriesSamples]) async throws -> Void {
            { [self] series in
                if failing.withLock({ $0 }) { throw RuleEvaluationError(message: "replicas unavailable") }
                writes.withLock { $0.append(Array(Set(series.compactMap(\.labels.metricName))).sorted()) }
                for s in series { storage.add(s.labels, s.samples) }
            }
        }
    }

    /// A recorder whose storage holds `m{k="1"} = 5` at time 0.
    static func recorder() -> Recorder {
        let r = Recorder()
        r.storage.add(Labels(["__name__": "m", "k": "1"]), [Sample(0, 5)])
        return r
    }

    /// One evaluation at 1 s of a group of `rules`: its state afterwards and the alerts to send.
    static func evaluate(_ rules: [RuleSpec], _ r: Recorder) async -> (RuleGroupState, [RuleAlert]) {
        var state = RuleGroupState(spec: RuleGroupSpec(name: "g", source: "test", rules: rules))
        let toSend = await state.evaluate(nowMs: 1_000, intervalMs: 1_000, query: r.query, write: r.write)
        return (state, toSend)
    }

    @Test func unrelatedRulesShareOneWrite() async throws {
        let r = Self.recorder()
        let (state, _) = await Self.evaluate([
            .alerting(AlertingRuleSpec(name: "A", expr: "m > 1")),
            .alerting(AlertingRuleSpec(name: "B", expr: "m > 2")),
            .recording(RecordingRuleSpec(record: "m:sum", expr: "sum(m)")),
        ], r)
        #expect(r.writes.withLock { $0 } == [["ALERTS", "ALERTS_FOR_STATE", "m:sum"]])
        #expect(state.health.allSatisfy { $0.status == .ok })
    }

    @Test func aRuleReadingPendingOutputSeesIt() async throws {
        let r = Self.recorder()
        let (state, toSend) = await Self.evaluate([
            .recording(RecordingRuleSpec(record: "m:doubled", expr: "m * 2")),
            .alerting(AlertingRuleSpec(name: "Unrelated", expr: "m > 100")),
            .alerting(AlertingRuleSpec(name: "High", expr: "m:doubled > 8")),
            .recording(RecordingRuleSpec(record: "firing:count", expr: "count(ALERTS)")),
        ], r)
        // m:doubled is written before High reads it; High's ALERTS before count(ALERTS).
        #expect(r.writes.withLock { $0 } == [["m:doubled"], ["ALERTS", "ALERTS_FOR_STATE"], ["firing:count"]])
        #expect(toSend.map { $0.labels.get("alertname") } == ["High"])
        #expect(state.health.allSatisfy { $0.status == .ok }, "\(state.health)")
    }

    @Test func aSelectorWithoutANameSeesPendingOutput() async throws {
        let r = Self.recorder()
        _ = await Self.evaluate([
            .alerting(AlertingRuleSpec(name: "A", expr: "m > 1")),
            .recording(RecordingRuleSpec(record: "firing", expr: "count({alertstate=\"firing\"})")),
            .recording(RecordingRuleSpec(record: "named", expr: "count(m{k=\"1\"})")),
        ], r)
        #expect(r.writes.withLock { $0 } == [["ALERTS", "ALERTS_FOR_STATE"], ["firing", "named"]])
        let firing = try await r.query("firing", 1_000)
        #expect(firing.map(\.1) == [1])
    }

    @Test func aFailedWriteFailsTheRulesItCarried() async throws {
        let r = Self.recorder()
        r.failing.withLock { $0 = true }
        let (state, _) = await Self.evaluate([
            .alerting(AlertingRuleSpec(name: "A", expr: "m > 1")),
            .alerting(AlertingRuleSpec(name: "Quiet", expr: "m > 100")),
        ], r)
        #expect(state.health[0].status == .err)
        #expect(state.health[0].lastError?.contains("replicas unavailable") == true)
        // Quiet had nothing to write: the failed write was not its.
        #expect(state.health[1].status == .ok)
    }
}
