import NIOCore
import StarlingCompression
import StarlingCore

/// The wire protocols the benchmark speaks.
enum WireProtocol: String, CaseIterable, Codable, Sendable {
    /// Prometheus remote write 1.0: protobuf `WriteRequest`, snappy block, `POST /api/v1/write`.
    case remoteWrite = "remote-write"
    /// Influx line protocol, millisecond precision, `POST /write?precision=ms`.
    case influx = "influx"
}

/// A request body encoded before the clock starts, and what it carries.
struct PreparedRequest: Sendable {
    let body: ByteBuffer
    let samples: Int
    /// Bytes before compression.
    let rawBytes: Int
}

/// How requests are cut and encoded.
struct EncodingSettings: Sendable {
    /// Remote write: samples per request. Prometheus' `queue_config.max_samples_per_send`
    /// (default 2,000 since v2.x; vmagent uses the same order of magnitude).
    var samplesPerRequest = 2_000
    /// Line protocol: lines per request. Telegraf's `metric_batch_size` default is 1,000.
    var linesPerRequest = 1_000
    /// Line protocol: gzip the body (Telegraf's influxdb output can; Prometheus remote write
    /// always uses snappy).
    var gzip = false
}

/// Pre-encodes the workload of a set of hosts into requests, in time order: for each scrape
/// round, the hosts' scrapes sorted by timestamp, cut into requests of the configured size.
struct RequestBuilder {
    let spec: WorkloadSpec
    let settings: EncodingSettings
    let proto: WireProtocol

    /// Encoded once per series: remote write `Label` messages (field 1 of `TimeSeries`), or the
    /// line-protocol prefix of each line group.
    private struct HostEncoding {
        var model: HostModel
        /// Remote write: per series, the encoded `labels` fields of its `TimeSeries`.
        var labelFields: [[UInt8]] = []
        /// Line protocol: per line, `measurement,tags ` and its fields (series index, `name=`).
        var lines: [(prefix: [UInt8], fields: [(series: Int, key: [UInt8], integral: Bool)])] = []
    }

    func build(hosts: [Int]) -> [PreparedRequest] {
        var encodings = hosts.map { h -> HostEncoding in
            var e = HostEncoding(model: HostModel(index: h, seed: spec.seed, intervalMs: spec.intervalMs))
            switch proto {
            case .remoteWrite: e.labelFields = e.model.series.map { Self.labelFields($0, target: e.model.targetLabels) }
            case .influx: e.lines = Self.lineGroups(e.model)
            }
            return e
        }
        var out: [PreparedRequest] = []
        var body: [UInt8] = []
        body.reserveCapacity(1 << 20)
        var inBody = 0  // samples (remote write) or lines (influx) in `body`
        var samplesInBody = 0
        var values: [Double] = []
        var round: [(ts: Int64, host: Int)] = []

        func flush() {
            guard samplesInBody > 0 else { return }
            let encoded: [UInt8]
            switch proto {
            case .remoteWrite: encoded = Snappy.encode(body)
            case .influx: encoded = settings.gzip ? Gzip.encode(body, level: 1) : body
            }
            out.append(PreparedRequest(body: ByteBuffer(bytes: encoded), samples: samplesInBody, rawBytes: body.count))
            body.removeAll(keepingCapacity: true)
            inBody = 0
            samplesInBody = 0
        }

        for k in 0..<spec.scrapes {
            round.removeAll(keepingCapacity: true)
            for i in encodings.indices {
                round.append((encodings[i].model.timestamp(scrape: k, spec: spec), i))
            }
            round.sort { $0.ts < $1.ts || ($0.ts == $1.ts && $0.host < $1.host) }
            for (ts, i) in round {
                encodings[i].model.scrape(timestampMs: ts, first: k == 0, into: &values)
                switch proto {
                case .remoteWrite:
                    for (s, fields) in encodings[i].labelFields.enumerated() {
                        Self.appendTimeSeries(&body, labelFields: fields, value: values[s], timestampMs: ts)
                        inBody += 1
                        samplesInBody += 1
                        if inBody >= settings.samplesPerRequest { flush() }
                    }
                case .influx:
                    for line in encodings[i].lines {
                        body.append(contentsOf: line.prefix)
                        for (n, f) in line.fields.enumerated() {
                            if n > 0 { body.append(UInt8(ascii: ",")) }
                            body.append(contentsOf: f.key)
                            Self.appendValue(&body, values[f.series], integral: f.integral)
                        }
                        body.append(UInt8(ascii: " "))
                        body.append(contentsOf: String(ts).utf8)
                        body.append(UInt8(ascii: "\n"))
                        samplesInBody += line.fields.count
                        inBody += 1
                        if inBody >= settings.linesPerRequest { flush() }
                    }
                }
            }
        }
        flush()
        return out
    }

    /// The series' full label set, `__name__` included, sorted by name (as Prometheus sends it).
    static func labels(_ t: SeriesTemplate, target: [(String, String)]) -> [(String, String)] {
        ([("__name__", t.name)] + t.labels + target).sorted { utf8Less($0.0, $1.0) }
    }

    // MARK: Remote write (protobuf, hand-encoded; cross-checked against StarlingProto at start)

    static func labelFields(_ t: SeriesTemplate, target: [(String, String)]) -> [UInt8] {
        var out: [UInt8] = []
        for (name, value) in labels(t, target: target) {
            var label: [UInt8] = []
            appendBytesField(&label, field: 1, Array(name.utf8))
            appendBytesField(&label, field: 2, Array(value.utf8))
            appendBytesField(&out, field: 1, label)
        }
        return out
    }

    static func appendBytesField(_ out: inout [UInt8], field: UInt64, _ bytes: [UInt8]) {
        out.appendUVarint(field << 3 | 2)
        out.appendUVarint(UInt64(bytes.count))
        out.append(contentsOf: bytes)
    }

    static func uvarintSize(_ v: UInt64) -> Int {
        var n = 1
        var x = v
        while x >= 0x80 {
            x >>= 7
            n += 1
        }
        return n
    }

    /// `WriteRequest.timeseries` entry with one sample, as Prometheus' queue manager builds them
    /// (one `TimeSeries` per sample; proto3 omits a zero value).
    static func appendTimeSeries(_ out: inout [UInt8], labelFields: [UInt8], value: Double, timestampMs: Int64) {
        let hasValue = value.bitPattern != 0
        let sampleLen = (hasValue ? 9 : 0) + 1 + uvarintSize(UInt64(bitPattern: timestampMs))
        let seriesLen = labelFields.count + 1 + uvarintSize(UInt64(sampleLen)) + sampleLen
        out.append(0x0A)
        out.appendUVarint(UInt64(seriesLen))
        out.append(contentsOf: labelFields)
        out.append(0x12)
        out.appendUVarint(UInt64(sampleLen))
        if hasValue {
            out.append(0x09)
            out.appendLittleEndian(value.bitPattern)
        }
        out.append(0x10)
        out.appendUVarint(UInt64(bitPattern: timestampMs))
    }

    // MARK: Line protocol

    /// Groups a host's series into lines: one line per (measurement, label set), fields in series
    /// order, tags sorted by key (as Telegraf sends them).
    static func lineGroups(_ m: HostModel) -> [(prefix: [UInt8], fields: [(series: Int, key: [UInt8], integral: Bool)])] {
        var order: [String] = []
        var groups: [String: (prefix: [UInt8], fields: [(series: Int, key: [UInt8], integral: Bool)])] = [:]
        for (i, t) in m.series.enumerated() {
            let tags = (t.labels + m.targetLabels).sorted { utf8Less($0.0, $1.0) }
            var prefix = t.measurement
            for (k, v) in tags { prefix += "," + escapeTag(k) + "=" + escapeTag(v) }
            prefix += " "
            if groups[prefix] == nil {
                order.append(prefix)
                groups[prefix] = (Array(prefix.utf8), [])
            }
            groups[prefix]!.fields.append((i, Array((t.field + "=").utf8), t.kind.isIntegral))
        }
        return order.map { groups[$0]! }
    }

    static func escapeTag(_ s: String) -> String {
        var out = ""
        for c in s {
            if c == "," || c == " " || c == "=" || c == "\\" { out.append("\\") }
            out.append(c)
        }
        return out
    }

    /// Integral values as Influx integers (`12i`, as Telegraf sends counters), others as the
    /// shortest decimal that round-trips.
    static func appendValue(_ out: inout [UInt8], _ v: Double, integral: Bool) {
        if integral, abs(v) < 9e15 {
            out.append(contentsOf: String(Int64(v)).utf8)
            out.append(UInt8(ascii: "i"))
        } else {
            out.append(contentsOf: v.description.utf8)
        }
    }
}
