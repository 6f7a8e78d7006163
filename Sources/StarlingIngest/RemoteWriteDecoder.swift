import StarlingCore

/// Decodes a Prometheus remote write 1.0 `WriteRequest` (the snappy-decoded body of
/// `POST /api/v1/write`, `Content-Type: application/x-protobuf`) straight from its bytes.
///
/// Zero-copy: the reader walks the protobuf wire format in place; label bytes are copied once
/// into a reused scratch buffer, validated, sorted and emitted as one canonical `Labels`
/// allocation per series; each series' samples go into one exactly-sized array.
///
/// Semantics match the SwiftProtobuf code generated from `proto/prometheus/remote_write.proto`
/// (the tests check this on random messages), with these deliberate differences:
/// - a label that is not valid UTF-8 rejects only its series (`invalid_utf8`), where
///   SwiftProtobuf fails the whole message;
/// - exemplars, native histograms and metadata are skipped by length without decoding their
///   contents (they are counted in `ignoredExemplars` / `ignoredHistograms` / `ignoredMetadata`).
///
/// A body that breaks the wire format (truncated, bad tag, length past the end, …) rejects the
/// whole request: one `malformed_input` error with the byte offset and series index, and no
/// series accepted — the message's structure cannot be trusted past that point and Prometheus
/// itself rejects such a request whole.
public enum RemoteWriteDecoder {
    /// - Parameters:
    ///   - body: the snappy-decoded request body.
    ///   - nowMs: the node's clock, reference of the timestamp window.
    ///   - namePolicy: `.reject` by default (Prometheus clients send valid names; see `NamePolicy`).
    ///   - enricher: static labels for this node / agent token.
    ///   - cache: the node's series label cache; a series whose label fields are byte-for-byte
    ///     those of an earlier accepted series (under the same limits, policy and enrichment)
    ///     takes that series' `Labels` without decoding or validating them again.
    public static func decode(
        _ body: UnsafeRawBufferPointer, nowMs: Int64, limits: IngestLimits = .default, namePolicy: NamePolicy = .reject,
        enricher: Enricher = .none, cache: SeriesLabelCache? = nil
    ) -> IngestResult {
        let rules = LabelRules(limits: limits, namePolicy: namePolicy, enricher: enricher)
        var d = Decoder(body, nowMs: nowMs, limits: limits, rules: rules)
        if let cache, cache.isEnabled {
            let (context, evicted) = cache.context(ContextDescriptor(protocol: 1, rules: rules).bytes)
            d.cache = (cache, context)
            d.acc.result.seriesCacheEvictions += evicted
        }
        do {
            try d.decodeWriteRequest()
        } catch {
            var r = IngestResult()
            let where_ = d.currentSeries.map { "timeseries[\($0)]: " } ?? ""
            r.record(
                IngestError(
                    reason: .malformedInput,
                    location: IngestLocation(seriesIndex: d.currentSeries, byteOffset: error.offset),
                    message: "invalid protobuf WriteRequest: \(where_)\(error.message) at byte offset \(error.offset); request rejected",
                    rejectedSamples: 0),
                maxReportedErrors: limits.maxReportedErrors)
            return r
        }
        return d.acc.finalize()
    }

    public static func decode(
        _ body: [UInt8], nowMs: Int64, limits: IngestLimits = .default, namePolicy: NamePolicy = .reject,
        enricher: Enricher = .none, cache: SeriesLabelCache? = nil
    ) -> IngestResult {
        body.withUnsafeBytes { decode($0, nowMs: nowMs, limits: limits, namePolicy: namePolicy, enricher: enricher, cache: cache) }
    }

    struct Decoder {
        let p: UnsafeRawBufferPointer
        let limits: IngestLimits
        let rules: LabelRules
        let window: ClosedRange<Int64>
        var acc: ResultAccumulator
        var builder = SeriesLabelsBuilder()
        var currentSeries: Int? = nil
        /// Byte ranges of the current series' Sample messages (reused across series).
        var sampleRanges: [Range<Int>] = []
        /// Byte ranges of the current series' Label messages (reused across series).
        var labelRanges: [Range<Int>] = []
        var cache: (SeriesLabelCache, SeriesLabelCache.Context)? = nil

        init(_ p: UnsafeRawBufferPointer, nowMs: Int64, limits: IngestLimits, rules: LabelRules) {
            self.p = p
            self.limits = limits
            self.rules = rules
            self.window = limits.timestampWindow(nowMs: nowMs)
            self.acc = ResultAccumulator(maxReportedErrors: limits.maxReportedErrors)
        }

        mutating func decodeWriteRequest() throws(ProtoReader.WireError) {
            var r = ProtoReader(p, from: 0, to: p.count)
            var seriesIndex = 0
            while !r.isAtEnd {
                let (field, wire) = try r.readTag()
                if field == 1 && wire == .lengthDelimited {
                    let range = try r.readLengthDelimited()
                    currentSeries = seriesIndex
                    try decodeTimeSeries(range, index: seriesIndex)
                    currentSeries = nil
                    seriesIndex += 1
                } else if field == 3 && wire == .lengthDelimited {
                    _ = try r.readLengthDelimited()
                    acc.result.ignoredMetadata += 1
                } else {
                    try r.skip(wire, field: field)
                }
            }
        }

        /// One pass over a TimeSeries collects its labels and the ranges of its samples; the
        /// samples are decoded into an exactly-sized array once the label set is known valid.
        ///
        /// The label fields are only located in that pass; when they are contiguous (every
        /// client writes all labels before the samples) their raw bytes, tags included, are the
        /// cache key, and a hit skips decoding them.
        mutating func decodeTimeSeries(_ range: Range<Int>, index: Int) throws(ProtoReader.WireError) {
            builder.reset()
            sampleRanges.removeAll(keepingCapacity: true)
            labelRanges.removeAll(keepingCapacity: true)
            var rawStart = range.lowerBound, rawEnd = range.lowerBound
            var contiguous = true
            var r = ProtoReader(p, from: range.lowerBound, to: range.upperBound)
            while !r.isAtEnd {
                let tagOffset = r.i
                let (field, wire) = try r.readTag()
                guard wire == .lengthDelimited, field <= 4 else {
                    try r.skip(wire, field: field)
                    continue
                }
                let body = try r.readLengthDelimited()
                switch field {
                case 1:
                    if labelRanges.isEmpty { rawStart = tagOffset } else if tagOffset != rawEnd { contiguous = false }
                    rawEnd = body.upperBound
                    labelRanges.append(body)
                case 2: sampleRanges.append(body)
                case 3: acc.result.ignoredExemplars += 1
                case 4: acc.result.ignoredHistograms += 1
                default: break
                }
            }
            let sampleCount = sampleRanges.count
            if sampleCount == 0 {
                // Nothing to store, but the labels must still be well-formed for the request to be.
                try decodeLabels()
                return
            }

            var cached: SeriesLabelCache.Hit? = nil
            var cacheKey: (UnsafeRawBufferPointer, UInt64)? = nil
            if let (cache, context) = cache, contiguous, !labelRanges.isEmpty {
                let key = UnsafeRawBufferPointer(rebasing: p[rawStart..<rawEnd])
                let h = SeriesLabelCache.hash(key, context)
                cached = cache.lookup(key, hash: h, context: context, evicted: &acc.result.seriesCacheEvictions)
                if cached == nil {
                    acc.result.seriesCacheMisses += 1
                    cacheKey = (key, h)
                } else {
                    acc.result.seriesCacheHits += 1
                }
            }
            let labels: Labels
            var labelsHash: UInt64? = nil
            if let cached {
                labels = cached.labels
                labelsHash = cached.labelsHash
            } else {
                try decodeLabels()
                switch builder.build(rules) {
                case .success(let l):
                    labels = l
                    if let (cache, context) = cache, let (key, h) = cacheKey {
                        let (evicted, hash) = cache.insert(key, hash: h, context: context, labels: l)
                        acc.result.seriesCacheEvictions += evicted
                        labelsHash = hash
                    }
                case .failure(let f):
                    acc.reject(
                        f.reason, samples: sampleCount,
                        location: IngestLocation(seriesIndex: index, labels: builder.describe(), byteOffset: range.lowerBound),
                        message: f.message)
                    // The samples still have to be well-formed for the request to be.
                    for body in sampleRanges { _ = try decodeSample(body) }
                    return
                }
            }

            // The accepted samples: the first one alone, and an array only from the second on
            // (one sample per series is the common case; see `SeriesSamples`).
            var first: Sample? = nil
            var samples: [Sample] = []
            var tooOld = 0, tooNew = 0
            var firstOld: Int64 = 0, firstNew: Int64 = 0
            for body in sampleRanges {
                let s = try decodeSample(body)
                if s.timestampMs < window.lowerBound {
                    if tooOld == 0 { firstOld = s.timestampMs }
                    tooOld += 1
                } else if s.timestampMs > window.upperBound {
                    if tooNew == 0 { firstNew = s.timestampMs }
                    tooNew += 1
                } else if let f = first {
                    if samples.isEmpty {
                        samples.reserveCapacity(sampleCount)
                        samples.append(f)
                    }
                    samples.append(s)
                } else {
                    first = s
                }
            }
            if (tooOld > 0 || tooNew > 0) && cached != nil {
                // Error messages name the labels as sent: decode them (rare path).
                builder.reset()
                try decodeLabels()
            }
            if tooOld > 0 {
                acc.reject(
                    .timestampTooOld, samples: tooOld,
                    location: IngestLocation(seriesIndex: index, labels: builder.describe()),
                    message: "\(tooOld) sample(s) older than the limit (\(window.lowerBound) ms, now - \(limits.maxSampleAgeMs ?? 0) ms), first at \(firstOld) ms")
            }
            if tooNew > 0 {
                acc.reject(
                    .timestampTooNew, samples: tooNew,
                    location: IngestLocation(seriesIndex: index, labels: builder.describe()),
                    message: "\(tooNew) sample(s) later than the limit (\(window.upperBound) ms, now + \(limits.maxFutureSkewMs ?? 0) ms), first at \(firstNew) ms")
            }
            if !samples.isEmpty {
                if let labelsHash {
                    acc.accept(SeriesSamples(labels: labels, labelsHash: labelsHash, samples: samples))
                } else {
                    acc.accept(SeriesSamples(labels: labels, samples: samples))
                }
            } else if let first {
                acc.accept(SeriesSamples(labels: labels, labelsHash: labelsHash, sample: first))
            }
        }

        mutating func decodeLabels() throws(ProtoReader.WireError) {
            for k in labelRanges.indices { try decodeLabel(labelRanges[k]) }
        }

        /// Label { string name = 1; string value = 2; } — last occurrence wins, as in proto3.
        @inline(__always)
        mutating func decodeLabel(_ range: Range<Int>) throws(ProtoReader.WireError) {
            // Fast path: the canonical encoding `0x0A len name 0x12 len value` with one-byte
            // lengths, which is what every client sends for short labels.
            let lo = range.lowerBound, hi = range.upperBound
            if hi - lo >= 4, p[lo] == 0x0A, p[lo + 1] < 0x80 {
                let nameEnd = lo + 2 + Int(p[lo + 1])
                if nameEnd + 2 <= hi, p[nameEnd] == 0x12, p[nameEnd + 1] < 0x80, nameEnd + 2 + Int(p[nameEnd + 1]) == hi {
                    builder.add(
                        name: UnsafeRawBufferPointer(rebasing: p[lo + 2..<nameEnd]),
                        value: UnsafeRawBufferPointer(rebasing: p[nameEnd + 2..<hi]))
                    return
                }
            }
            var r = ProtoReader(p, from: range.lowerBound, to: range.upperBound)
            var name = range.lowerBound..<range.lowerBound
            var value = range.lowerBound..<range.lowerBound
            while !r.isAtEnd {
                let (field, wire) = try r.readTag()
                if wire == .lengthDelimited && (field == 1 || field == 2) {
                    let b = try r.readLengthDelimited()
                    if field == 1 { name = b } else { value = b }
                } else {
                    try r.skip(wire, field: field)
                }
            }
            builder.add(
                name: UnsafeRawBufferPointer(rebasing: p[name]),
                value: UnsafeRawBufferPointer(rebasing: p[value]))
        }

        /// Sample { double value = 1; int64 timestamp = 2; }
        @inline(__always)
        func decodeSample(_ range: Range<Int>) throws(ProtoReader.WireError) -> Sample {
            var r = ProtoReader(p, from: range.lowerBound, to: range.upperBound)
            var value: UInt64 = 0
            var ts: UInt64 = 0
            while !r.isAtEnd {
                let (field, wire) = try r.readTag()
                if field == 1 && wire == .fixed64 {
                    value = try r.readFixed64()
                } else if field == 2 && wire == .varint {
                    ts = try r.readVarint()
                } else {
                    try r.skip(wire, field: field)
                }
            }
            return Sample(Int64(bitPattern: ts), Double(bitPattern: value))
        }
    }
}
