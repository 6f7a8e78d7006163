import StarlingCore
import StarlingTestKit
import Testing

@testable import StarlingIngest

private func parse(_ text: String, limits: IngestLimits = .default, namePolicy: NamePolicy = .reject) -> IngestResult {
    JSONImportParser.parse(Array(text.utf8), nowMs: testNowMs, limits: limits, namePolicy: namePolicy)
}

@Suite("JSON import")
struct JSONImportTests {
    @Test func vmExportLines() {
        let body = """
            {"metric":{"__name__":"up","job":"node","instance":"a:9100"},"values":[1,0,1],"timestamps":[1699999990000,1699999995000,1700000000000]}
            {"metric":{"__name__":"temp","loc":"caf\\u00e9 \\"x\\" \\ud83d\\ude00"},"values":[-1.5e2,null,"NaN","Inf","-Infinity"],"timestamps":[1,2,3,4,5]}
            """
        var limits = IngestLimits()
        limits.maxSampleAgeMs = nil
        let r = parse(body, limits: limits)
        #expect(r.isSuccess, "\(r.errors)")
        #expect(sameSamples(
            r.samples(L(["__name__": "up", "job": "node", "instance": "a:9100"]))!,
            [Sample(1_699_999_990_000, 1), Sample(1_699_999_995_000, 0), Sample(1_700_000_000_000, 1)]))
        let t = r.samples(L(["__name__": "temp", "loc": "café \"x\" 😀"]))!
        #expect(t.count == 5)
        #expect(t[0].value == -150)
        #expect(t[1].value.isNaN && t[2].value.isNaN)
        #expect(t[3].value == .infinity && t[4].value == -.infinity)
        #expect(r.acceptedSamples == 8)
        #expect(r.lines == 2)
    }

    @Test func memberOrderWhitespaceAndUnknownMembers() {
        let r = parse(#"  { "timestamps" : [ 1700000000000 ] , "extra": {"a":[1,{"b":null}],"c":true}, "values":[ 2 ], "metric" : { "__name__" : "m" } }  "#)
        #expect(r.isSuccess, "\(r.errors)")
        #expect(r.series.first?.samples.first?.value == 2)
    }

    @Test func malformedLinesNameLineAndColumn() {
        let good = #"{"metric":{"__name__":"m"},"values":[1],"timestamps":[1700000000000]}"#
        let cases: [(String, RejectionReason, Int)] = [
            ("not json", .malformedInput, 1),
            (#"{"metric":{"__name__":"m"},"values":[1],"timestamps":[1700000000000]"#, .malformedInput, 69),
            (#"{"metric":{"__name__":"m"},"values":[1,2],"timestamps":[1700000000000]}"#, .valueTimestampCountMismatch, 1),
            (#"{"metric":{"__name__":"m"},"values":[],"timestamps":[]}"#, .malformedInput, 1),
            (#"{"metric":{"__name__":"m"},"timestamps":[1700000000000]}"#, .malformedInput, 1),
            (#"{"values":[1],"timestamps":[1700000000000]}"#, .malformedInput, 1),
            (#"{"metric":{"__name__":"m"},"values":[true],"timestamps":[1700000000000]}"#, .invalidValue, 38),
            (#"{"metric":{"__name__":"m"},"values":["abc"],"timestamps":[1700000000000]}"#, .invalidValue, 38),
            (#"{"metric":{"__name__":"m"},"values":[1],"timestamps":[1.5]}"#, .invalidTimestamp, 55),
            (#"{"metric":{"__name__":1},"values":[1],"timestamps":[1700000000000]}"#, .malformedInput, 23),
            (#"{"metric":{"job":"x"},"values":[1],"timestamps":[1700000000000]}"#, .missingMetricName, 11),
            (#"{"metric":{"__name__":"a-b"},"values":[1],"timestamps":[1700000000000]}"#, .invalidMetricName, 11),
            (#"{"metric":{"__name__":"m","a":"x\u0000"},"values":[1],"timestamps":[1700000000000]}"#, .nulByte, 11),
            (#"{"metric":{"__name__":"m"},"metric":{"__name__":"m"},"values":[1],"timestamps":[1700000000000]}"#, .malformedInput, 28),
            (#"{"metric":{"__name__":"m\q"},"values":[1],"timestamps":[1700000000000]}"#, .malformedInput, 25),
            (#"{"metric":{"__name__":"m"},"values":[1],"timestamps":[1700000000000]} x"#, .malformedInput, 71),
        ]
        for (line, reason, column) in cases {
            let r = parse(good + "\n" + line + "\n" + good)
            #expect(r.series.count == 1, "\(line)")
            #expect(r.errorCount == 1, "\(line): \(r.errors)")
            #expect(r.errors.first?.reason == reason, "\(line): \(r.errors)")
            #expect(r.errors.first?.location.line == 2, "\(line)")
            #expect(r.errors.first?.location.column == column, "\(line): \(r.errors)")
        }
    }

    @Test func samplesOutsideTheWindowAreRejectedIndividually() {
        let old = testNowMs - 6 * 365 * Millis.day
        let future = testNowMs + 2 * Millis.hour
        let r = parse(#"{"metric":{"__name__":"m"},"values":[1,2,3,4],"timestamps":[\#(old),\#(testNowMs),\#(future),\#(old)]}"#)
        #expect(r.acceptedSamples == 1)
        #expect(r.rejectedSamplesByReason == [.timestampTooOld: 2, .timestampTooNew: 1])
        #expect(r.errorCount == 2)
    }

    @Test func sanitizePolicyRenames() {
        let r = parse(#"{"metric":{"__name__":"a.b","x-y":"1"},"values":[1],"timestamps":[1700000000000]}"#, namePolicy: .sanitize)
        #expect(r.series.first?.labels == L(["__name__": "a_b", "x_y": "1"]))
    }

    @Test func streamingEquivalenceAndFuzz() {
        let body = Array("""
            {"metric":{"__name__":"up","job":"a"},"values":[1,2],"timestamps":[1700000000000,1700000001000]}\r
            {"metric":{"__name__":"up","job":"a"},"values":[2],"timestamps":[1700000001000]}
            garbage
            {"metric":{"__name__":"x","s":"\\u00e9\\n"},"values":[null,"Inf"],"timestamps":[1700000000000,1700000000001]}
            """.utf8)
        let whole = JSONImportParser.parse(body, nowMs: testNowMs)
        #expect(whole.series.count == 2)
        #expect(whole.duplicateSamplesDropped == 1)
        #expect(whole.errorCount == 1)
        var p = JSONImportParser(nowMs: testNowMs)
        for b in body { p.feed([b]) }
        #expect(sameResult(p.finish(), whole))

        var rng = SeededRandom(seed: 99)
        let alphabet: [UInt8] = Array("{}[]\":,\\u0123456789.eE-+ntfrl \n".utf8) + [0, 0xFF]
        for _ in 0..<2000 {
            var b = body
            for _ in 0..<Int.random(in: 1...5, using: &rng) {
                let pos = Int.random(in: 0..<b.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: b[pos] = alphabet.randomElement(using: &rng)!
                case 1: b.insert(alphabet.randomElement(using: &rng)!, at: pos)
                default: b.remove(at: pos)
                }
            }
            let w = JSONImportParser.parse(b, nowMs: testNowMs)
            var q = JSONImportParser(nowMs: testNowMs)
            var i = 0
            while i < b.count {
                let n = Int.random(in: 1...9, using: &rng)
                q.feed(Array(b[i..<min(b.count, i + n)]))
                i += n
            }
            #expect(sameResult(q.finish(), w))
        }
    }

    @Test func deepNestingIsBounded() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        let r = parse(#"{"x":\#(deep),"metric":{"__name__":"m"},"values":[1],"timestamps":[1700000000000]}"#)
        #expect(r.errors.first?.reason == .malformedInput)
        #expect(r.errors.first?.message.contains("nesting") == true)
    }
}
