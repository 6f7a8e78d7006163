import StarlingCore
import StarlingTestKit
import Testing

@testable import StarlingIngest

private func parse(
    _ text: String, precision: InfluxPrecision = .nanoseconds, limits: IngestLimits = .default,
    naming: InfluxNaming = InfluxNaming(), db: String? = nil, enricher: Enricher = .none
) -> IngestResult {
    LineProtocolParser.parse(
        Array(text.utf8), precision: precision, nowMs: testNowMs, limits: limits, naming: naming, db: db, enricher: enricher)
}

private let t0ns = "1700000000000000000"  // testNowMs in ns

@Suite("Influx line protocol")
struct LineProtocolTests {
    @Test func basicLineWithTagsFieldsAndTimestamp() {
        let r = parse("cpu,host=a,region=eu usage_idle=99.5,usage_user=0.5 \(t0ns)\n")
        #expect(r.isSuccess)
        #expect(r.acceptedSamples == 2)
        #expect(r.lines == 1)
        #expect(sameSamples(r.samples(L(["__name__": "cpu_usage_idle", "host": "a", "region": "eu"]))!, [Sample(testNowMs, 99.5)]))
        #expect(sameSamples(r.samples(L(["__name__": "cpu_usage_user", "host": "a", "region": "eu"]))!, [Sample(testNowMs, 0.5)]))
        #expect(r.httpStatus == 204)
    }

    @Test func everyFieldType() {
        let r = parse(
            "m f=1.5,e=-1.5E-2,x=1e3,i=-12i,u=12u,t=t,T=T,tr=true,Tr=True,TR=TRUE,f0=f,F0=F,fa=false,Fa=False,FA=FALSE,n=NaN,inf=-Inf,s=\"42.25\",str=\"hello\" \(t0ns)")
        #expect(r.isSuccess, "\(r.errors)")
        let expected: [String: Double] = [
            "m_f": 1.5, "m_e": -0.015, "m_x": 1000, "m_i": -12, "m_u": 12, "m_t": 1, "m_T": 1, "m_tr": 1, "m_Tr": 1, "m_TR": 1,
            "m_f0": 0, "m_F0": 0, "m_fa": 0, "m_Fa": 0, "m_FA": 0, "m_inf": -.infinity, "m_s": 42.25,
        ]
        for (name, v) in expected {
            let s = r.samples(L(["__name__": name]))
            #expect(s?.first?.value == v, "\(name)")
        }
        #expect(r.samples(L(["__name__": "m_n"]))?.first?.value.isNaN == true)
        #expect(r.samples(L(["__name__": "m_str"])) == nil)
        #expect(r.skippedStringFields == 1)
        #expect(r.acceptedSamples == expected.count + 1)
    }

    @Test func integerAndUnsignedRanges() {
        let ok = parse("m a=9223372036854775807i,b=-9223372036854775808i,c=18446744073709551615u \(t0ns)")
        #expect(ok.isSuccess)
        #expect(ok.samples(L(["__name__": "m_c"]))?.first?.value == 18_446_744_073_709_551_615.0)
        for bad in ["m a=9223372036854775808i", "m a=-1u", "m a=18446744073709551616u", "m a=1.5i", "m a=12x", "m a=tru", "m a=--1", "m a=0x10", "m a=1e", "m a=."] {
            let r = parse(bad)
            #expect(r.errorCount == 1, "\(bad)")
            #expect(r.errors.first?.reason == .invalidValue, "\(bad)")
            #expect(r.errors.first?.location.column == 5, "\(bad)")
        }
    }

    @Test func escapingRules() {
        let line = #"my\ cpu\,x,ta\ g\=k=v\,a\ l\=u\\e,plain=a\b fi\,eld\=x=1,s="a \"quoted\" \\ string" \#(t0ns)"#
        let r = parse(line, naming: { var n = InfluxNaming(); n.namePolicy = .sanitize; return n }())
        #expect(r.isSuccess, "\(r.errors)")
        // Measurement "my cpu,x", field "fi,eld=x": sanitized into a metric name.
        let s = r.series.first!
        #expect(r.series.count == 1)
        #expect(s.labels.get("__name__") == "my_cpu_x_fi_eld_x")
        // Tag key "ta g=k" sanitized; value keeps its unescaped bytes.
        #expect(s.labels.get("ta_g_k") == #"v,a l=u\e"#)
        // A backslash before an ordinary byte is literal.
        #expect(s.labels.get("plain") == #"a\b"#)
        #expect(r.skippedStringFields == 1)
    }

    @Test func rejectPolicyReportsInvalidNames() {
        var naming = InfluxNaming()
        naming.namePolicy = .reject
        let r = parse("cpu.load,host=a value=1 \(t0ns)\ncpu,host-name=a value=1 \(t0ns)", naming: naming)
        #expect(r.errorCount == 2)
        #expect(r.errors[0].reason == .invalidMetricName)
        #expect(r.errors[0].location.line == 1)
        #expect(r.errors[1].reason == .invalidLabelName)
        #expect(r.errors[1].message.contains("host-name"))
        #expect(r.errors[1].location.line == 2)
    }

    @Test func sanitizingIsTheDefault() {
        let r = parse("disk.io,dev-name=sda1,1st=x read/bytes=1 \(t0ns)")
        #expect(r.isSuccess)
        #expect(r.series.first?.labels == L(["__name__": "disk_io_read_bytes", "dev_name": "sda1", "_1st": "x"]))
    }

    @Test func precisionsAllMeanTheSameInstant() {
        let cases: [(InfluxPrecision, String)] = [
            (.nanoseconds, "1700000000000000000"), (.microseconds, "1700000000000000"), (.milliseconds, "1700000000000"),
            (.seconds, "1700000000"), (.minutes, "28333333"), (.hours, "472222"),
        ]
        for (p, ts) in cases {
            let r = parse("m v=1 \(ts)", precision: p)
            let expected: Int64 = p == .minutes ? 28_333_333 * 60_000 : p == .hours ? 472_222 * 3_600_000 : testNowMs
            #expect(r.series.first?.samples.first?.timestampMs == expected, "\(p)")
        }
        #expect(InfluxPrecision(queryValue: nil) == .nanoseconds)
        #expect(InfluxPrecision(queryValue: "u") == .microseconds)
        #expect(InfluxPrecision(queryValue: "us") == .microseconds)
        #expect(InfluxPrecision(queryValue: "h") == .hours)
        #expect(InfluxPrecision(queryValue: "d") == nil)
        #expect(InfluxPrecision.nanoseconds.toMilliseconds(-1) == -1)
        #expect(InfluxPrecision.hours.toMilliseconds(Int64.max / 1000) == nil)
    }

    @Test func missingTimestampUsesNow() {
        let r = parse("m v=1\nm2 v=2   \n")
        #expect(r.series.map { $0.samples[0].timestampMs } == [testNowMs, testNowMs])
    }

    @Test func commentsBlankLinesCRLFAndWhitespace() {
        let r = parse("# comment\r\n\r\n   \n  m v=1 \(t0ns)\r\n\t# indented comment\nm v=2 \(Int64(testNowMs + 1) * 1_000_000)\r\n")
        #expect(r.isSuccess, "\(r.errors)")
        #expect(r.lines == 6)
        #expect(sameSamples(r.samples(L(["__name__": "m_v"]))!, [Sample(testNowMs, 1), Sample(testNowMs + 1, 2)]))
    }

    @Test func dbLabelAddedUnlessTagPresent() {
        let r = parse("m v=1 \(t0ns)\nm,db=own v=1 \(t0ns)", db: "telegraf")
        #expect(r.samples(L(["__name__": "m_v", "db": "telegraf"])) != nil)
        #expect(r.samples(L(["__name__": "m_v", "db": "own"])) != nil)
        var naming = InfluxNaming()
        naming.dbLabel = nil
        let r2 = parse("m v=1 \(t0ns)", naming: naming, db: "telegraf")
        #expect(r2.series.first?.labels == L(["__name__": "m_v"]))
        naming.dbLabel = "database"
        let r3 = parse("m v=1 \(t0ns)", naming: naming, db: "x")
        #expect(r3.series.first?.labels == L(["__name__": "m_v", "database": "x"]))
    }

    @Test func namingOptions() {
        var naming = InfluxNaming()
        naming.skipSingleField = true
        #expect(parse("cpu value=1 \(t0ns)", naming: naming).series.first?.labels == L(["__name__": "cpu"]))
        #expect(parse("cpu a=1,b=2 \(t0ns)", naming: naming).series.count == 2)
        naming = InfluxNaming()
        naming.skipMeasurement = true
        #expect(parse("cpu value=1 \(t0ns)", naming: naming).series.first?.labels == L(["__name__": "value"]))
        naming = InfluxNaming()
        naming.measurementFieldSeparator = "."
        naming.namePolicy = .reject
        #expect(parse("cpu value=1 \(t0ns)", naming: naming).errors.first?.reason == .invalidMetricName)
        // An empty measurement names the series after the field alone (VictoriaMetrics).
        #expect(parse(",host=a value=1 \(t0ns)").series.first?.labels == L(["__name__": "value", "host": "a"]))
    }

    @Test func emptyTagValueIsDropped() {
        let r = parse("m,a=,b=x v=1 \(t0ns)")
        #expect(r.series.first?.labels == L(["__name__": "m_v", "b": "x"]))
    }

    @Test func syntaxErrorsNameLineAndColumn() {
        let cases: [(String, RejectionReason, Int)] = [
            ("cpu", .malformedInput, 4),
            ("cpu,host=a", .malformedInput, 11),
            ("cpu,host v=1", .malformedInput, 9),
            ("cpu,=a v=1", .malformedInput, 5),
            ("cpu v", .malformedInput, 6),
            ("cpu =1", .malformedInput, 5),
            ("cpu v=", .malformedInput, 7),
            ("cpu v=1,", .malformedInput, 9),
            ("cpu v=\"abc", .malformedInput, 7),
            ("cpu v=1 12a", .malformedInput, 9),
            ("cpu v=1 1 2", .malformedInput, 11),
            ("cpu v=1\"x\"", .invalidValue, 7),
            ("cpu,a=b,v=1", .malformedInput, 12),
        ]
        for (line, reason, column) in cases {
            let r = parse("ok v=1 \(t0ns)\n" + line)
            #expect(r.acceptedSamples == 1, "\(line)")
            #expect(r.errorCount == 1, "\(line): \(r.errors)")
            #expect(r.errors.first?.reason == reason, "\(line): \(r.errors)")
            #expect(r.errors.first?.location.line == 2, "\(line)")
            #expect(r.errors.first?.location.column == column, "\(line): \(r.errors)")
            #expect(r.httpStatus == 400)
        }
    }

    @Test func timestampWindow() {
        var limits = IngestLimits()
        limits.maxSampleAgeMs = Millis.day
        limits.maxFutureSkewMs = Millis.minute
        let old = (testNowMs - 2 * Millis.day) * 1_000_000
        let future = (testNowMs + 2 * Millis.minute) * 1_000_000
        let r = parse("m a=1,b=2 \(old)\nm a=1 \(future)\nm a=1 \(t0ns)\nm a=1 99999999999999999999", limits: limits)
        #expect(r.acceptedSamples == 1)
        #expect(r.rejectedSamplesByReason == [.timestampTooOld: 2, .timestampTooNew: 1, .malformedInput: 1])
        #expect(r.errors.map(\.location.line) == [1, 2, 4])
    }

    @Test func labelRulesApplyToTags() {
        var limits = IngestLimits()
        limits.maxLabelsPerSeries = 3
        limits.maxLabelValueBytes = 8
        let r = parse(
            "m,a=1,b=2,c=3 v=1 \(t0ns)\nm,a=123456789 v=1 \(t0ns)\nm,a=x\u{0}y v=1 \(t0ns)\nm,__name__=x v=1,w=2 \(t0ns)", limits: limits)
        #expect(r.errors.map(\.reason) == [.tooManyLabels, .labelValueTooLong, .nulByte, .duplicateLabelName])
        #expect(r.errors[3].rejectedSamples == 2)
        var bad: [UInt8] = Array("m,a=".utf8) + [0xC3, 0x28] + Array(" v=1 \(t0ns)".utf8)
        let r2 = LineProtocolParser.parse(bad, nowMs: testNowMs)
        #expect(r2.errors.first?.reason == .invalidUTF8)
        bad = Array("m,a=".utf8) + [0xED, 0xA0, 0x80] + Array(" v=1".utf8)  // UTF-16 surrogate encoded in UTF-8
        #expect(LineProtocolParser.parse(bad, nowMs: testNowMs).errors.first?.reason == .invalidUTF8)
    }

    @Test func duplicatesInOneBodyAreDroppedAndSeriesMerged() {
        let r = parse("m v=1 \(t0ns)\nm v=1 \(t0ns)\nm v=2 \(t0ns)\nm v=3 \(Int64(testNowMs - 1) * 1_000_000)")
        #expect(r.series.count == 1)
        #expect(r.duplicateSamplesDropped == 1)
        #expect(sameSamples(r.series[0].samples, [Sample(testNowMs - 1, 3), Sample(testNowMs, 1), Sample(testNowMs, 2)]))
        #expect(r.acceptedSamples == 3)
    }

    @Test func overlongLinesAreSkippedWithoutBuffering() {
        var limits = IngestLimits()
        limits.maxInfluxLineBytes = 64
        let long = "m,tag=" + String(repeating: "x", count: 200) + " v=1"
        let body = "a v=1 \(t0ns)\n\(long)\nb v=1 \(t0ns)\n\(long)"
        let whole = parse(body, limits: limits)
        #expect(whole.acceptedSamples == 2)
        #expect(whole.errors.map(\.reason) == [.lineTooLong, .lineTooLong])
        #expect(whole.errors.map(\.location.line) == [2, 4])
        var p = LineProtocolParser(nowMs: testNowMs, limits: limits)
        for b in body.utf8 { p.feed([b]) }
        #expect(sameResult(p.finish(), whole))
    }

    @Test func enrichmentPrecedence() throws {
        let e = try Enricher(overriding: ["agent": "token-7", "job": "forced"], defaults: ["region": "eu", "job": "default"])
        let r = parse("m,agent=spoofed,region=us v=1 \(t0ns)\nm v=2 \(t0ns)", enricher: e)
        #expect(r.series.count == 2)
        #expect(r.series[0].labels == L(["__name__": "m_v", "agent": "token-7", "job": "forced", "region": "us"]))
        #expect(r.series[1].labels == L(["__name__": "m_v", "agent": "token-7", "job": "forced", "region": "eu"]))
    }

    @Test func takeSeriesStreamsWithoutLosingCounts() {
        var p = LineProtocolParser(nowMs: testNowMs)
        p.feed(Array("a v=1 \(t0ns)\nb v=1 \(t0ns)\n".utf8))
        let first = p.takeSeries()
        #expect(first.count == 2)
        p.feed(Array("c v=1 \(t0ns)".utf8))
        let r = p.finish()
        #expect(r.series.count == 1)
        #expect(r.acceptedSamples == 3)
    }

    /// A body exercising every rule, fed whole, byte by byte and in random pieces: the results
    /// must be identical.
    @Test func streamingEquivalence() {
        let body = """
            # header\r
            cpu,host=a,region=eu usage_idle=99.5,usage_user=5i \(t0ns)\r
            mem\\ x,host=b\\,c free=12u,ok=T,s="str \\" q",n="12" \(t0ns)

            bad line here
            disk,dev=sda read=1 oops
            net,if=eth0 rx=1e3,tx=-2.5E+2 1700000000000000001
            cpu,host=a,region=eu usage_idle=99.5,usage_user=5i \(t0ns)
            weird,tag=\u{00e9}t\u{00e9} v=1
            trailing v=1
            """
        let bytes = Array(body.utf8)
        var limits = IngestLimits()
        limits.maxInfluxLineBytes = 80
        let whole = LineProtocolParser.parse(bytes, nowMs: testNowMs, limits: limits, db: "db1")
        #expect(whole.errorCount == 2)
        #expect(whole.lines == 10)
        var byByte = LineProtocolParser(nowMs: testNowMs, limits: limits, db: "db1")
        for b in bytes { byByte.feed([b]) }
        #expect(sameResult(byByte.finish(), whole))
        var rng = SeededRandom(seed: 42)
        for _ in 0..<50 {
            var p = LineProtocolParser(nowMs: testNowMs, limits: limits, db: "db1")
            var i = 0
            while i < bytes.count {
                let n = Int.random(in: 1...17, using: &rng)
                p.feed(Array(bytes[i..<min(bytes.count, i + n)]))
                i += n
            }
            #expect(sameResult(p.finish(), whole))
        }
    }

    @Test func garbageNeverCrashes() {
        var rng = SeededRandom(seed: 7)
        let seed = Array("cpu,host=a\\ b,x=\"y\" f=1.5,g=2i,s=\"a\\\"b\" 1700000000000000000\n".utf8)
        let alphabet: [UInt8] = Array(" ,=\\\"\n\r#iu.-+eE0123456789tfTFx".utf8) + [0, 0xFF, 0xC3]
        for _ in 0..<2000 {
            var b = seed
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let pos = Int.random(in: 0..<b.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: b[pos] = alphabet.randomElement(using: &rng)!
                case 1: b.insert(alphabet.randomElement(using: &rng)!, at: pos)
                default: b.remove(at: pos)
                }
                if b.isEmpty { b = [0x20] }
            }
            let whole = LineProtocolParser.parse(b, nowMs: testNowMs)
            #expect(whole.acceptedSamples + whole.rejectedSamples >= 0)
            for e in whole.errors { #expect(e.location.line != nil) }
            var p = LineProtocolParser(nowMs: testNowMs)
            for x in b { p.feed([x]) }
            #expect(sameResult(p.finish(), whole))
        }
    }
}
