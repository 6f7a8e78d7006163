import Testing
@testable import StarlingPromQL
import StarlingCore

/// Parser behaviour, checked against the error messages and shapes of Prometheus 2.42's parser
/// (cases ported from its parse tests; messages are compared by containment, as there).
@Suite struct ParserErrorTests {
    static let errorCases: [(String, String)] = [
    ("", "no expression found in input"),
    ("# just a comment\n\n", "no expression found in input"),
    ("1+", "unexpected end of input"),
    (".", "unexpected character: '.'"),
    ("2.5.", "unexpected character: '.'"),
    ("100..4", #"unexpected number ".4""#),
    ("0deadbeef", "bad number or duration syntax: \"0de\""),
    ("1 /", "unexpected end of input"),
    ("*1", "unexpected <op:*>"),
    ("(1))", "unexpected right parenthesis ')'"),
    ("((1)", "unclosed left parenthesis"),
    ("999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999", "out of range"),
    ("(", "unclosed left parenthesis"),
    ("1 and 1", "set operator \"and\" not allowed in binary scalar expression"),
    ("1 == 1", "1:3: parse error: comparisons between scalars must use BOOL modifier"),
    ("1 or 1", "set operator \"or\" not allowed in binary scalar expression"),
    ("1 unless 1", "set operator \"unless\" not allowed in binary scalar expression"),
    ("1 !~ 1", #"unexpected character after '!': '~'"#),
    ("1 =~ 1", #"unexpected character after '=': '~'"#),
    (#"-"string""#, #"unary expression only allowed on expressions of type scalar or instant vector, got "string""#),
    (#"-test[5m]"#, #"unary expression only allowed on expressions of type scalar or instant vector, got "range vector""#),
    (#"*test"#, "unexpected <op:*>"),
    ("1 offset 1d", "1:1: parse error: offset modifier must be preceded by an instant vector selector or range vector selector or a subquery"),
    ("foo offset 1s offset 2s", "offset may not be set multiple times"),
    ("a - on(b) ignoring(c) d", "1:11: parse error: unexpected <ignoring>"),
    ("foo and 1", "set operator \"and\" not allowed in binary scalar expression"),
    ("1 and foo", "set operator \"and\" not allowed in binary scalar expression"),
    ("foo or 1", "set operator \"or\" not allowed in binary scalar expression"),
    ("1 or foo", "set operator \"or\" not allowed in binary scalar expression"),
    ("foo unless 1", "set operator \"unless\" not allowed in binary scalar expression"),
    ("1 unless foo", "set operator \"unless\" not allowed in binary scalar expression"),
    ("1 or on(bar) foo", "vector matching only allowed between instant vectors"),
    ("foo == on(bar) 10", "vector matching only allowed between instant vectors"),
    ("foo + group_left(baz) bar", "unexpected <group_left>"),
    ("foo and on(bar) group_left(baz) bar", "no grouping allowed for \"and\" operation"),
    ("foo and on(bar) group_right(baz) bar", "no grouping allowed for \"and\" operation"),
    ("foo or on(bar) group_left(baz) bar", "no grouping allowed for \"or\" operation"),
    ("foo or on(bar) group_right(baz) bar", "no grouping allowed for \"or\" operation"),
    ("foo unless on(bar) group_left(baz) bar", "no grouping allowed for \"unless\" operation"),
    ("foo unless on(bar) group_right(baz) bar", "no grouping allowed for \"unless\" operation"),
    (#"http_requests{group="production"} + on(instance) group_left(job,instance) cpu_count{type="smp"}"#, "label \"instance\" must not occur in ON and GROUP clause at once"),
    ("foo + bool bar", "bool modifier can only be used on comparison operators"),
    ("foo + bool 10", "bool modifier can only be used on comparison operators"),
    ("foo and bool 10", "bool modifier can only be used on comparison operators"),
    (#"foo @ +Inf"#, "1:1: parse error: timestamp out of bounds for @ modifier: +Inf"),
    (#"foo @ -Inf"#, "1:1: parse error: timestamp out of bounds for @ modifier: -Inf"),
    (#"foo @ NaN"#, "1:1: parse error: timestamp out of bounds for @ modifier: NaN"),
    (#"{"#, "unexpected end of input inside braces"),
    (#"}"#, "unexpected character: '}'"),
    (#"some{"#, "unexpected end of input inside braces"),
    (#"some}"#, "unexpected character: '}'"),
    (#"some_metric{a=b}"#, "unexpected identifier \"b\" in label matching, expected string"),
    (#"some_metric{a:b="b"}"#, "unexpected character inside braces: ':'"),
    (#"foo{a*"b"}"#, "unexpected character inside braces: '*'"),
    (#"foo{gibberish}"#, #"unexpected "}" in label matching, expected label matching operator"#),
    (#"foo{1}"#, "unexpected character inside braces: '1'"),
    (#"{}"#, "vector selector must contain at least one non-empty matcher"),
    (#"{x=""}"#, "vector selector must contain at least one non-empty matcher"),
    (#"{x=~".*"}"#, "vector selector must contain at least one non-empty matcher"),
    (#"{x!~".+"}"#, "vector selector must contain at least one non-empty matcher"),
    (#"{x!="a"}"#, "vector selector must contain at least one non-empty matcher"),
    (#"foo{__name__="bar"}"#, #"metric name must not be set twice: "foo" or "bar""#),
    (#"foo{__name__= =}"#, #"1:15: parse error: unexpected "=" in label matching, expected string"#),
    (#"foo{,}"#, #"unexpected "," in label matching, expected identifier or "}""#),
    (#"foo{__name__ == "bar"}"#, #"1:15: parse error: unexpected "=" in label matching, expected string"#),
    (#"foo{__name__="bar" lol}"#, #"unexpected identifier "lol" in label matching, expected "," or "}""#),
    (#"foo[5mm]"#, "bad duration syntax: \"5mm\""),
    (#"foo[5m1]"#, "bad duration syntax: \"5m1\""),
    (#"foo[5m:1m1]"#, "bad number or duration syntax: \"1m1\""),
    (#"foo[5y1hs]"#, "not a valid duration string: \"5y1hs\""),
    (#"foo[5m1h]"#, "not a valid duration string: \"5m1h\""),
    (#"foo[5m1m]"#, "not a valid duration string: \"5m1m\""),
    (#"foo[0m]"#, "duration must be greater than 0"),
    (#"foo[]"#, "missing unit character in duration"),
    (#"foo[1]"#, "missing unit character in duration"),
    (#"some_metric[5m] OFFSET 1"#, "unexpected number \"1\" in offset, expected duration"),
    (#"some_metric[5m] OFFSET 1mm"#, "bad number or duration syntax: \"1mm\""),
    (#"some_metric[5m] OFFSET"#, "unexpected end of input in offset, expected duration"),
    (#"some_metric OFFSET 1m[5m]"#, "1:22: parse error: no offset modifiers allowed before range"),
    (#"some_metric[5m] @ 1m"#, "1:19: parse error: unexpected duration \"1m\" in @, expected timestamp"),
    (#"some_metric[5m] @"#, "1:18: parse error: unexpected end of input in @, expected timestamp"),
    (#"some_metric @ 1234 [5m]"#, "1:20: parse error: no @ modifiers allowed before range"),
    (#"(foo + bar)[5m]"#, "1:12: parse error: ranges only allowed for vector selectors"),
    ("sum without(==)(some_metric)", "unexpected <op:==> in grouping opts, expected label"),
    ("sum without(,)(some_metric)", #"unexpected "," in grouping opts, expected label"#),
    ("sum without(foo,,)(some_metric)", #"unexpected "," in grouping opts, expected label"#),
    (#"sum some_metric by (test)"#, "unexpected identifier \"some_metric\""),
    (#"sum (some_metric) by test"#, "unexpected identifier \"test\" in grouping opts"),
    (#"sum (some_metric) by test"#, "unexpected identifier \"test\" in grouping opts"),
    (#"sum () by (test)"#, "no arguments for aggregate expression provided"),
    ("MIN keep_common (some_metric)", "1:5: parse error: unexpected identifier \"keep_common\""),
    ("MIN (some_metric) keep_common", #"unexpected identifier "keep_common""#),
    (#"sum (some_metric) without (test) by (test)"#, "unexpected <by>"),
    (#"sum without (test) (some_metric) by (test)"#, "unexpected <by>"),
    (#"topk(some_metric)"#, "wrong number of arguments for aggregate expression provided, expected 2, got 1"),
    (#"topk(some_metric,)"#, "trailing commas not allowed in function call args"),
    (#"topk(some_metric, other_metric)"#, "1:6: parse error: expected type scalar in aggregation parameter, got instant vector"),
    (#"count_values(5, other_metric)"#, "1:14: parse error: expected type string in aggregation parameter, got scalar"),
    (#"rate(some_metric[5m]) @ 1234"#, "1:1: parse error: @ modifier must be preceded by an instant vector selector or range vector selector or a subquery"),
    ("floor()", "expected 1 argument(s) in call to \"floor\", got 0"),
    ("floor(some_metric, other_metric)", "expected 1 argument(s) in call to \"floor\", got 2"),
    ("floor(some_metric, 1)", "expected 1 argument(s) in call to \"floor\", got 2"),
    ("floor(1)", "expected type instant vector in call to function \"floor\", got scalar"),
    ("hour(some_metric, some_metric, some_metric)", "expected at most 1 argument(s) in call to \"hour\", got 3"),
    ("time(some_metric)", "expected 0 argument(s) in call to \"time\", got 1"),
    ("non_existent_function_far_bar()", "unknown function with name \"non_existent_function_far_bar\""),
    ("rate(some_metric)", "expected type range vector in call to function \"rate\", got instant vector"),
    ("-=", #"unexpected "=""#),
    ("++-++-+-+-<", #"unexpected <op:<>"#),
    ("e-+=/(0)", #"unexpected "=""#),
    ("a>b()", #"unknown function"#),
    ("rate(avg)", #"expected type range vector"#),
    ("`\\``", "unterminated raw string"),
    (#""\"#, "escape sequence not terminated"),
    (#""\c""#, "unknown escape sequence U+0063 'c'"),
    ("test[5d] OFFSET 10s [10m:5s]", "1:1: parse error: subquery is only allowed on instant vector, got matrix"),
    (#"(foo + bar{nm="val"})[5m:][10m:5s]"#, #"1:1: parse error: subquery is only allowed on instant vector, got matrix"#),
    ("rate(food[1m])[1h] offset 1h", #"1:15: parse error: ranges only allowed for vector selectors"#),
    ("rate(food[1m])[1h] @ 100", #"1:15: parse error: ranges only allowed for vector selectors"#),
    (#"start()"#, #"1:6: parse error: unexpected "(""#),
    (#"end()"#, #"1:4: parse error: unexpected "(""#),
        ("some_metric{a=\"\u{FFFD}\"}", "1:15: parse error: invalid UTF-8 rune"),
        (#"label_replace(a, `b`, `c\#u{FFFD}`, `d`, `.*`)"#, "1:23: parse error: invalid UTF-8 rune"),
        (#""\x.""#, "illegal character U+002E '.' in escape sequence"),
        ("foo @ 9223372036854775808.000000", "1:1: parse error: timestamp out of bounds for @ modifier: 9223372036854775808.000000"),
        ("foo @ -9223372036854775808.000000", "1:1: parse error: timestamp out of bounds for @ modifier: -9223372036854775808.000000"),
    ]

    @Test(arguments: errorCases)
    func reportsPrometheusError(input: String, message: String) {
        do {
            let e = try PromQLParser.parseExpr(input)
            Issue.record("expected error \(message) for \(input), parsed \(e)")
        } catch {
            #expect(error.description.contains(message), "input: \(input)")
        }
    }

    @Test(arguments: [#"foo["5m"]"#])
    func rejects(input: String) {
        #expect(throws: ParseErrors.self) { try PromQLParser.parseExpr(input) }
    }

    /// Prometheus accepts this 20,000-level tree (Go stacks grow) and reports the empty selector;
    /// Starling bounds the depth instead of risking its stack.
    @Test func deeplyNestedInputIsRejectedNotFatal() {
        let input = "(" + String(repeating: "-{}-1", count: 10000) + ")" + String(repeating: "[1m:]", count: 1000)
        do {
            _ = try PromQLParser.parseExpr(input)
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("expression nested too deeply (more than 1000 levels)"))
        }
        let parens = String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000)
        #expect(throws: ParseErrors.self) { try PromQLParser.parseExpr(parens) }
        // The same shape within the limit parses, and reports the empty selector like Prometheus.
        let small = "(" + String(repeating: "-{}-1", count: 200) + ")" + String(repeating: "[1m:]", count: 100)
        do {
            _ = try PromQLParser.parseExpr(small)
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("1:3: parse error: vector selector must contain at least one non-empty matcher"))
        }
    }

    @Test func longChainsWithinTheLimitWork() throws {
        let chain = (0..<990).map { "m\($0)" }.joined(separator: " or ")
        let e = try PromQLParser.parseExpr(chain)
        #expect(e.description == chain)
        #expect(e.pretty().contains("m0 or m1 or"))
    }

    @Test func multiLinePositions() {
        do {
            _ = try PromQLParser.parseExpr("sum(foo)\n  + bar{a=b}")
            Issue.record("expected an error")
        } catch {
            #expect(error.description == #"2:11: parse error: unexpected identifier "b" in label matching, expected string"#)
        }
    }
}

@Suite struct ParserTests {
    static let validInputs: [String] = [
    "1",
    "+Inf",
    "-Inf",
    ".5",
    "5.",
    "123.4567",
    "5e-3",
    "5e3",
    "0xc",
    "0755",
    "+5.5e-3",
    "-0755",
    "1 + 1",
    "1 - 1",
    "1 * 1",
    "1 % 1",
    "1 / 1",
    "1 == bool 1",
    "1 != bool 1",
    "1 > bool 1",
    "1 >= bool 1",
    "1 < bool 1",
    "1 <= bool 1",
    "-1^2",
    "-1*2",
    "-1+2",
    "-1^-2",
    "+1 + -2 * 1",
    "1 + 2/(3*1)",
    "1 < bool 2 - 1 * 2",
    "-some_metric",
    "+some_metric",
    " +some_metric",
    "foo * bar",
    "foo * sum",
    "foo == 1",
    "foo == bool 1",
    "2.5 / bar",
    "foo and bar",
    "foo or bar",
    "foo unless bar",
    "foo * on(test,blub) bar",
    "foo * on(test,blub) group_left bar",
    "foo and on(test,blub) bar",
    "foo and on() bar",
    "foo and ignoring(test,blub) bar",
    "foo and ignoring() bar",
    "foo unless on(bar) baz",
    "foo / on(test,blub) group_left(bar) bar",
    "foo / ignoring(test,blub) group_left(blub) bar",
    "foo / ignoring(test,blub) group_left(bar) bar",
    "foo - on(test,blub) group_right(bar,foo) bar",
    "foo - ignoring(test,blub) group_right(bar,foo) bar",
    "foo",
    "min",
    "foo offset 5m",
    "foo offset -7m",
    #"foo OFFSET 1h30m"#,
    #"foo OFFSET 1m30ms"#,
    #"foo @ 1603774568"#,
    #"foo @ -100"#,
    #"foo @ .3"#,
    #"foo @ 3."#,
    #"foo @ 3.33"#,
    #"foo @ 3e2"#,
    #"foo @ 3e-1"#,
    #"foo @ 0xA"#,
    #"foo @ -3.3e1"#,
    #"foo:bar{a="bc"}"#,
    #"foo{NaN='bc'}"#,
    #"foo{bar='}'}"#,
    #"foo{a="b", foo!="bar", test=~"test", bar!~"baz"}"#,
    #"foo{a="b", foo!="bar", test=~"test", bar!~"baz",}"#,
    "test[5s]",
    "test[5m]",
    #"foo[5m30s]"#,
    "test[5h] OFFSET 5m",
    "test[5d] OFFSET 10s",
    "test[5w] offset 2w",
    #"test{a="b"}[5y] OFFSET 3d"#,
    #"test{a="b"}[5y] @ 1603774699"#,
    "sum by (foo)(some_metric)",
    "avg by (foo)(some_metric)",
    "max by (foo)(some_metric)",
    "sum without (foo) (some_metric)",
    "sum (some_metric) without (foo)",
    "stddev(some_metric)",
    "stdvar by (foo)(some_metric)",
    "sum by ()(some_metric)",
    "sum by (foo,bar,)(some_metric)",
    "sum by (foo,)(some_metric)",
    "topk(5, some_metric)",
    #"count_values("value", some_metric)"#,
    "time()",
    #"floor(some_metric{foo!="bar"})"#,
    "rate(some_metric[5m])",
    "round(some_metric)",
    "round(some_metric, 5)",
    "sum(sum)",
    "a + sum",
    #""double-quoted string \" with escaped quote""#,
    #"'single-quoted string \' with escaped quote'"#,
    "`backtick-quoted string`",
    #"foo{bar="baz"}[10m:6s]"#,
    #"foo{bar="baz"}[10m5s:1h6ms]"#,
    #"foo[10m:]"#,
    #"min_over_time(rate(foo{bar="baz"}[2s])[5m:5s])"#,
    #"min_over_time(rate(foo{bar="baz"}[2s])[5m:])[4m:3s]"#,
    #"min_over_time(rate(foo{bar="baz"}[2s])[5m:] offset 4m)[4m:3s]"#,
    #"min_over_time(rate(foo{bar="baz"}[2s])[5m:] @ 1603775091)[4m:3s]"#,
    #"min_over_time(rate(foo{bar="baz"}[2s])[5m:] @ -160377509)[4m:3s]"#,
    "sum without(and, by, avg, count, alert, annotations)(some_metric) [30m:10s]",
    #"some_metric OFFSET 1m [10m:5s]"#,
    #"some_metric @ 123 [10m:5s]"#,
    #"some_metric @ 123 offset 1m [10m:5s]"#,
    #"some_metric offset 1m @ 123 [10m:5s]"#,
    #"some_metric[10m:5s] offset 1m @ 123"#,
    #"(foo + bar{nm="val"})[5m:]"#,
    #"(foo + bar{nm="val"})[5m:] offset 10m"#,
    #"(foo + bar{nm="val"} @ 1234)[5m:] @ 1603775019"#,
    #"foo @ start()"#,
    #"foo @ end()"#,
    #"test[5y] @ start()"#,
    #"test[5y] @ end()"#,
    #"foo[10m:6s] @ start()"#,
    #"foo[10m:6s] @ end()"#,
    #"start"#,
    #"end"#,
    #"start{end="foo"}"#,
    #"end{start="foo"}"#,
    #"foo unless on(start) bar"#,
    #"foo unless on(end) bar"#,
    ]

    /// Every accepted input prints to text that parses back to the same text.
    @Test(arguments: validInputs)
    func printedFormReparses(input: String) throws {
        let e = try PromQLParser.parseExpr(input)
        let printed = e.description
        let again = try PromQLParser.parseExpr(printed)
        #expect(again.description == printed, "input: \(input)")
    }

    static func tree(_ e: Expr) -> String {
        switch e {
        case .binary(let b): return "(\(b.op.canonicalText!) \(tree(b.lhs)) \(tree(b.rhs)))"
        case .unary(let u): return "(u\(u.op.canonicalText!) \(tree(u.expr)))"
        case .paren(let p): return "[\(tree(p.expr))]"
        default: return e.description
        }
    }

    @Test(arguments: [
        ("-1^2", "-1"),  // (-) folded over 1^2? no: unary of a binary stays unary
        ("1 + 2 * 3", "(+ 1 (* 2 3))"),
        ("1 * 2 + 3", "(+ (* 1 2) 3)"),
        ("2 ^ 3 ^ 2", "(^ 2 (^ 3 2))"),
        ("-a ^ b", "(u- (^ a b))"),
        ("-a * b", "(* (u- a) b)"),
        ("a or b and c", "(or a (and b c))"),
        ("a and b unless c", "(unless (and a b) c)"),
        ("a == b + c", "(== a (+ b c))"),
        ("a + b offset 5m", "(+ a b offset 5m)"),
        ("-a offset 5m", "(u- a offset 5m)"),
        ("a atan2 b * c", "(* (atan2 a b) c)"),
        ("a / b % c", "(% (/ a b) c)"),
        ("1 + -2 * 3", "(+ 1 (* -2 3))"),
        ("a > bool b or c", "(or (> a b) c)"),
    ])
    func precedence(input: String, expected: String) throws {
        let e = try PromQLParser.parseExpr(input)
        if input == "-1^2" {
            // Unary minus applies to 1^2 as a whole.
            #expect(Self.tree(e) == "(u- (^ 1 2))")
        } else {
            #expect(Self.tree(e) == expected, "input: \(input)")
        }
    }

    @Test(arguments: [
        ("1", 1.0), ("+Inf", Double.infinity), ("-Inf", -Double.infinity), (".5", 0.5), ("5.", 5),
        ("123.4567", 123.4567), ("5e-3", 0.005), ("5e3", 5000), ("0xc", 12), ("0755", 493),
        ("+5.5e-3", 0.0055), ("-0755", -493), ("08", 8), ("1e+2", 100), ("iNf", .infinity),
    ])
    func numberLiterals(input: String, value: Double) throws {
        guard case .number(let n) = try PromQLParser.parseExpr(input) else {
            Issue.record("not a number literal: \(input)")
            return
        }
        #expect(n.value == value)
    }

    @Test func nanLiteral() throws {
        guard case .number(let n) = try PromQLParser.parseExpr("NaN") else { Issue.record("not a number"); return }
        #expect(n.value.isNaN)
    }

    @Test(arguments: [
        (#""\a\b\f\n\r\t\v\\\" - \377\u1234\U00010111☺""#, "\u{07}\u{08}\u{0C}\n\r\t\u{0B}\\\" - \u{FFFD}\u{1234}\u{10111}☺"),
        (#"'\a\' " x'"#, "\u{07}' \" x"),
        ("`raw \\n`", "raw \\n"),
    ])
    func stringLiterals(input: String, value: String) throws {
        guard case .string(let s) = try PromQLParser.parseExpr(input) else { Issue.record("not a string"); return }
        #expect(s.value == value)
    }

    @Test func selectorParts() throws {
        guard case .vectorSelector(let v) = try PromQLParser.parseExpr(#"foo:bar{a="b", c=~"d.*", e!="f", g!~"h",} offset -5m @ 100.5"#) else {
            Issue.record("not a selector")
            return
        }
        #expect(v.name == "foo:bar")
        #expect(v.matchers.map(\.description) == [#"a="b""#, #"c=~"d.*""#, #"e!="f""#, #"g!~"h""#, #"__name__="foo:bar""#])
        #expect(v.originalOffsetMs == -300_000)
        #expect(v.timestampMs == 100_500)
    }

    @Test func keywordsAsMetricAndLabelNames() throws {
        #expect(try PromQLParser.parseExpr("sum").description == "sum")
        #expect(try PromQLParser.parseExpr("offset").description == "offset")
        #expect(try PromQLParser.parseExpr("by{on=\"x\"}").description == #"by{on="x"}"#)
        #expect(try PromQLParser.parseExpr("sum by (on, bool, group_left) (x)").description == "sum by (on, bool, group_left) (x)")
        #expect(try PromQLParser.parseExpr("start + end").description == "start + end")
    }

    @Test func subqueryAndRange() throws {
        let e = try PromQLParser.parseExpr("max_over_time(rate(foo[5m])[1h30m:1m] offset 2m @ end())")
        #expect(e.description == "max_over_time(rate(foo[5m])[1h30m:1m] @ end() offset 2m)")
        guard case .call(let c) = e, case .subquery(let s) = c.args[0] else { Issue.record("shape"); return }
        #expect(s.rangeMs == 5_400_000)
        #expect(s.stepMs == 60_000)
        #expect(s.originalOffsetMs == 120_000)
        #expect(s.startOrEnd == .end)
    }

    @Test func groupModifiers() throws {
        let e = try PromQLParser.parseExpr("a * on(x, y) group_left(z) b")
        guard case .binary(let b) = e, let m = b.matching else { Issue.record("shape"); return }
        #expect(m.card == .manyToOne)
        #expect(m.on)
        #expect(m.matchingLabels == ["x", "y"])
        #expect(m.include == ["z"])
        guard case .binary(let s) = try PromQLParser.parseExpr("a and b") else { Issue.record("shape"); return }
        #expect(s.matching?.card == .manyToMany)
    }

    @Test func positions() throws {
        let e = try PromQLParser.parseExpr("  sum by (a) (rate(foo[5m]))  ")
        #expect(e.positionRange == PositionRange(start: 2, end: 28))
        guard case .aggregate(let a) = e, case .call(let c) = a.expr else { Issue.record("shape"); return }
        #expect(c.posRange == PositionRange(start: 14, end: 27))
        #expect(c.args[0].positionRange == PositionRange(start: 19, end: 26))
    }

    @Test func metricSelector() throws {
        let m = try PromQLParser.parseMetricSelector(#"up{job="a"}"#)
        #expect(m.map(\.description) == [#"job="a""#, #"__name__="up""#])
        #expect(throws: ParseErrors.self) { try PromQLParser.parseMetricSelector("up + 1") }
    }

    @Test func seriesDescriptions() throws {
        let (l, v) = try PromQLParser.parseSeriesDescription(#"http_requests{job="api"} 1+2x3 _ stale -1 _x2 5x1"#)
        #expect(l == Labels(["__name__": "http_requests", "job": "api"]))
        #expect(v.count == 4 + 1 + 1 + 1 + 2 + 2)
        #expect(v[0] == .value(1) && v[3] == .value(7) && v[4] == .omitted)
        if case .value(let s) = v[5] { #expect(StaleMarker.isStale(s)) } else { Issue.record("stale") }
        #expect(v[6] == .value(-1) && v[7] == .omitted && v[9] == .value(5) && v[10] == .value(5))
        for bad in [#"my_metric{a="b"} 1 3 _ 5 _a4"#, #"my_metric{a="b"} -3-3 -3"#, #"my_metric{a="b"} -3 -3-3"#,
                    #"my_metric{a="b"} -3 _-2"#, #"my_metric{a="b"} -3 3+3x4-4"#] {
            #expect(throws: ParseErrors.self) { try PromQLParser.parseSeriesDescription(bad) }
        }
    }
}

@Suite struct PrinterTests {
    @Test(arguments: [
        (#"sum by() (task:errors:rate10s{job="s"})"#, #"sum(task:errors:rate10s{job="s"})"#),
        (#"sum by(code) (task:errors:rate10s{job="s"})"#, #"sum by (code) (task:errors:rate10s{job="s"})"#),
        (#"sum without() (task:errors:rate10s{job="s"})"#, #"sum without () (task:errors:rate10s{job="s"})"#),
        (#"sum without(instance) (task:errors:rate10s{job="s"})"#, #"sum without (instance) (task:errors:rate10s{job="s"})"#),
        (#"topk(5, task:errors:rate10s{job="s"})"#, #"topk(5, task:errors:rate10s{job="s"})"#),
        (#"count_values("value", task:errors:rate10s{job="s"})"#, #"count_values("value", task:errors:rate10s{job="s"})"#),
        ("a - on() c", "a - on () c"),
        ("a - on(b) c", "a - on (b) c"),
        ("a - on(b) group_left(x) c", "a - on (b) group_left (x) c"),
        ("a - on(b) group_left(x, y) c", "a - on (b) group_left (x, y) c"),
        ("a - on(b) group_left c", "a - on (b) group_left () c"),
        ("a - on(b) group_left() (c)", "a - on (b) group_left () (c)"),
        ("a - ignoring(b) c", "a - ignoring (b) c"),
        ("a - ignoring() c", "a - c"),
        ("up > bool 0", "up > bool 0"),
        ("a offset 1m", "a offset 1m"),
        ("a offset -7m", "a offset -7m"),
        (#"a{c="d"}[5m] offset 1m"#, #"a{c="d"}[5m] offset 1m"#),
        ("a[5m] offset 1m", "a[5m] offset 1m"),
        ("a[12m] offset -3m", "a[12m] offset -3m"),
        ("a[1h:5m] offset 1m", "a[1h:5m] offset 1m"),
        (#"{__name__="a"}"#, #"{__name__="a"}"#),
        (#"a{b!="c"}[1m]"#, #"a{b!="c"}[1m]"#),
        (#"a{b=~"c"}[1m]"#, #"a{b=~"c"}[1m]"#),
        (#"a{b!~"c"}[1m]"#, #"a{b!~"c"}[1m]"#),
        ("a @ 10", "a @ 10.000"),
        ("a[1m] @ 10", "a[1m] @ 10.000"),
        ("a @ start()", "a @ start()"),
        ("a[1m] @ end()", "a[1m] @ end()"),
        ("a[90d]", "a[90d]"), ("a[1y]", "a[1y]"), ("a[14d]", "a[2w]"), ("a[1500ms]", "a[1s500ms]"),
        ("1e6", "1e+06"), ("123456", "123456"), ("0.0001", "0.0001"), ("0.00001", "1e-05"),
        ("1234567.5", "1.2345675e+06"), ("-0.5", "-0.5"), ("NaN", "NaN"), ("-Inf", "-Inf"),
        (#"foo{a="\n\x01☺\u200b"}"#, #"foo{a="\n\x01☺\u200b"}"#),
        ("-(foo)", "-(foo)"),
    ])
    func printsLikePrometheus(input: String, output: String) throws {
        #expect(try PromQLParser.parseExpr(input).description == output)
    }

    @Test(arguments: [
        (#"sum without(job,foo) (task:errors:rate10s{job="s"})"#, 10, "sum without (job, foo) (\n  task:errors:rate10s{job=\"s\"}\n)"),
        (#"topk(10, ask:errors:rate10s{job="s"})"#, 10, "topk(\n  10,\n  ask:errors:rate10s{job=\"s\"}\n)"),
        ("a == bool 1", 10, "  a\n== bool\n  1"),
        ("foo_1 + foo_2 + foo_3", 10, "    foo_1\n  +\n    foo_2\n+\n  foo_3"),
        ("foo + baar + foo_3", 10, "  foo + baar\n+\n  foo_3"),
        ("foo_1 + ignoring(foo) foo_2 + ignoring(job) group_left foo_3 + on(instance) group_right foo_4", 10,
         "      foo_1\n    + ignoring (foo)\n      foo_2\n  + ignoring (job) group_left ()\n    foo_3\n+ on (instance) group_right ()\n  foo_4"),
        ("max_over_time(rate(demo_api_request_duration_seconds_count[1m])[1m:] @ start() offset 1m)", 10,
         "max_over_time(\n  rate(\n    demo_api_request_duration_seconds_count[1m]\n  )[1m:] @ start() offset 1m\n)"),
        ("((_foo_long_))", 10, "(\n  (\n    _foo_long_\n  )\n)"),
        ("-foo_long_long", 10, "-foo_long_long"),
        ("sum(rate(x[5m]))", 100, "sum(rate(x[5m]))"),
    ])
    func prettifies(input: String, width: Int, output: String) throws {
        #expect(try PromQLParser.parseExpr(input).pretty(maxLineLength: width) == output)
    }
}
