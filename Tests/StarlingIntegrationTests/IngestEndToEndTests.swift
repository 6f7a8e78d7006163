import Foundation
import StarlingCompression
import StarlingProto
import StarlingTestKit
import SwiftProtobuf
import Testing

/// Writes through every ingest protocol of a real node and reads the data back through the read
/// API; then the kill -9 durability test.
@Suite(.serialized) struct IngestEndToEndTests {
    static func seriesList(_ node: TestNode, _ selector: String, token: String = TestNode.adminToken) async throws -> [[String: String]] {
        let r = try await node.request(.GET, "/api/v1/series?match%5B%5D=" + q(selector), token: token)
        try #require(r.status == 200, "\(r.status) \(r.text)")
        return r.json["data"] as? [[String: String]] ?? []
    }

    func createToken(_ node: TestNode, name: String, role: String, labels: [String: String] = [:]) async throws -> String {
        let body = try JSONSerialization.data(withJSONObject: ["name": name, "role": role, "labels": labels])
        let r = try await node.request(.POST, "/api/v1/admin/tokens", body: Array(body), headers: [("Content-Type", "application/json")])
        try #require(r.status == 201, "\(r.text)")
        return try #require((r.json["data"] as? [String: Any])?["token"] as? String)
    }

    @Test func everyProtocolWritesAndReadsBack() async throws {
        let node = TestNode(name: "ingest", extraArgs: ["--set", "node.labels=dc=test1"])
        defer { node.stop() }
        try await withLogsOnFailure([node.process]) {
            try await node.start()
            let writer = try await createToken(node, name: "agent", role: "writer", labels: ["agent": "e2e"])
            let reader = try await createToken(node, name: "dash", role: "reader")
            let nowMs = Int64(Date().timeIntervalSince1970 * 1000)

            // Influx v2 with seconds precision, gzip-compressed.
            let lines = "weather,city=oslo temp=3.5,hum=81i \(nowMs / 1000)\nweather,city=rome temp=17 \(nowMs / 1000)\n"
            let v2 = try await node.request(
                .POST, "/api/v2/write?bucket=b1&precision=s", token: writer, body: Gzip.encode(Array(lines.utf8)),
                headers: [("Content-Encoding", "gzip")])
            try #require(v2.status == 204, "\(v2.text)")

            // Influx v1 with a db and a partly bad batch: the good line is stored, the 400 names the bad one.
            let v1 = try await node.request(.POST, "/write?db=legacy&precision=ms", token: writer, body: Array("load,host=x v=1 \(nowMs)\nload,host=y v=oops \(nowMs)\n".utf8))
            try #require(v1.status == 400)
            let errors = v1.json["errors"] as? [[String: Any]] ?? []
            try #require(errors.first?["line"] as? Int == 2, "\(v1.text)")
            try #require(errors.first?["reason"] as? String == "invalid_value", "\(v1.text)")

            // Remote write 1.0: protobuf + snappy.
            var req = Prometheus_WriteRequest()
            var ts = Prometheus_TimeSeries()
            ts.labels = [.with { $0.name = "__name__"; $0.value = "rw_metric" }, .with { $0.name = "job"; $0.value = "rw" }]
            ts.samples = [.with { $0.value = 42; $0.timestamp = nowMs }, .with { $0.value = 43; $0.timestamp = nowMs + 1000 }]
            req.timeseries = [ts]
            let rw = try await node.request(
                .POST, "/api/v1/write", token: writer, body: Snappy.encode(try req.serializedBytes() as [UInt8]),
                headers: [("Content-Type", "application/x-protobuf"), ("Content-Encoding", "snappy"), ("X-Prometheus-Remote-Write-Version", "0.1.0")])
            try #require(rw.status == 204, "\(rw.text)")

            // JSON import.
            let imp = #"{"metric":{"__name__":"imported","k":"v"},"values":[1,2,3],"timestamps":[\#(nowMs - 2000),\#(nowMs - 1000),\#(nowMs)]}"#
            let ji = try await node.request(.POST, "/api/v1/import", token: writer, body: Array(imp.utf8))
            try #require(ji.status == 204, "\(ji.text)")

            // Read back: series with enrichment (node label dc fills in, token label agent overrides).
            let weather = try await Self.seriesList(node, "{__name__=~\"weather_.*\"}", token: reader)
            try #require(weather.count == 3, "\(weather)")
            try #require(weather.allSatisfy { $0["dc"] == "test1" && $0["agent"] == "e2e" && $0["db"] == "b1" })
            try #require(Set(weather.compactMap { $0["__name__"] }) == ["weather_temp", "weather_hum"])
            let load = try await Self.seriesList(node, "load_v", token: reader)
            try #require(load.map { $0["host"] } == ["x"] && load.first?["db"] == "legacy")
            try #require(try await Self.seriesList(node, "rw_metric{job=\"rw\"}", token: reader).count == 1)
            try #require(try await Self.seriesList(node, "imported", token: reader).count == 1)

            // Samples read back through export, as written.
            let exported = try await node.request(.GET, "/api/v1/export?match%5B%5D=" + q("{__name__=~\"rw_metric|imported\"}"), token: reader)
            try #require(exported.status == 200, "\(exported.text)")
            let exportedLines = exported.text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            try #require(exportedLines.count == 2, "\(exported.text)")
            try #require(exportedLines[0]["values"] as? [Double] == [1, 2, 3] && exportedLines[0]["timestamps"] as? [Int64] == [nowMs - 2000, nowMs - 1000, nowMs], "\(exported.text)")
            try #require(exportedLines[1]["values"] as? [Double] == [42, 43] && exportedLines[1]["timestamps"] as? [Int64] == [nowMs, nowMs + 1000], "\(exported.text)")

            let names = try await node.request(.GET, "/api/v1/label/__name__/values", token: reader)
            let values = names.json["data"] as? [String] ?? []
            try #require(["imported", "load_v", "rw_metric", "weather_hum", "weather_temp"].allSatisfy(values.contains), "\(values)")
            let labels = try await node.request(.GET, "/api/v1/labels?match%5B%5D=rw_metric", token: reader)
            try #require(labels.json["data"] as? [String] == ["__name__", "agent", "dc", "job"], "\(labels.text)")

            // Writers cannot read, readers cannot write.
            try #require(try await node.request(.GET, "/api/v1/labels", token: writer).status == 403)
            try #require(try await node.request(.POST, "/api/v1/import", token: reader, body: Array(imp.utf8)).status == 403)

            // Metrics count samples per protocol and rejections per reason.
            let m = try await node.request(.GET, "/metrics", token: reader).text
            try #require(m.contains("starling_ingest_samples_total{protocol=\"remote_write\"} 2"), "\(m)")
            try #require(m.contains("starling_ingest_rejected_samples_total{protocol=\"influx\",reason=\"invalid_value\"} 1"))
            try #require(m.contains("starling_storage_series "))
        }
    }

    @Test func oversizedAndUndecodableBodiesAreRefusedWhole() async throws {
        let node = TestNode(name: "limits", extraArgs: ["--set", "http.max_body_bytes=2KiB", "--set", "ingest.max_decoded_body_bytes=4KiB"])
        defer { node.stop() }
        try await withLogsOnFailure([node.process]) {
            try await node.start()
            let big = Array(repeating: UInt8(ascii: "a"), count: 3000)
            let r1 = try await node.request(.POST, "/api/v1/import", body: big)
            try #require(r1.status == 413, "\(r1.status) \(r1.text)")
            // 40 KiB of line protocol gzips to well under 2 KiB but expands past 4 KiB.
            let bomb = Gzip.encode(Array(String(repeating: "m v=1\n", count: 7000).utf8))
            try #require(bomb.count < 2048)
            let r2 = try await node.request(.POST, "/api/v2/write", body: bomb, headers: [("Content-Encoding", "gzip")])
            try #require(r2.status == 413, "\(r2.status) \(r2.text)")
            try #require((r2.json["errors"] as? [[String: Any]])?.first?["reason"] as? String == "body_too_large")
            let r3 = try await node.request(.POST, "/api/v2/write", body: [1, 2, 3], headers: [("Content-Encoding", "br")])
            try #require(r3.status == 415, "\(r3.status) \(r3.text)")
            let r4 = try await node.request(.POST, "/api/v1/write", body: [0xFF, 0xFF, 0xFF])
            try #require(r4.status == 400, "\(r4.status) \(r4.text)")
            let m = try await node.request(.GET, "/metrics").text
            try #require(m.contains("starling_ingest_rejected_samples_total{protocol=\"influx\",reason=\"body_too_large\"} 1"), "\(m)")
        }
    }

    /// Concurrent writers record every acknowledged write; the node is killed with SIGKILL while
    /// they write, restarted, and every acknowledged series must be there. Each write creates
    /// new series (label `seq`), so the check covers series records, index and samples.
    @Test func killNineLosesNoAcknowledgedWrite() async throws {
        let node = TestNode(name: "durability")
        defer { node.stop() }
        try await withLogsOnFailure([node.process]) {
            try await node.start()
            let writers = 4
            let perBatch = 5
            let nowS = Int64(Date().timeIntervalSince1970)
            let acknowledged = AckLog()

            try await withThrowingTaskGroup(of: Void.self) { group in
                for w in 0..<writers {
                    group.addTask {
                        var seq = 0
                        while true {
                            var body = ""
                            for i in 0..<perBatch {
                                body += "durability,writer=w\(w),seq=s\(seq + i) value=\(seq + i) \(nowS)\n"
                            }
                            guard let r = try? await node.request(.POST, "/api/v2/write?precision=s", body: Array(body.utf8)) else {
                                return  // the node is gone: this batch was never acknowledged
                            }
                            if r.status == 204 { await acknowledged.add(w, seq..<seq + perBatch) }
                            seq += perBatch
                        }
                    }
                }
                // Kill mid-stream once a good amount has been acknowledged.
                group.addTask {
                    while await acknowledged.count < 400 { try await Task.sleep(for: .milliseconds(10)) }
                    try await node.process.kill9()
                }
                try await group.waitForAll()
            }
            let acked = await acknowledged.all
            try #require(acked.count >= 400)

            let offset = node.process.logOffset
            try await node.start()
            let recovered = try await node.process.waitForLog(["storage recovered"], afterOffset: offset)
            let recoveryMs = try #require(NodeProcess.logfmtValue("recovery_ms", in: recovered).flatMap(Int.init))
            print("durability: \(acked.count) acknowledged series before kill -9; recovery took \(recoveryMs) ms (\(recovered))")

            let stored = try await Self.seriesList(node, "durability_value")
            let have = Set(stored.map { "\($0["writer"]!)/\($0["seq"]!)" })
            let missing = acked.filter { !have.contains($0) }
            try #require(missing.isEmpty, "\(missing.count) acknowledged series lost after kill -9, e.g. \(missing.prefix(5))")

            // And every acknowledged sample reads back with its value, through the export API.
            let export = try await node.request(.GET, "/api/v1/export?match%5B%5D=durability_value")
            try #require(export.status == 200, "\(export.status) \(export.text)")
            var values: [String: [Double]] = [:]
            for line in export.text.split(separator: "\n") {
                let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                let metric = try #require(obj["metric"] as? [String: String])
                values["\(metric["writer"]!)/\(metric["seq"]!)"] = obj["values"] as? [Double]
            }
            for key in acked {
                let seq = Double(key.split(separator: "/s").last.flatMap { Int($0) } ?? -1)
                try #require(values[key] == [seq], "sample of \(key) read back as \(values[key] ?? [])")
            }
        }
    }
}

/// Acknowledged writes, shared by the writer tasks.
actor AckLog {
    private var keys: [String] = []
    func add(_ writer: Int, _ seqs: Range<Int>) {
        for s in seqs { keys.append("w\(writer)/s\(s)") }
    }
    var count: Int { keys.count }
    var all: [String] { keys }
}
