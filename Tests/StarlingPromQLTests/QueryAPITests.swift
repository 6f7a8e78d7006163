import StarlingCore
import Synchronization
import Testing

@testable import StarlingPromQL
@testable import StarlingTestKit

@Suite struct QueryAPITests {
    static let querier: MemoryQuerier = {
        let q = MemoryQuerier()
        q.add(Labels(["__name__": "up", "job": "a"]), (0...20).map { Sample(1_700_000_000_000 + Int64($0) * 60_000, 1) })
        return q
    }()

    static func body(_ r: PrometheusQueryAPI.Response) -> String { String(decoding: r.body, as: UTF8.self) }

    @Test func instantQueryAtTime() async {
        let api = PrometheusQueryAPI(engine: Engine())
        let r = await api.query(FormParameters([("query", "up"), ("time", "1700000600.5")]), nowMs: 0, querier: Self.querier, clock: ContinuousClock())
        #expect(r.status == 200)
        #expect(Self.body(r) == #"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1700000600.500,"1"]}]}}"#)
    }

    @Test func timeDefaultsToNowAndAcceptsRFC3339() async {
        let api = PrometheusQueryAPI(engine: Engine())
        let now = await api.query(FormParameters([("query", "time()")]), nowMs: 1_700_000_123_456, querier: Self.querier, clock: ContinuousClock())
        #expect(Self.body(now) == #"{"status":"success","data":{"resultType":"scalar","result":[1700000123.456,"1700000123.456"]}}"#)
        #expect(parseAPITime("2023-11-14T22:13:20Z") == 1_700_000_000_000)
        #expect(parseAPITime("2023-11-14T23:13:20.25+01:00") == 1_700_000_000_250)
        #expect(parseAPITime("2024-02-30T00:00:00Z") == nil)
        #expect(parseAPITime("1700000000.0004") == 1_700_000_000_000)
        #expect(parseAPITime("-1.5") == -1500)
    }

    @Test func parameterErrors() async {
        let api = PrometheusQueryAPI(engine: Engine())
        let badTime = await api.query(FormParameters([("query", "up"), ("time", "yesterday")]), nowMs: 0, querier: Self.querier, clock: ContinuousClock())
        #expect(badTime.status == 400)
        #expect(Self.body(badTime) == #"{"status":"error","errorType":"bad_data","error":"invalid parameter \"time\": Invalid time value for 'time': cannot parse \"yesterday\" to a valid timestamp"}"#)
        let parse = await api.query(FormParameters([("query", "up{")]), nowMs: 0, querier: Self.querier, clock: ContinuousClock())
        #expect(Self.body(parse).contains(#""error":"invalid parameter \"query\": 1:4: parse error: unexpected end of input inside braces""#))
        let noStep = await api.queryRange(FormParameters([("query", "up"), ("start", "0"), ("end", "60")]), querier: Self.querier, clock: ContinuousClock())
        #expect(Self.body(noStep).contains(#"invalid parameter \"step\": cannot parse \"\" to a valid duration"#))
        let reversed = await api.queryRange(FormParameters([("query", "up"), ("start", "60"), ("end", "0"), ("step", "1")]), querier: Self.querier, clock: ContinuousClock())
        #expect(Self.body(reversed).contains("end timestamp must not be before start time"))
        let matrix = await api.queryRange(FormParameters([("query", "up[5m]"), ("start", "0"), ("end", "60"), ("step", "1m")]), querier: Self.querier, clock: ContinuousClock())
        #expect(matrix.status == 400)
        #expect(Self.body(matrix).contains(#"invalid expression type \"range vector\" for range query"#))
    }

    @Test func executionErrorsAre422() async {
        let api = PrometheusQueryAPI(engine: Engine())
        let r = await api.query(FormParameters([("query", #"label_replace(up, "x", "y", "job", "(")"#), ("time", "1700000000")]), nowMs: 0, querier: Self.querier, clock: ContinuousClock())
        #expect(r.status == 422)
        #expect(Self.body(r).contains(#""errorType":"execution""#))
    }

    @Test func firstFormValueWins() {
        let p = FormParameters([("query", "a"), ("query", "b"), ("time", "1")])
        #expect(p["query"] == "a" && p["time"] == "1" && p["step"] == nil)
    }

    @Test func formatQuery() {
        let api = PrometheusQueryAPI(engine: Engine())
        #expect(Self.body(api.formatQuery(FormParameters([("query", "sum(x) by (job)")]))) == #"{"status":"success","data":"sum by (job) (x)"}"#)
        let long = "sum by (instance) (rate(some_quite_long_metric_name_total{job=\"api\"}[5m])) / sum by (instance) (rate(another_metric_total[5m]))"
        #expect(Self.body(api.formatQuery(FormParameters([("query", long)]))).contains(#"\n/\n"#))
        #expect(api.formatQuery(FormParameters([("query", "sum(")])).status == 400)
    }

    /// The `timeout` parameter (or the engine's timeout) cancels a query on the injected clock:
    /// 503 with Prometheus's text.
    @Test func timeoutIs503() async {
        final class SlowQuerier: Querier, Sendable {
            let clock: ManualTestClock
            let calls = Mutex(0)
            init(_ c: ManualTestClock) { clock = c }
            func select(_ m: [LabelMatcher], hints: SelectHints) async throws -> any SeriesSet {
                // The first selection takes "a minute": the query's timer fires meanwhile. Later
                // ones return at once (the timer has nothing left to wait for).
                if calls.withLock({ $0 += 1; return $0 }) == 1 {
                    await clock.advanceWhenWaiting(by: .seconds(60))
                }
                return ArraySeriesSet([])
            }
            func series(_ m: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[Labels]> { QueryResult([]) }
            func labelNames(_ m: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[String]> { QueryResult([]) }
            func labelValues(_ n: String, _ m: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[String]> { QueryResult([]) }
        }
        let clock = ManualTestClock()
        let engine = Engine()
        let api = PrometheusQueryAPI(engine: engine)
        let r = await api.query(FormParameters([("query", "up + up"), ("time", "1"), ("timeout", "10s")]), nowMs: 0, querier: SlowQuerier(clock), clock: clock)
        #expect(r.status == 503)
        #expect(Self.body(r) == #"{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}"#)
        #expect(engine.metrics.limitHits["timeout", default: 0] >= 1)
    }
}
