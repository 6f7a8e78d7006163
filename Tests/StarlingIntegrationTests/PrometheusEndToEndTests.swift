import Foundation
import StarlingTestKit
import Testing

/// A real Prometheus (Debian package `prometheus`) scrapes the node's `/metrics` with a bearer
/// token and remote-writes what it scraped back to the node; the series must appear in
/// Starling's read API. This is the README's "done" scenario, automated.
@Suite(.serialized) struct PrometheusEndToEndTests {
    static let prometheusBinary: String? = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    @Test(.enabled(if: prometheusBinary != nil, "the prometheus binary is not installed (apt-get install prometheus; scripts/test does)"))
    func prometheusScrapesAndRemoteWritesIntoStarling() async throws {
        let node = TestNode(name: "prom-target")
        defer { node.stop() }
        try await node.start()
        let body = try JSONSerialization.data(withJSONObject: ["name": "prometheus", "role": "writer"])
        let created = try await node.request(.POST, "/api/v1/admin/tokens", body: Array(body), headers: [("Content-Type", "application/json")])
        let token = try #require((created.json["data"] as? [String: Any])?["token"] as? String)
        let target = node.baseURL.replacingOccurrences(of: "http://", with: "")

        let dir = NodeProcess.temporaryDirectory("prometheus")
        let config = """
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: starling
                authorization:
                  credentials: \(token)
                static_configs:
                  - targets: ["\(target)"]
            remote_write:
              - url: \(node.baseURL)/api/v1/write
                bearer_token: \(token)
                queue_config:
                  batch_send_deadline: 1s
                  max_backoff: 1s
            """
        try config.write(toFile: dir + "/prometheus.yml", atomically: true, encoding: .utf8)
        let prometheus = NodeProcess(
            name: "prometheus", executable: Self.prometheusBinary!,
            arguments: [
                "--config.file=\(dir)/prometheus.yml", "--storage.tsdb.path=\(dir)/data",
                "--web.listen-address=127.0.0.1:0", "--log.level=info",
            ],
            dataDir: dir)
        defer { prometheus.cleanup() }

        try await withLogsOnFailure([node.process, prometheus]) {
            try prometheus.start()
            // Poll Starling until Prometheus's scrape of it has come back through remote write.
            let deadline = ContinuousClock.now + .seconds(120)
            var found: [[String: String]] = []
            while ContinuousClock.now < deadline {
                found = try await IngestEndToEndTests.seriesList(node, "{job=\"starling\"}")
                let names = Set(found.compactMap { $0["__name__"] })
                if names.contains("up") && names.contains("starling_http_requests_total") && names.contains("scrape_duration_seconds") {
                    break
                }
                try await Task.sleep(for: .milliseconds(250))
            }
            let names = Set(found.compactMap { $0["__name__"] })
            try #require(names.contains("up"), "Prometheus's series never arrived; saw \(names.sorted())")
            try #require(names.contains("starling_http_requests_total"))
            try #require(found.allSatisfy { $0["instance"] == target })
            // Both the scrape and the remote write authenticated: nothing was refused.
            let metrics = try await node.request(.GET, "/metrics").text
            try #require(!metrics.contains("starling_http_auth_failures_total"), "auth failures:\n\(metrics)")
            try #require(metrics.contains("starling_ingest_requests_total{protocol=\"remote_write\",outcome=\"ok\"}"))
        }
    }
}
