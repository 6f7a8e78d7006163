import StarlingCore

/// The query endpoints of the Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`,
/// `/api/v1/format_query`) as pure functions of the request's form parameters, so the HTTP
/// route only decodes the request and writes the response, and the in-process comparison with
/// Prometheus exercises exactly what a client sees: parameter parsing, error texts and the
/// status code of each error type, as Prometheus 2.42's `web/api/v1`.
public struct PrometheusQueryAPI: Sendable {
    public let engine: Engine
    public let limiter: QueryLimiter

    public init(engine: Engine, limiter: QueryLimiter = QueryLimiter()) {
        self.engine = engine
        self.limiter = limiter
    }

    /// An HTTP answer: status code and JSON body.
    public struct Response: Sendable {
        public var status: Int
        public var body: [UInt8]
    }

    /// `GET|POST /api/v1/query`: `query`, `time` (default now), `timeout`.
    public func query<C: Clock>(_ params: FormParameters, nowMs: Int64, querier: any Querier, clock: C) async -> Response
    where C.Duration == Duration {
        let timeMs: Int64
        if let t = params["time"], !t.isEmpty {
            guard let ms = parseAPITime(t) else {
                return Self.error(.badData("invalid parameter \"time\": Invalid time value for 'time': cannot parse \(goQuote(t)) to a valid timestamp"))
            }
            timeMs = ms
        } else {
            timeMs = nowMs
        }
        let timeout: Duration
        switch queryTimeout(params) {
        case .success(let d): timeout = d
        case .failure(let e): return Self.error(e)
        }
        let expr: Expr
        do {
            expr = try engine.parse(params["query"] ?? "")
        } catch {
            return Self.error(.badData("invalid parameter \"query\": \(error.description)"))
        }
        return await run(timeout: timeout, clock: clock) { cancellation async throws(PromQLError) in
            try await engine.instantQuery(expr, timeMs: timeMs, querier: querier, options: .init(cancellation: cancellation))
        }
    }

    /// `GET|POST /api/v1/query_range`: `query`, `start`, `end`, `step`, `timeout`.
    public func queryRange<C: Clock>(_ params: FormParameters, querier: any Querier, clock: C) async -> Response
    where C.Duration == Duration {
        guard let start = parseAPITime(params["start"] ?? "") else {
            return Self.error(.badData("invalid parameter \"start\": cannot parse \(goQuote(params["start"] ?? "")) to a valid timestamp"))
        }
        guard let end = parseAPITime(params["end"] ?? "") else {
            return Self.error(.badData("invalid parameter \"end\": cannot parse \(goQuote(params["end"] ?? "")) to a valid timestamp"))
        }
        if end < start {
            return Self.error(.badData("invalid parameter \"end\": end timestamp must not be before start time"))
        }
        let stepText = params["step"] ?? ""
        let step: Duration
        switch parseAPIDuration(stepText) {
        case .success(let d): step = d
        case .failure(let e): return Self.error(.badData("invalid parameter \"step\": \(e.description)"))
        }
        let stepMs = step.milliseconds
        if step <= .zero || stepMs <= 0 {
            return Self.error(.badData("invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer"))
        }
        // Times reach ±9.2e18 ms, so the span itself can overflow: that many points are too many.
        let (span, overflow) = end.subtractingReportingOverflow(start)
        if overflow || span / stepMs > Int64(engine.settings.maxPointsPerSeries) {
            engine.metrics.limitHit("max_points_per_series")
            return Self.error(.badData("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"))
        }
        let timeout: Duration
        switch queryTimeout(params) {
        case .success(let d): timeout = d
        case .failure(let e): return Self.error(e)
        }
        let expr: Expr
        do {
            expr = try engine.parse(params["query"] ?? "")
        } catch {
            return Self.error(error)
        }
        return await run(timeout: timeout, clock: clock) { cancellation async throws(PromQLError) in
            try await engine.rangeQuery(expr, startMs: start, endMs: end, stepMs: stepMs, querier: querier, options: .init(cancellation: cancellation))
        }
    }

    /// `GET|POST /api/v1/format_query`: the prettified expression.
    public func formatQuery(_ params: FormParameters) -> Response {
        do {
            let expr = try engine.parse(params["query"] ?? "")
            var data: [UInt8] = []
            PrometheusJSON.appendString(expr.pretty(), to: &data)
            return Response(status: 200, body: PrometheusJSON.success(rawData: data))
        } catch {
            return Self.error(.badData("invalid parameter \"query\": \(error.description)"))
        }
    }

    private func queryTimeout(_ params: FormParameters) -> Result<Duration, PromQLError> {
        guard let t = params["timeout"], !t.isEmpty else { return .success(engine.settings.timeout) }
        switch parseAPIDuration(t) {
        case .success(let d): return .success(Swift.min(d, engine.settings.timeout))
        case .failure(let e): return .failure(.badData("invalid parameter \"timeout\": \(e.description)"))
        }
    }

    private func run<C: Clock>(
        timeout: Duration, clock: C, _ body: @Sendable (QueryCancellation) async throws(PromQLError) -> QueryResult<PromValue>
    ) async -> Response where C.Duration == Duration {
        do {
            let r = try await limiter.run(timeout: timeout, clock: clock, body)
            return Response(status: 200, body: PrometheusJSON.queryResponse(r.value, warnings: r.warnings))
        } catch {
            if error == .timeout { engine.metrics.limitHit("timeout") }
            return Self.error(error)
        }
    }

    /// Prometheus's mapping of error types to status codes.
    public static func status(of e: PromQLError) -> Int {
        switch e {
        case .parse, .badData: return 400
        case .execution, .tooManySamples: return 422
        case .timeout, .canceled: return 503
        case .storage: return 500
        }
    }

    public static func error(_ e: PromQLError) -> Response {
        Response(status: status(of: e), body: PrometheusJSON.errorResponse(type: e.errorType, message: e.description))
    }
}

/// Form values of a request (query string, then a form-encoded body). Like Go's
/// `Request.FormValue`, the first value of a name wins.
public struct FormParameters: Sendable {
    private var values: [String: String] = [:]

    public init(_ pairs: [(String, String)]) {
        for (k, v) in pairs where values[k] == nil { values[k] = v }
    }

    public subscript(_ name: String) -> String? { values[name] }
}

/// Prometheus's API time syntax: Unix seconds with a fraction (rounded to milliseconds), or RFC
/// 3339 with an optional fraction and zone. Milliseconds since the epoch; nil when unparsable.
public func parseAPITime(_ s: String) -> Int64? {
    if case .success(let v) = parseGoFloat(s), v.isFinite {
        let whole = v.rounded(.towardZero)
        let frac = ((v - whole) * 1000).rounded() / 1000
        guard Swift.abs(whole) < 9.2e15 else { return nil }
        return Int64(whole) * 1000 + Int64((frac * 1000).rounded())
    }
    return parseRFC3339(s)
}

/// RFC 3339 (`2024-02-29T12:00:00.123Z`, `…+02:00`), the subset Go's `time.RFC3339Nano` accepts.
func parseRFC3339(_ s: String) -> Int64? {
    let b = Array(s.utf8)
    func num(_ at: Int, _ n: Int) -> Int? {
        guard at + n <= b.count else { return nil }
        var v = 0
        for i in at..<at + n {
            guard b[i] >= 0x30 && b[i] <= 0x39 else { return nil }
            v = v * 10 + Int(b[i] - 0x30)
        }
        return v
    }
    guard b.count >= 20, let year = num(0, 4), b[4] == UInt8(ascii: "-"), let month = num(5, 2), b[7] == UInt8(ascii: "-"),
        let day = num(8, 2), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t"), let hour = num(11, 2),
        b[13] == UInt8(ascii: ":"), let minute = num(14, 2), b[16] == UInt8(ascii: ":"), let second = num(17, 2)
    else { return nil }
    guard (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year), hour < 24, minute < 60, second < 60 else { return nil }
    var i = 19
    var fracMs = 0
    if i < b.count && b[i] == UInt8(ascii: ".") {
        i += 1
        var digits = 0
        while i < b.count && b[i] >= 0x30 && b[i] <= 0x39 {
            if digits < 3 { fracMs = fracMs * 10 + Int(b[i] - 0x30) }
            digits += 1
            i += 1
        }
        if digits == 0 { return nil }
        for _ in Swift.min(digits, 3)..<3 { fracMs *= 10 }
    }
    guard i < b.count else { return nil }
    var offsetSeconds = 0
    if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
        i += 1
    } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
        guard let oh = num(i + 1, 2), i + 3 < b.count, b[i + 3] == UInt8(ascii: ":"), let om = num(i + 4, 2) else { return nil }
        offsetSeconds = (oh * 3600 + om * 60) * (b[i] == UInt8(ascii: "-") ? -1 : 1)
        i += 6
    } else {
        return nil
    }
    guard i == b.count else { return nil }
    let days = daysFromCivil(year: year, month: month, day: day)
    let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetSeconds)
    return seconds * 1000 + Int64(fracMs)
}

private func daysIn(month: Int, year: Int) -> Int {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
private func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let mp = (month + 9) % 12
    let doy = (153 * mp + 2) / 5 + day - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146_097 + doe - 719_468
}

/// Prometheus's API duration syntax: seconds as a float (`30`, `0.5`), or a duration (`5m`).
public func parseAPIDuration(_ s: String) -> Result<Duration, NumberSyntaxError> {
    if case .success(let v) = parseGoFloat(s), !v.isNaN {
        let ns = v * 1e9
        if ns > 9.223372036854775807e18 || ns < -9.223372036854775808e18 {
            return .failure(NumberSyntaxError(description: "cannot parse \(goQuote(s)) to a valid duration. It overflows int64"))
        }
        return .success(.nanoseconds(Int64(ns)))
    }
    if case .success(let ms) = parsePromDuration(s) { return .success(.milliseconds(ms)) }
    return .failure(NumberSyntaxError(description: "cannot parse \(goQuote(s)) to a valid duration"))
}
