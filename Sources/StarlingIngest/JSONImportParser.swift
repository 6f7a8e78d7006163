import StarlingCore

/// Streaming parser for VictoriaMetrics' JSON line import format (`/api/v1/import`): one JSON
/// object per line,
///
///     {"metric":{"__name__":"up","job":"node"},"values":[1,0.5,null],"timestamps":[1700000000000,1700000015000,1700000030000]}
///
/// Rules (VictoriaMetrics' `vmimport` parser is the reference):
/// - `metric` is an object whose members are label names and **string** values; it must
///   contain `__name__`. Names are checked with `NamePolicy.reject` by default (the format is
///   Prometheus-native; renaming would surprise an export → import round trip).
/// - `values` is a non-empty array of numbers; `null` and the strings `"NaN"`, `"nan"`,
///   `"null"`, `"Null"` are NaN, and `"Inf"`/`"inf"`/`"Infinity"`/`"infinity"` (optionally
///   with `-`) are ±Inf.
/// - `timestamps` is a non-empty array of integer milliseconds, as long as `values` — otherwise
///   the line is rejected (`value_timestamp_count_mismatch`).
/// - Other members are ignored. Members may come in any order. A repeated `metric`, `values` or
///   `timestamps` member rejects the line.
/// - Samples outside the timestamp window are rejected one by one; the rest of the line is kept.
/// - Empty lines are skipped; `\r\n` works.
public struct JSONImportParser {
    private var stream: LineStream<JSONImportLineHandler>

    /// Deepest nesting accepted inside ignored members (bounds the skipper's recursion).
    static let maxDepth = 64

    public init(nowMs: Int64, limits: IngestLimits = .default, namePolicy: NamePolicy = .reject, enricher: Enricher = .none) {
        stream = LineStream(
            maxLineBytes: limits.maxImportLineBytes,
            handler: JSONImportLineHandler(nowMs: nowMs, limits: limits, namePolicy: namePolicy, enricher: enricher))
    }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) { stream.feed(bytes) }

    public mutating func feed(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { stream.feed($0) }
    }

    /// Hands out the series decoded so far (see `LineProtocolParser.takeSeries`).
    public mutating func takeSeries() -> [SeriesSamples] { stream.takeSeries() }

    /// Parses the final unterminated line and returns the result for the whole body.
    public mutating func finish() -> IngestResult { stream.finish() }

    public static func parse(
        _ body: [UInt8], nowMs: Int64, limits: IngestLimits = .default, namePolicy: NamePolicy = .reject,
        enricher: Enricher = .none
    ) -> IngestResult {
        var p = JSONImportParser(nowMs: nowMs, limits: limits, namePolicy: namePolicy, enricher: enricher)
        p.feed(body)
        return p.finish()
    }

    typealias LineError = JSONImportLineHandler.LineError
}

/// Parses one JSON import line at a time into the accumulator.
struct JSONImportLineHandler: LineHandler {
    let limits: IngestLimits
    private let rules: LabelRules
    private let window: ClosedRange<Int64>
    var acc: ResultAccumulator
    private var builder = SeriesLabelsBuilder()
    private var values: [Double] = []
    private var timestamps: [Int64] = []
    private var keyScratch: [UInt8] = []

    init(nowMs: Int64, limits: IngestLimits, namePolicy: NamePolicy, enricher: Enricher) {
        self.limits = limits
        self.rules = LabelRules(limits: limits, namePolicy: namePolicy, enricher: enricher)
        self.window = limits.timestampWindow(nowMs: nowMs)
        self.acc = ResultAccumulator(maxReportedErrors: limits.maxReportedErrors)
    }

    mutating func handleTooLong(number: Int) {
        acc.reject(
            .lineTooLong, samples: 1, location: IngestLocation(line: number),
            message: "line exceeds the limit of \(limits.maxImportLineBytes) bytes; skipped")
    }

    struct LineError: Error {
        var reason: RejectionReason
        var column: Int
        var message: String
    }

    mutating func handle(line p: UnsafeRawBufferPointer, number: Int) {
        var i = 0
        while i < p.count, JSONReader.isSpace(p[i]) { i += 1 }
        if i == p.count { return }
        do {
            try parseObject(p, number: number)
        } catch {
            acc.reject(
                error.reason, samples: Swift.max(values.count, 1), location: IngestLocation(line: number, column: error.column),
                message: error.message)
        }
    }

    private mutating func parseObject(_ p: UnsafeRawBufferPointer, number: Int) throws(LineError) {
        builder.reset()
        values.removeAll(keepingCapacity: true)
        timestamps.removeAll(keepingCapacity: true)
        var r = JSONReader(p)
        var sawMetric = false, sawValues = false, sawTimestamps = false
        var metricColumn = 1
        r.skipSpace()
        try r.expect(0x7B, "'{' at the start of the line")
        r.skipSpace()
        if r.peek() == 0x7D {
            r.i += 1
        } else {
            while true {
                r.skipSpace()
                let keyColumn = r.i + 1
                keyScratch.removeAll(keepingCapacity: true)
                try r.readString(into: &keyScratch)
                r.skipSpace()
                try r.expect(0x3A, "':' after a member name")
                r.skipSpace()
                switch keyScratch.count {
                case 6 where keyScratch.elementsEqual("metric".utf8):
                    if sawMetric { throw LineError(reason: .malformedInput, column: keyColumn, message: "duplicate \"metric\" member") }
                    sawMetric = true
                    metricColumn = r.i + 1
                    try parseMetric(&r)
                case 6 where keyScratch.elementsEqual("values".utf8):
                    if sawValues { throw LineError(reason: .malformedInput, column: keyColumn, message: "duplicate \"values\" member") }
                    sawValues = true
                    try parseValues(&r)
                case 10 where keyScratch.elementsEqual("timestamps".utf8):
                    if sawTimestamps {
                        throw LineError(reason: .malformedInput, column: keyColumn, message: "duplicate \"timestamps\" member")
                    }
                    sawTimestamps = true
                    try parseTimestamps(&r)
                default:
                    try r.skipValue(depth: 0)
                }
                r.skipSpace()
                if r.peek() == 0x2C {
                    r.i += 1
                    continue
                }
                try r.expect(0x7D, "',' or '}' after a member")
                break
            }
        }
        r.skipSpace()
        if r.i < p.count {
            throw LineError(reason: .malformedInput, column: r.i + 1, message: "unexpected text after the JSON object")
        }
        guard sawMetric else { throw LineError(reason: .malformedInput, column: 1, message: "missing \"metric\" object") }
        guard sawValues, !values.isEmpty else {
            throw LineError(reason: .malformedInput, column: 1, message: "missing or empty \"values\" array")
        }
        guard sawTimestamps, !timestamps.isEmpty else {
            throw LineError(reason: .malformedInput, column: 1, message: "missing or empty \"timestamps\" array")
        }
        guard values.count == timestamps.count else {
            throw LineError(
                reason: .valueTimestampCountMismatch, column: 1,
                message: "\"values\" has \(values.count) elements but \"timestamps\" has \(timestamps.count)")
        }
        let labels: Labels
        switch builder.build(rules) {
        case .success(let l): labels = l
        case .failure(let f): throw LineError(reason: f.reason, column: metricColumn, message: f.message)
        }

        var samples: [Sample] = []
        samples.reserveCapacity(values.count)
        var tooOld = 0, tooNew = 0
        var firstOld: Int64 = 0, firstNew: Int64 = 0
        for k in 0..<values.count {
            let t = timestamps[k]
            if t < window.lowerBound {
                if tooOld == 0 { firstOld = t }
                tooOld += 1
            } else if t > window.upperBound {
                if tooNew == 0 { firstNew = t }
                tooNew += 1
            } else {
                samples.append(Sample(t, values[k]))
            }
        }
        if tooOld > 0 {
            acc.reject(
                .timestampTooOld, samples: tooOld, location: IngestLocation(line: number),
                message: "\(tooOld) sample(s) older than the limit (\(window.lowerBound) ms, now - \(limits.maxSampleAgeMs ?? 0) ms), first at \(firstOld) ms")
        }
        if tooNew > 0 {
            acc.reject(
                .timestampTooNew, samples: tooNew, location: IngestLocation(line: number),
                message: "\(tooNew) sample(s) later than the limit (\(window.upperBound) ms, now + \(limits.maxFutureSkewMs ?? 0) ms), first at \(firstNew) ms")
        }
        if !samples.isEmpty { acc.accept(SeriesSamples(labels: labels, samples: samples)) }
    }

    private mutating func parseMetric(_ r: inout JSONReader) throws(LineError) {
        try r.expect(0x7B, "'{' to start the \"metric\" object")
        r.skipSpace()
        if r.peek() == 0x7D {
            r.i += 1
            return
        }
        while true {
            r.skipSpace()
            let ns = builder.scratch.count
            try r.readString(into: &builder.scratch)
            let vs = builder.scratch.count
            r.skipSpace()
            try r.expect(0x3A, "':' after a label name")
            r.skipSpace()
            guard r.peek() == 0x22 else {
                throw LineError(
                    reason: .malformedInput, column: r.i + 1,
                    message: "value of label \(quoteForError(Array(builder.scratch[ns..<vs]))) must be a string")
            }
            try r.readString(into: &builder.scratch)
            builder.pairs.append(.init(nameStart: ns, nameEnd: vs, valueStart: vs, valueEnd: builder.scratch.count))
            r.skipSpace()
            if r.peek() == 0x2C {
                r.i += 1
                continue
            }
            try r.expect(0x7D, "',' or '}' in the \"metric\" object")
            return
        }
    }

    private mutating func parseValues(_ r: inout JSONReader) throws(LineError) {
        try r.forEachArrayElement(name: "values") { (r: inout JSONReader) throws(LineError) in
            let col = r.i + 1
            let c = r.peek()
            if c == 0x22 {
                keyScratch.removeAll(keepingCapacity: true)
                try r.readString(into: &keyScratch)
                guard let v = Self.specialValue(keyScratch) else {
                    throw LineError(
                        reason: .invalidValue, column: col,
                        message: "value at position \(values.count) is the string \(quoteForError(keyScratch)); only NaN, Inf, -Inf, Infinity and null are accepted as strings")
                }
                values.append(v)
            } else if c == 0x6E {  // null
                try r.expectWord("null")
                values.append(.nan)
            } else {
                let tok = r.scanNumberToken()
                guard !tok.isEmpty, let v = NumberParsing.parseDouble(tok, allowSpecial: false) else {
                    throw LineError(
                        reason: .invalidValue, column: col,
                        message: "value at position \(values.count) is not a number: \(quoteForError(r.tokenForError(at: col - 1)))")
                }
                values.append(v)
            }
        }
    }

    private mutating func parseTimestamps(_ r: inout JSONReader) throws(LineError) {
        try r.forEachArrayElement(name: "timestamps") { (r: inout JSONReader) throws(LineError) in
            let col = r.i + 1
            let tok = r.scanNumberToken()
            guard !tok.isEmpty, let t = NumberParsing.parseInt64(tok) else {
                throw LineError(
                    reason: .invalidTimestamp, column: col,
                    message: "timestamp at position \(timestamps.count) is not an integer number of milliseconds: \(quoteForError(r.tokenForError(at: col - 1)))")
            }
            timestamps.append(t)
        }
    }

    static func specialValue(_ s: [UInt8]) -> Double? {
        switch String(decoding: s, as: UTF8.self) {
        case "NaN", "nan", "null", "Null": return .nan
        case "Inf", "inf", "+Inf", "Infinity", "infinity", "+Infinity": return .infinity
        case "-Inf", "-inf", "-Infinity", "-infinity": return -.infinity
        default: return nil
        }
    }
}

/// A minimal JSON reader over one line's bytes, for the import format.
struct JSONReader {
    let p: UnsafeRawBufferPointer
    var i = 0

    init(_ p: UnsafeRawBufferPointer) { self.p = p }

    typealias LineError = JSONImportParser.LineError

    @inline(__always) static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

    @inline(__always) func peek() -> UInt8 { i < p.count ? p[i] : 0 }

    @inline(__always) mutating func skipSpace() {
        while i < p.count, Self.isSpace(p[i]) { i += 1 }
    }

    mutating func expect(_ b: UInt8, _ what: String) throws(LineError) {
        guard i < p.count else { throw LineError(reason: .malformedInput, column: i + 1, message: "line ended, expected \(what)") }
        guard p[i] == b else {
            throw LineError(reason: .malformedInput, column: i + 1, message: "expected \(what), found \(quoteForError(tokenForError()))")
        }
        i += 1
    }

    /// Reads `[ e, e, … ]`, calling `element` positioned at each element (whitespace skipped).
    mutating func forEachArrayElement(
        name: String, _ element: (inout JSONReader) throws(LineError) -> Void
    ) throws(LineError) {
        try expect(0x5B, "'[' to start the \"\(name)\" array")
        skipSpace()
        if peek() == 0x5D {
            i += 1
            return
        }
        while true {
            skipSpace()
            try element(&self)
            skipSpace()
            if peek() == 0x2C {
                i += 1
                continue
            }
            try expect(0x5D, "',' or ']' in the \"\(name)\" array")
            return
        }
    }

    mutating func expectWord(_ w: StaticString) throws(LineError) {
        let word = UnsafeRawBufferPointer(start: w.utf8Start, count: w.utf8CodeUnitCount)
        guard p.count - i >= word.count, UnsafeRawBufferPointer(rebasing: p[i..<i + word.count]).elementsEqual(word) else {
            throw LineError(reason: .malformedInput, column: i + 1, message: "invalid literal \(quoteForError(tokenForError()))")
        }
        i += word.count
    }

    /// A short excerpt at the current position for error messages.
    func tokenForError(at: Int? = nil) -> [UInt8] {
        let s = Swift.min(at ?? i, p.count)
        return Array(p[s..<Swift.min(p.count, s + 24)])
    }

    /// The bytes of a number-like token (`-0123456789.eE+`) starting here; advances past it.
    mutating func scanNumberToken() -> UnsafeRawBufferPointer {
        let s = i
        while i < p.count {
            let c = p[i]
            if isASCIIDigit(c) || c == 0x2D || c == 0x2B || c == 0x2E || c == 0x65 || c == 0x45 { i += 1 } else { break }
        }
        return UnsafeRawBufferPointer(rebasing: p[s..<i])
    }

    /// Reads a JSON string, appending its unescaped UTF-8 bytes to `out`. Invalid escapes and raw
    /// control characters are errors; a lone surrogate escape becomes U+FFFD (as Go's decoder does).
    mutating func readString(into out: inout [UInt8]) throws(LineError) {
        guard i < p.count, p[i] == 0x22 else {
            throw LineError(reason: .malformedInput, column: i + 1, message: "expected a string, found \(quoteForError(tokenForError()))")
        }
        let startColumn = i + 1
        i += 1
        var runStart = i
        while i < p.count {
            let c = p[i]
            if c == 0x22 {
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: p[runStart..<i]))
                i += 1
                return
            }
            if c < 0x20 {
                throw LineError(reason: .malformedInput, column: i + 1, message: "control character 0x\(String(c, radix: 16)) in a string")
            }
            if c == 0x5C {
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: p[runStart..<i]))
                guard i + 1 < p.count else { break }
                let e = p[i + 1]
                switch e {
                case 0x22, 0x5C, 0x2F: out.append(e)
                case 0x62: out.append(0x08)
                case 0x66: out.append(0x0C)
                case 0x6E: out.append(0x0A)
                case 0x72: out.append(0x0D)
                case 0x74: out.append(0x09)
                case 0x75:
                    let escColumn = i + 1
                    guard var u = hex4(at: i + 2) else {
                        throw LineError(reason: .malformedInput, column: escColumn, message: "invalid \\u escape")
                    }
                    i += 6
                    if (0xD800...0xDBFF).contains(u), i + 1 < p.count, p[i] == 0x5C, p[i + 1] == 0x75,
                        let lo = hex4(at: i + 2), (0xDC00...0xDFFF).contains(lo)
                    {
                        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                        i += 6
                    } else if (0xD800...0xDFFF).contains(u) {
                        u = 0xFFFD
                    }
                    appendUTF8(u, to: &out)
                    runStart = i
                    continue
                default:
                    throw LineError(reason: .malformedInput, column: i + 1, message: "invalid escape \\\(Character(Unicode.Scalar(e)))")
                }
                i += 2
                runStart = i
                continue
            }
            i += 1
        }
        throw LineError(reason: .malformedInput, column: startColumn, message: "unterminated string")
    }

    private func hex4(at k: Int) -> UInt32? {
        guard k + 4 <= p.count else { return nil }
        var v: UInt32 = 0
        for j in k..<k + 4 {
            let c = p[j]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: return nil
            }
            v = v << 4 | d
        }
        return v
    }

    private func appendUTF8(_ u: UInt32, to out: inout [UInt8]) {
        switch u {
        case 0..<0x80: out.append(UInt8(u))
        case 0x80..<0x800:
            out.append(UInt8(0xC0 | (u >> 6)))
            out.append(UInt8(0x80 | (u & 0x3F)))
        case 0x800..<0x10000:
            out.append(UInt8(0xE0 | (u >> 12)))
            out.append(UInt8(0x80 | ((u >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (u & 0x3F)))
        default:
            out.append(UInt8(0xF0 | (u >> 18)))
            out.append(UInt8(0x80 | ((u >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((u >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (u & 0x3F)))
        }
    }

    /// Skips any JSON value (ignored members), bounded in depth.
    mutating func skipValue(depth: Int) throws(LineError) {
        guard depth < JSONImportParser.maxDepth else {
            throw LineError(reason: .malformedInput, column: i + 1, message: "nesting deeper than \(JSONImportParser.maxDepth)")
        }
        skipSpace()
        switch peek() {
        case 0x22:
            var sink: [UInt8] = []
            try readString(into: &sink)
        case 0x7B, 0x5B:
            let close: UInt8 = peek() == 0x7B ? 0x7D : 0x5D
            let isObject = close == 0x7D
            i += 1
            skipSpace()
            if peek() == close {
                i += 1
                return
            }
            while true {
                skipSpace()
                if isObject {
                    var sink: [UInt8] = []
                    try readString(into: &sink)
                    skipSpace()
                    try expect(0x3A, "':' after a member name")
                }
                try skipValue(depth: depth + 1)
                skipSpace()
                if peek() == 0x2C {
                    i += 1
                    continue
                }
                try expect(close, isObject ? "',' or '}'" : "',' or ']'")
                return
            }
        case 0x74: try expectWord("true")
        case 0x66: try expectWord("false")
        case 0x6E: try expectWord("null")
        default:
            let col = i + 1
            let tok = scanNumberToken()
            guard !tok.isEmpty, NumberParsing.parseDouble(tok, allowSpecial: false) != nil else {
                throw LineError(reason: .malformedInput, column: col, message: "invalid JSON value \(quoteForError(tokenForError(at: col - 1)))")
            }
        }
    }
}
