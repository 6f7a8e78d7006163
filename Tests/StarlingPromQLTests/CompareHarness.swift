import Foundation
import StarlingCore
import StarlingPromQL
import StarlingTestKit
import Testing

/// The engine side of `scripts/promql-compare.py --engine`: loads the generated data set into a
/// `MemoryQuerier`, answers every query of the query file with the engine, and writes the
/// responses as Prometheus API JSON, one `{"id":…,"response":…}` per line. Runs only when
/// `PROMQL_COMPARE_DIR` names the directory holding `data.json` and `queries.json`.
@Suite struct CompareHarness {
    static let directory = ProcessInfo.processInfo.environment["PROMQL_COMPARE_DIR"]

    @Test(.enabled(if: directory != nil))
    func answerQueries() async throws {
        let dir = URL(fileURLWithPath: Self.directory!)
        let data = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("data.json"))) as! [String: Any]
        let querier = MemoryQuerier()
        for case let s as [String: Any] in data["series"] as! [Any] {
            let labels = Labels(s["labels"] as! [String: String])
            let ts = s["t"] as! [NSNumber]
            let vs = s["v"] as! [String]
            var samples: [Sample] = []
            samples.reserveCapacity(ts.count)
            for (t, v) in zip(ts, vs) {
                samples.append(Sample(t.int64Value, Double(bitPattern: UInt64(v, radix: 16)!)))
            }
            querier.add(labels, samples)
        }
        let queries = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("queries.json"))) as! [[String: Any]]
        // Through the API layer, as an HTTP request would go.
        let api = PrometheusQueryAPI(engine: Engine())
        func seconds(_ ms: Int64) -> String {
            let frac = String(ms % 1000)
            return "\(ms / 1000)." + String(repeating: "0", count: 3 - frac.count) + frac
        }
        var out: [UInt8] = []
        for q in queries {
            let id = (q["id"] as! NSNumber).intValue
            let text = q["query"] as! String
            let response: PrometheusQueryAPI.Response
            if let raw = q["raw"] as? [String: String] {
                let params = FormParameters(raw.map { ($0.key, $0.value) })
                switch q["kind"] as! String {
                case "instant": response = await api.query(params, nowMs: 0, querier: querier, clock: ContinuousClock())
                case "range": response = await api.queryRange(params, querier: querier, clock: ContinuousClock())
                default: response = api.formatQuery(params)
                }
            } else if q["kind"] as! String == "instant" {
                let params = FormParameters([("query", text), ("time", seconds((q["time"] as! NSNumber).int64Value))])
                response = await api.query(params, nowMs: 0, querier: querier, clock: ContinuousClock())
            } else {
                let params = FormParameters([
                    ("query", text), ("start", seconds((q["start"] as! NSNumber).int64Value)),
                    ("end", seconds((q["end"] as! NSNumber).int64Value)), ("step", seconds((q["step"] as! NSNumber).int64Value)),
                ])
                response = await api.queryRange(params, querier: querier, clock: ContinuousClock())
            }
            out.append(contentsOf: #"{"id":\#(id),"response":"#.utf8)
            out.append(contentsOf: response.body)
            out.append(contentsOf: "}\n".utf8)
        }
        try Data(out).write(to: dir.appendingPathComponent("starling-results.jsonl"))
    }
}
