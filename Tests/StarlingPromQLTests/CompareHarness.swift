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
        let engine = Engine()
        var out: [UInt8] = []
        for q in queries {
            let id = (q["id"] as! NSNumber).intValue
            let text = q["query"] as! String
            var response: [UInt8]
            do {
                let r: QueryResult<PromValue>
                if q["kind"] as! String == "instant" {
                    r = try await engine.instantQuery(text, timeMs: (q["time"] as! NSNumber).int64Value, querier: querier)
                } else {
                    r = try await engine.rangeQuery(
                        text, startMs: (q["start"] as! NSNumber).int64Value, endMs: (q["end"] as! NSNumber).int64Value,
                        stepMs: (q["step"] as! NSNumber).int64Value, querier: querier)
                }
                response = PrometheusJSON.queryResponse(r.value, warnings: r.warnings)
            } catch {
                response = PrometheusJSON.errorResponse(type: error.errorType, message: error.description)
            }
            out.append(contentsOf: #"{"id":\#(id),"response":"#.utf8)
            out.append(contentsOf: response)
            out.append(contentsOf: "}\n".utf8)
        }
        try Data(out).write(to: dir.appendingPathComponent("starling-results.jsonl"))
    }
}
