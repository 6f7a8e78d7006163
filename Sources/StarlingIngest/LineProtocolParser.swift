import StarlingCore

/// Timestamp precision of Influx line protocol (`precision` query argument).
public enum InfluxPrecision: String, Sendable, Equatable, CaseIterable {
    case nanoseconds = "ns"
    case microseconds = "us"
    case milliseconds = "ms"
    case seconds = "s"
    /// VictoriaMetrics extension.
    case minutes = "m"
    /// VictoriaMetrics extension.
    case hours = "h"

    /// Parses the `precision` query argument: `ns`, `us`/`u`/`µ`, `ms`, `s`, `m`, `h`. An absent
    /// or empty argument is nanoseconds (InfluxDB's default); anything else is nil (HTTP 400).
    public init?(queryValue: String?) {
        switch queryValue ?? "" {
        case "", "ns", "n": self = .nanoseconds
        case "us", "u", "µ", "µs": self = .microseconds
        case "ms": self = .milliseconds
        case "s": self = .seconds
        case "m": self = .minutes
        case "h": self = .hours
        default: return nil
        }
    }

    /// Converts a timestamp in this precision to milliseconds (floor division for the finer
    /// units, so -1 ns is -1 ms); nil when the result does not fit in Int64.
    @inlinable
    public func toMilliseconds(_ t: Int64) -> Int64? {
        switch self {
        case .nanoseconds: return floorDiv(t, 1_000_000)
        case .microseconds: return floorDiv(t, 1000)
        case .milliseconds: return t
        case .seconds: return mul(t, 1000)
        case .minutes: return mul(t, 60_000)
        case .hours: return mul(t, 3_600_000)
        }
    }

    @usableFromInline func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && a < 0) ? q - 1 : q
    }

    @usableFromInline func mul(_ a: Int64, _ b: Int64) -> Int64? {
        let (r, o) = a.multipliedReportingOverflow(by: b)
        return o ? nil : r
    }
}

/// How Influx measurements, fields and tags become Prometheus series (VictoriaMetrics' rules).
public struct InfluxNaming: Sendable, Equatable {
    /// Joins measurement and field into the metric name: `{measurement}{separator}{field}`.
    /// Default `_` (VictoriaMetrics' `-influxMeasurementFieldSeparator`). An empty measurement
    /// gives just `{field}`.
    public var measurementFieldSeparator: String = "_"
    /// Use `{measurement}` alone when a line has exactly one field (`-influxSkipSingleField`).
    /// Default false.
    public var skipSingleField: Bool = false
    /// Use `{field}` alone, ignoring the measurement (`-influxSkipMeasurement`). Default false.
    public var skipMeasurement: Bool = false
    /// Label that receives the `db` query argument, unless the line has a tag of that name.
    /// Default `db` (`-influxDBLabel`); nil never adds it.
    public var dbLabel: String? = "db"
    /// Names breaking the Prometheus syntax (`cpu.load`, `disk-io`) are sanitized by default.
    public var namePolicy: NamePolicy = .sanitize

    public init() {}
}

/// Streaming parser for InfluxDB line protocol
/// (`<measurement>[,<tag>=<value>...] <field>=<value>[,<field>=<value>...] [<timestamp>]`).
///
/// Feed the body in any pieces with `feed`; complete lines are parsed as they arrive, so the
/// result never depends on how the body was split. `takeSeries` hands out what is decoded so
/// far (to bound memory on huge bodies); `finish` parses the last line and returns the result.
///
/// Rules (see docs/ingest.md for the full list):
/// - Escapes: in measurements, tag keys, tag values and field keys `\,` `\ ` `\=` `\\` stand for
///   the second byte; a backslash before anything else is literal. In string field values `\"`
///   and `\\` are escapes.
/// - Field values: float (`1`, `-1.5`, `1e3`, `NaN`, `Inf`), integer `12i`, unsigned `12u`,
///   boolean `t T true True TRUE f F false False FALSE` (1/0), string `"…"`: a string that
///   parses as a float is stored as that number (some agents quote numbers); any other string is
///   skipped and counted in `IngestResult.skippedStringFields` (not an error).
/// - One series per numeric field, named `{measurement}_{field}`; tags become labels; the `db`
///   query argument becomes a `db` label unless the line has a `db` tag.
/// - A line is atomic: any error rejects all of its fields, with the line and column.
/// - Empty lines, lines of whitespace, and lines starting with `#` are skipped; `\r\n` works.
public struct LineProtocolParser {
    private var stream: LineStream<InfluxLineHandler>

    public var precision: InfluxPrecision { stream.handler.precision }
    public var nowMs: Int64 { stream.handler.nowMs }
    public var limits: IngestLimits { stream.handler.limits }
    public var naming: InfluxNaming { stream.handler.naming }

    /// - Parameters:
    ///   - precision: unit of the timestamps in the body.
    ///   - nowMs: the node's clock; the timestamp of lines without one, and the reference of the
    ///     timestamp window.
    ///   - db: the `db` query argument (`/write`) or `bucket` (`/api/v2/write`), if any.
    ///   - enricher: static labels for this node / agent token.
    ///   - cache: the node's series label cache, keyed by the measurement and tag set as written
    ///     plus the field key (under the same naming, `db`, limits and enrichment).
    public init(
        precision: InfluxPrecision = .nanoseconds, nowMs: Int64, limits: IngestLimits = .default,
        naming: InfluxNaming = InfluxNaming(), db: String? = nil, enricher: Enricher = .none,
        cache: SeriesLabelCache? = nil
    ) {
        let handler = InfluxLineHandler(
            precision: precision, nowMs: nowMs, limits: limits, naming: naming, db: db, enricher: enricher, cache: cache)
        stream = LineStream(maxLineBytes: limits.maxInfluxLineBytes, handler: handler)
    }

    /// Parses every complete line in `bytes` (plus the line left incomplete by the previous call).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) { stream.feed(bytes) }

    public mutating func feed(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { stream.feed($0) }
    }

    /// Hands out the series decoded so far (not yet merged with later ones: deduplication works
    /// within what one call returns). Counts and errors stay in the parser until `finish`.
    public mutating func takeSeries() -> [SeriesSamples] { stream.takeSeries() }

    /// Parses the final unterminated line and returns the result for the whole body (`series`
    /// holds what `takeSeries` did not already hand out; `acceptedSamples` counts everything).
    public mutating func finish() -> IngestResult { stream.finish() }

    /// Parses a whole body at once.
    public static func parse(
        _ body: [UInt8], precision: InfluxPrecision = .nanoseconds, nowMs: Int64, limits: IngestLimits = .default,
        naming: InfluxNaming = InfluxNaming(), db: String? = nil, enricher: Enricher = .none,
        cache: SeriesLabelCache? = nil
    ) -> IngestResult {
        var p = LineProtocolParser(
            precision: precision, nowMs: nowMs, limits: limits, naming: naming, db: db, enricher: enricher, cache: cache)
        p.feed(body)
        return p.finish()
    }
}

/// Parses one line protocol line at a time into the accumulator.
struct InfluxLineHandler: LineHandler {
    let precision: InfluxPrecision
    let nowMs: Int64
    let limits: IngestLimits
    let naming: InfluxNaming
    private let db: [UInt8]?
    private let dbLabel: [UInt8]?
    private let separator: [UInt8]
    private let window: ClosedRange<Int64>
    private let rules: LabelRules
    var acc: ResultAccumulator
    private var builder = SeriesLabelsBuilder()
    private var fields: [Field] = []
    /// The line's tags as found in it; copied into `builder` only when a field misses the cache
    /// (see `buildTags`), so a known series costs no copy of its tag bytes.
    private var tags: [Tag] = []
    private var cache: (SeriesLabelCache, SeriesLabelCache.Context)? = nil
    /// The current field's cache key: a byte telling whether the name is the measurement alone,
    /// the length of the raw measurement and tag set, those bytes, then the raw field key. The
    /// line's part is written once per line.
    private var cacheKey: [UInt8] = []

    struct Field {
        var keyStart: Int
        var keyEnd: Int
        var keyEscaped: Bool
        var value: Double
    }

    struct Tag {
        var keyStart: Int
        var keyEnd: Int
        var keyEscaped: Bool
        var valueStart: Int
        var valueEnd: Int
        var valueEscaped: Bool
    }

    init(
        precision: InfluxPrecision, nowMs: Int64, limits: IngestLimits, naming: InfluxNaming, db: String?, enricher: Enricher,
        cache: SeriesLabelCache? = nil
    ) {
        self.precision = precision
        self.nowMs = nowMs
        self.limits = limits
        self.naming = naming
        self.db = (db?.isEmpty ?? true) || naming.dbLabel == nil ? nil : Array(db!.utf8)
        self.dbLabel = naming.dbLabel.map { Array($0.utf8) }
        self.separator = Array(naming.measurementFieldSeparator.utf8)
        self.window = limits.timestampWindow(nowMs: nowMs)
        self.rules = LabelRules(limits: limits, namePolicy: naming.namePolicy, enricher: enricher)
        self.acc = ResultAccumulator(maxReportedErrors: limits.maxReportedErrors)
        fields.reserveCapacity(16)
        if let cache, cache.isEnabled {
            var d = ContextDescriptor(protocol: 2, rules: rules)
            d.append(naming.measurementFieldSeparator)
            d.append(naming.skipSingleField)
            d.append(naming.skipMeasurement)
            d.append(optional: dbLabel)
            d.append(optional: self.db)
            let (context, evicted) = cache.context(d.bytes)
            self.cache = (cache, context)
            acc.result.seriesCacheEvictions += evicted
        }
    }

    mutating func handleTooLong(number: Int) {
        acc.reject(
            .lineTooLong, samples: 1, location: IngestLocation(line: number),
            message: "line exceeds the limit of \(limits.maxInfluxLineBytes) bytes; skipped")
    }

    private struct LineError: Error {
        var reason: RejectionReason
        var column: Int
        var message: String
    }

    @inline(__always)
    private static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }

    /// Scans an unquoted token up to one of the stop bytes (unescaped). Returns the end index and
    /// whether a backslash was seen.
    @inline(__always)
    private static func scanToken(
        _ p: UnsafeRawBufferPointer, from: Int, stopAtEquals: Bool
    ) -> (end: Int, escaped: Bool) {
        var i = from
        var escaped = false
        let n = p.count
        while i < n {
            let c = p[i]
            if c == 0x5C {  // backslash: skip the next byte whatever it is
                escaped = true
                i += 2
                continue
            }
            if c == 0x2C || c == 0x20 || (stopAtEquals && c == 0x3D) { break }
            i += 1
        }
        return (Swift.min(i, n), escaped)
    }

    /// Appends a token's bytes to the builder's scratch, undoing `\,` `\ ` `\=` `\\`.
    @inline(__always)
    /// Copies the line's tags (unescaped) into `builder`, and the `db` label unless a tag of
    /// that name was sent.
    private mutating func buildTags(_ p: UnsafeRawBufferPointer) {
        var hasDBTag = false
        for k in tags.indices {
            let t = tags[k]
            let ns = builder.scratch.count
            appendToken(p, t.keyStart, t.keyEnd, escaped: t.keyEscaped)
            let vs = builder.scratch.count
            appendToken(p, t.valueStart, t.valueEnd, escaped: t.valueEscaped)
            builder.pairs.append(.init(nameStart: ns, nameEnd: vs, valueStart: vs, valueEnd: builder.scratch.count))
            if let dbLabel, !hasDBTag, builder.scratch[ns..<vs].elementsEqual(dbLabel) { hasDBTag = true }
        }
        if let db, let dbLabel, !hasDBTag {
            dbLabel.withUnsafeBytes { k in db.withUnsafeBytes { v in builder.add(name: k, value: v) } }
        }
    }

    private mutating func appendToken(_ p: UnsafeRawBufferPointer, _ start: Int, _ end: Int, escaped: Bool) {
        if !escaped {
            builder.scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: p[start..<end]))
            return
        }
        var i = start
        while i < end {
            let c = p[i]
            if c == 0x5C, i + 1 < end {
                let next = p[i + 1]
                if next == 0x2C || next == 0x20 || next == 0x3D || next == 0x5C {
                    builder.scratch.append(next)
                    i += 2
                    continue
                }
            }
            builder.scratch.append(c)
            i += 1
        }
    }

    mutating func handle(line p: UnsafeRawBufferPointer, number: Int) {
        let n = p.count
        var i = 0
        while i < n, Self.isSpace(p[i]) { i += 1 }
        if i == n || p[i] == 0x23 { return }  // blank or comment
        do {
            try parseStatement(p, from: i, number: number)
        } catch {
            // A rejected line costs its numeric fields; when a syntax error hides how many there
            // were, it counts as one sample.
            let samples = Swift.max(fields.count, 1)
            acc.reject(
                error.reason, samples: samples, location: IngestLocation(line: number, column: error.column),
                message: error.message)
        }
    }

    private mutating func parseStatement(_ p: UnsafeRawBufferPointer, from start: Int, number: Int) throws(LineError) {
        let n = p.count
        builder.reset()
        fields.removeAll(keepingCapacity: true)
        tags.removeAll(keepingCapacity: true)

        // Measurement.
        var i = start
        let (mEnd, mEscaped) = Self.scanToken(p, from: i, stopAtEquals: false)
        let measurementStart = i
        i = mEnd
        if i >= n {
            throw LineError(reason: .malformedInput, column: n + 1, message: "missing field set after the measurement")
        }

        // Tags: located here, copied by `buildTags` if a field misses the cache.
        while i < n, p[i] == 0x2C {
            i += 1
            let keyStart = i
            let (keyEnd, keyEscaped) = Self.scanToken(p, from: i, stopAtEquals: true)
            guard keyEnd < n, p[keyEnd] == 0x3D else {
                throw LineError(
                    reason: .malformedInput, column: keyEnd + 1,
                    message: "tag key \(quoteForError(UnsafeRawBufferPointer(rebasing: p[keyStart..<keyEnd]))) is not followed by '='")
            }
            if keyEnd == keyStart {
                throw LineError(reason: .malformedInput, column: keyStart + 1, message: "empty tag key")
            }
            let valueStart = keyEnd + 1
            let (valueEnd, valueEscaped) = Self.scanToken(p, from: valueStart, stopAtEquals: false)
            tags.append(Tag(keyStart: keyStart, keyEnd: keyEnd, keyEscaped: keyEscaped,
                            valueStart: valueStart, valueEnd: valueEnd, valueEscaped: valueEscaped))
            i = valueEnd
        }
        guard i < n, p[i] == 0x20 else {
            throw LineError(
                reason: .malformedInput, column: i + 1,
                message: i < n ? "unexpected byte \(quoteForError(UnsafeRawBufferPointer(rebasing: p[i..<i + 1]))) after the tag set" : "missing field set")
        }
        let tagSetEnd = i
        while i < n, p[i] == 0x20 { i += 1 }
        if i == n {
            throw LineError(reason: .malformedInput, column: i + 1, message: "missing field set")
        }

        // Fields.
        var stringFields = 0
        while true {
            let keyStart = i
            let (keyEnd, keyEscaped) = Self.scanToken(p, from: i, stopAtEquals: true)
            guard keyEnd < n, p[keyEnd] == 0x3D else {
                throw LineError(
                    reason: .malformedInput, column: keyEnd + 1,
                    message: "field key \(quoteForError(UnsafeRawBufferPointer(rebasing: p[keyStart..<keyEnd]))) is not followed by '='")
            }
            if keyEnd == keyStart {
                throw LineError(reason: .malformedInput, column: keyStart + 1, message: "empty field key")
            }
            i = keyEnd + 1
            if i < n, p[i] == 0x22 {
                // String field: up to the next unescaped quote.
                var j = i + 1
                var escaped = false
                while j < n, p[j] != 0x22 {
                    if p[j] == 0x5C { escaped = true; j += 1 }
                    j += 1
                }
                guard j < n else {
                    throw LineError(reason: .malformedInput, column: i + 1, message: "unterminated string field value")
                }
                if let v = Self.numericString(p, i + 1, j, escaped: escaped) {
                    fields.append(Field(keyStart: keyStart, keyEnd: keyEnd, keyEscaped: keyEscaped, value: v))
                } else {
                    stringFields += 1
                }
                i = j + 1
            } else {
                let valueStart = i
                while i < n, p[i] != 0x2C, p[i] != 0x20 { i += 1 }
                if i == valueStart {
                    throw LineError(reason: .malformedInput, column: valueStart + 1, message: "missing field value")
                }
                let value = UnsafeRawBufferPointer(rebasing: p[valueStart..<i])
                guard let v = Self.parseFieldValue(value) else {
                    throw LineError(
                        reason: .invalidValue, column: valueStart + 1,
                        message: "invalid field value \(quoteForError(value)) (expected a float, an integer like 12i, an unsigned like 12u, a boolean or a quoted string)")
                }
                fields.append(Field(keyStart: keyStart, keyEnd: keyEnd, keyEscaped: keyEscaped, value: v))
            }
            if i < n, p[i] == 0x2C {
                i += 1
                continue
            }
            break
        }

        // Timestamp.
        var timestampMs = nowMs
        if i < n {
            guard p[i] == 0x20 else {
                throw LineError(
                    reason: .malformedInput, column: i + 1,
                    message: "unexpected byte \(quoteForError(UnsafeRawBufferPointer(rebasing: p[i..<i + 1]))) after a field value")
            }
            while i < n, Self.isSpace(p[i]) { i += 1 }
            if i < n {
                let tsStart = i
                while i < n, !Self.isSpace(p[i]) { i += 1 }
                let tsBytes = UnsafeRawBufferPointer(rebasing: p[tsStart..<i])
                var rest = i
                while rest < n, Self.isSpace(p[rest]) { rest += 1 }
                if rest < n {
                    throw LineError(reason: .malformedInput, column: rest + 1, message: "unexpected text after the timestamp")
                }
                guard let raw = NumberParsing.parseInt64(tsBytes) else {
                    throw LineError(
                        reason: .malformedInput, column: tsStart + 1,
                        message: "invalid timestamp \(quoteForError(tsBytes)) (expected an integer in \(precision.rawValue))")
                }
                guard let ms = precision.toMilliseconds(raw) else {
                    throw LineError(
                        reason: .invalidTimestamp, column: tsStart + 1,
                        message: "timestamp \(raw) \(precision.rawValue) does not fit in 64-bit milliseconds")
                }
                timestampMs = ms
                if !window.contains(ms) {
                    let old = ms < window.lowerBound
                    throw LineError(
                        reason: old ? .timestampTooOld : .timestampTooNew, column: tsStart + 1,
                        message: old
                            ? "timestamp \(ms) ms is older than the limit (\(window.lowerBound) ms, now - \(limits.maxSampleAgeMs ?? 0) ms)"
                            : "timestamp \(ms) ms is later than the limit (\(window.upperBound) ms, now + \(limits.maxFutureSkewMs ?? 0) ms)")
                }
            }
        }
        if stringFields > 0 { acc.result.skippedStringFields += stringFields }
        if fields.isEmpty { return }

        // One series per numeric field.
        var tagPairs = -1, tagScratch = 0  // -1: tags not built yet
        let useMeasurementOnly = naming.skipSingleField && fields.count + stringFields == 1
        let measurementEmpty = mEnd == measurementStart
        // Series go straight into the result; a failure on a later field takes the line's
        // earlier series back out (a line is atomic).
        let mark = acc.result.series.count
        var keyPrefix = 0
        if cache != nil {
            cacheKey.removeAll(keepingCapacity: true)
            cacheKey.append(useMeasurementOnly ? 1 : 0)
            cacheKey.appendUVarint(UInt64(tagSetEnd - measurementStart))
            cacheKey.append(contentsOf: UnsafeRawBufferPointer(rebasing: p[measurementStart..<tagSetEnd]))
            keyPrefix = cacheKey.count
        }
        for f in fields {
            var cacheHash: UInt64 = 0
            if let (cache, context) = cache {
                cacheKey.removeLast(cacheKey.count - keyPrefix)
                cacheKey.append(contentsOf: UnsafeRawBufferPointer(rebasing: p[f.keyStart..<f.keyEnd]))
                var evicted = 0
                let hit = cacheKey.withUnsafeBytes { key -> SeriesLabelCache.Hit? in
                    cacheHash = SeriesLabelCache.hash(key, context)
                    return cache.lookup(key, hash: cacheHash, context: context, evicted: &evicted)
                }
                acc.result.seriesCacheEvictions += evicted
                if let hit {
                    acc.result.seriesCacheHits += 1
                    acc.accept(SeriesSamples(labels: hit.labels, labelsHash: hit.labelsHash, sample: Sample(timestampMs, f.value)))
                    continue
                }
                acc.result.seriesCacheMisses += 1
            }
            if tagPairs < 0 {
                buildTags(p)
                tagPairs = builder.pairs.count
                tagScratch = builder.scratch.count
            }
            builder.truncate(pairs: tagPairs, scratch: tagScratch)
            let nameStart = builder.scratch.count
            builder.scratch.append(contentsOf: SeriesLabelsBuilder.metricNameBytes)
            let valueStart = builder.scratch.count
            if useMeasurementOnly {
                appendToken(p, measurementStart, mEnd, escaped: mEscaped)
            } else {
                if !naming.skipMeasurement && !measurementEmpty {
                    appendToken(p, measurementStart, mEnd, escaped: mEscaped)
                    builder.scratch.append(contentsOf: separator)
                }
                appendToken(p, f.keyStart, f.keyEnd, escaped: f.keyEscaped)
            }
            builder.pairs.append(.init(nameStart: nameStart, nameEnd: valueStart, valueStart: valueStart, valueEnd: builder.scratch.count))
            switch builder.build(rules) {
            case .success(let labels):
                if let (cache, context) = cache {
                    let (evicted, labelsHash) = cacheKey.withUnsafeBytes { cache.insert($0, hash: cacheHash, context: context, labels: labels) }
                    acc.result.seriesCacheEvictions += evicted
                    acc.accept(SeriesSamples(labels: labels, labelsHash: labelsHash, sample: Sample(timestampMs, f.value)))
                } else {
                    acc.accept(SeriesSamples(labels: labels, sample: Sample(timestampMs, f.value)))
                }
            case .failure(let failure):
                acc.result.series.removeLast(acc.result.series.count - mark)
                throw LineError(reason: failure.reason, column: f.keyStart + 1, message: failure.message)
            }
        }
    }

    /// Parses a non-string field value.
    @inline(__always)
    static func parseFieldValue(_ v: UnsafeRawBufferPointer) -> Double? {
        let last = v[v.count - 1]
        if last == 0x69 {  // i
            return NumberParsing.parseInt64(UnsafeRawBufferPointer(rebasing: v[0..<v.count - 1])).map { Double($0) }
        }
        if last == 0x75 {  // u
            return NumberParsing.parseUInt64(UnsafeRawBufferPointer(rebasing: v[0..<v.count - 1])).map { Double($0) }
        }
        let first = v[0]
        if first == 0x74 || first == 0x54 || first == 0x66 || first == 0x46 {  // t T f F
            switch v.count {
            case 1: return first == 0x74 || first == 0x54 ? 1 : 0
            case 4 where matches(v, "true") || matches(v, "True") || matches(v, "TRUE"): return 1
            case 5 where matches(v, "false") || matches(v, "False") || matches(v, "FALSE"): return 0
            default: return nil
            }
        }
        return NumberParsing.parseDouble(v, allowSpecial: true)
    }

    @inline(__always)
    private static func matches(_ v: UnsafeRawBufferPointer, _ word: StaticString) -> Bool {
        v.elementsEqual(UnsafeRawBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount))
    }

    /// A string field's value as a number, when its (unescaped) text is a plain float.
    private static func numericString(_ p: UnsafeRawBufferPointer, _ start: Int, _ end: Int, escaped: Bool) -> Double? {
        if end == start { return nil }
        if !escaped {
            return NumberParsing.parseDouble(UnsafeRawBufferPointer(rebasing: p[start..<end]), allowSpecial: false)
        }
        // An escaped quote or backslash cannot be part of a number.
        return nil
    }
}
