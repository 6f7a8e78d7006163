import StarlingCore
import Testing

@testable import StarlingAlerting

@Suite struct MatcherParserTests {
    let p = MatcherParser()

    @Test func bracedListWithAllOperators() throws {
        let ms = try p.parseList(#"{a="b", c!="d", e=~"f.*", g!~"h|i"}"#)
        #expect(ms.map(\.kind) == [.equal, .notEqual, .regexMatch, .regexNoMatch])
        #expect(ms.map(\.name) == ["a", "c", "e", "g"])
        #expect(ms.map(\.value) == ["b", "d", "f.*", "h|i"])
    }

    @Test func unbracedLegacyFormAsAmtoolSends() throws {
        // `amtool silence add alertname=Foo instance=~"web.*"` joins its arguments with commas.
        let ms = try p.parseList(#"alertname=Foo,instance=~"web.*",env!=prod"#)
        #expect(ms.count == 3)
        #expect(ms[0] == LabelMatcher.eq("alertname", "Foo"))
        #expect(ms[1].kind == .regexMatch && ms[1].value == "web.*")
        #expect(ms[2].kind == .notEqual && ms[2].value == "prod")
    }

    @Test func whitespaceTrailingCommaAndEmptyLists() throws {
        #expect(try p.parseList("  { a = \"b\" , c =~ d ,  } ").count == 2)
        #expect(try p.parseList("{}").isEmpty)
        #expect(try p.parseList("").isEmpty)
        #expect(try p.parseList("   ").isEmpty)
    }

    @Test func quotedValuesWithEscapesAndSeparators() throws {
        let ms = try p.parseList(#"{msg="a, \"quoted\" } value\n", path="C:\\x"}"#)
        #expect(ms[0].value == "a, \"quoted\" } value\n")
        #expect(ms[1].value == "C:\\x")
    }

    @Test func quotedUTF8LabelNames() throws {
        let ms = try p.parseList(#"{"service.name"="api", "größe"=~"x"}"#)
        #expect(ms[0].name == "service.name")
        #expect(ms[1].name == "größe")
    }

    @Test func emptyValueMatchesAbsentLabel() throws {
        let m = try p.parseOne(#"team="""#)
        #expect(m.matches(Labels(["a": "b"])))
        #expect(!m.matches(Labels(["team": "x"])))
        let unquoted = try p.parseList("team=")
        #expect(unquoted == [m])
    }

    @Test func regexIsAnchored() throws {
        let m = try p.parseOne(#"job=~"api""#)
        #expect(m.matches(Labels(["job": "api"])))
        #expect(!m.matches(Labels(["job": "api-2"])))
        #expect(!m.matches(Labels(["job": "my-api"])))
    }

    @Test func formatRoundTrips() throws {
        let src = #"{a="b", "x.y"!="q\"z", e=~"f.*", g!~"\n"}"#
        let ms = try p.parseList(src)
        #expect(formatMatchers(ms) == src)
        #expect(try p.parseList(formatMatchers(ms)) == ms)
    }

    private func failure(_ s: String) -> MatcherParseError? {
        do {
            _ = try p.parseList(s)
            return nil
        } catch {
            return error
        }
    }

    @Test func errorsNamePositionAndRule() {
        var e = failure(#"{a="b""#)
        #expect(e?.rule == .missingClosingBrace)
        #expect(e?.offset == 6)
        e = failure(#"{a="b"} x"#)
        #expect(e?.rule == .unexpectedAfterClosingBrace && e?.offset == 8)
        e = failure(#"{a "b"}"#)
        #expect(e?.rule == .expectedOperator && e?.offset == 3)
        e = failure(#"{a="b" c="d"}"#)
        #expect(e?.rule == .expectedCommaOrEnd && e?.offset == 7)
        e = failure(#"{="b"}"#)
        #expect(e?.rule == .expectedLabelName && e?.offset == 1)
        e = failure(#"{a="b}"#)
        #expect(e?.rule == .unterminatedQuote && e?.offset == 3)
        e = failure(#"{a="\q"}"#)
        #expect(e?.rule == .invalidEscape && e?.offset == 4)
        e = failure(#"{a=~"(unclosed"}"#)
        #expect(e?.rule == .invalidRegex && e?.offset == 4)  // the value token starts at its quote
        e = failure(#"{a='b'}"#)
        #expect(e?.rule == .expectedValue && e?.offset == 3)
        #expect(failure(#"{a="b",,}"#)?.rule == .expectedLabelName)
        let text = e?.description ?? ""
        #expect(text.hasPrefix("3: expected a value: single quotes"), "\(text)")
    }

    @Test func limitsAreEnforced() {
        var small = MatcherParser()
        small.maxMatchers = 2
        #expect(throws: MatcherParseError.self) { try small.parseList("a=1,b=2,c=3") }
        #expect((try? small.parseList("a=1,b=2"))?.count == 2)
        small.maxInputBytes = 4
        do {
            _ = try small.parseList("abc=def")
            Issue.record("expected a length error")
        } catch {
            #expect(error.rule == .inputTooLong)
        }
    }

    @Test func parseOneRejectsLists() {
        #expect(throws: MatcherParseError.self) { try p.parseOne("a=b,c=d") }
    }
}

@Suite struct FingerprintTests {
    // Golden values from prometheus/common's model tests (the fingerprint Alertmanager uses).
    @Test func matchesPrometheusModelFingerprint() {
        #expect(Labels.empty.alertFingerprint.rawValue == 14_695_981_039_346_656_037)
        #expect(Labels(["name": "garland, briggs", "fear": "love is not enough"]).alertFingerprint.rawValue == 5_799_056_148_416_392_346)
        #expect(Labels(["first-label": "first-label-value"]).alertFingerprint.rawValue == 5_146_282_821_936_882_169)
        #expect(
            Labels([
                "first-label": "first-label-value", "second-label": "second-label-value", "third-label": "third-label-value",
            ]).alertFingerprint.rawValue == 13_843_036_195_897_128_121)
    }

    @Test func hexFormRoundTrips() {
        let f = Labels(["alertname": "Up"]).alertFingerprint
        #expect("\(f)".utf8.count == 16)
        #expect(AlertFingerprint(hex: "\(f)") == f)
        #expect("\(AlertFingerprint(rawValue: 1))" == "0000000000000001")
        #expect(AlertFingerprint(hex: "xyz") == nil)
    }
}
