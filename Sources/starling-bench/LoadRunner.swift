import AsyncHTTPClient
import Foundation
import Histogram
import NIOCore

/// Sends pre-encoded requests over `connections` concurrent connections, one request in flight
/// per connection (closed loop, as a remote-write shard or a Telegraf output does), and records
/// per-request latency and accepted samples.
struct LoadRunner {
    struct Target: Sendable {
        var baseURL: String
        var proto: WireProtocol
        var bearerToken: String?
        var gzip: Bool
        var timeout: Duration = .seconds(120)

        var url: String {
            switch proto {
            case .remoteWrite: return baseURL + "/api/v1/write"
            case .influx: return baseURL + "/write?precision=ms"
            }
        }
    }

    struct Outcome: Sendable {
        var requests = 0
        var acceptedSamples = 0
        var failedRequests = 0
        var rejectedSamples = 0
        var firstErrors: [String] = []
        /// Microseconds from sending the request to having read the whole response.
        var latencyUs = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        var elapsedSeconds = 0.0

        mutating func merge(_ o: Outcome) {
            requests += o.requests
            acceptedSamples += o.acceptedSamples
            failedRequests += o.failedRequests
            rejectedSamples += o.rejectedSamples
            for e in o.firstErrors where firstErrors.count < 10 { firstErrors.append(e) }
            latencyUs.add(o.latencyUs)
        }
    }

    /// Where connection `i` sends: `targets[i % targets.count]` (the nodes of a cluster).
    let targets: [Target]
    let client: HTTPClient

    /// Runs every connection's request list to the end; returns the merged outcome.
    func run(_ perConnection: [[PreparedRequest]]) async -> Outcome {
        let clock = ContinuousClock()
        let start = clock.now
        var total = await withTaskGroup(of: Outcome.self) { group in
            for (i, requests) in perConnection.enumerated() {
                let target = targets[i % targets.count]
                group.addTask { await self.send(requests, to: target) }
            }
            var merged = Outcome()
            for await o in group { merged.merge(o) }
            return merged
        }
        total.elapsedSeconds = Self.seconds(clock.now - start)
        return total
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    private func send(_ requests: [PreparedRequest], to target: Target) async -> Outcome {
        var o = Outcome()
        let clock = ContinuousClock()
        var headers: [(String, String)] = []
        switch target.proto {
        case .remoteWrite:
            headers += [("Content-Type", "application/x-protobuf"), ("Content-Encoding", "snappy"), ("X-Prometheus-Remote-Write-Version", "0.1.0")]
        case .influx:
            headers.append(("Content-Type", "text/plain; charset=utf-8"))
            if target.gzip { headers.append(("Content-Encoding", "gzip")) }
        }
        if let t = target.bearerToken { headers.append(("Authorization", "Bearer \(t)")) }
        let timeout = TimeAmount.nanoseconds(Int64(Self.seconds(target.timeout) * 1e9))
        for r in requests {
            var request = HTTPClientRequest(url: target.url)
            request.method = .POST
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            request.body = .bytes(r.body)
            let started = clock.now
            do {
                let response = try await client.execute(request, timeout: timeout)
                let body = try await response.body.collect(upTo: 4 << 20)
                let us = UInt64(Self.seconds(clock.now - started) * 1e6)
                _ = o.latencyUs.record(max(us, 1))
                o.requests += 1
                if (200..<300).contains(response.status.code) {
                    o.acceptedSamples += r.samples
                } else {
                    // A partial rejection (Starling's 400 JSON carries "accepted"); count what was kept.
                    let text = String(buffer: body)
                    let accepted = Self.jsonInt(text, key: "accepted") ?? 0
                    o.acceptedSamples += accepted
                    o.rejectedSamples += r.samples - accepted
                    o.failedRequests += 1
                    if o.firstErrors.count < 10 { o.firstErrors.append("HTTP \(response.status.code): \(text.prefix(300))") }
                }
            } catch {
                o.requests += 1
                o.failedRequests += 1
                o.rejectedSamples += r.samples
                if o.firstErrors.count < 10 { o.firstErrors.append("\(error)") }
            }
        }
        return o
    }

    /// Reads `"key":123` from a small JSON text without a JSON parser.
    static func jsonInt(_ text: String, key: String) -> Int? {
        guard let r = text.range(of: "\"\(key)\":") else { return nil }
        let digits = text[r.upperBound...].prefix { $0.isNumber }
        return Int(digits)
    }
}
