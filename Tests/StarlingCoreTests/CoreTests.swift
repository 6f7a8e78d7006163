import StarlingCore
import StarlingTestKit
import Testing

@Suite struct XXH64Tests {
    // Reference values from the Python `xxhash` package (the C reference implementation).
    @Test(arguments: [
        ([UInt8](), UInt64(0), UInt64(0xef46db3751d8e999)),
        ([UInt8](), 12345, 0x95584af7701f808d),
        (Array("a".utf8), 0, 0xd24ec4f1a98c6e5b),
        (Array("abc".utf8), 0, 0x44bc2cf5ad770999),
        (Array("abc".utf8), 12345, 0x1700e64f6f23509),
        (Array("0123456789abcdef0123456789abcdef!".utf8), 0, 0x8afff4daac4e677e),
        (Array("0123456789abcdef0123456789abcdef!".utf8), 12345, 0x6542508015c15f85),
        ((0..<100).map { UInt8($0) }, 0, 0x6ac1e58032166597),
        ((0..<100).map { UInt8($0) }, 12345, 0x28ba1ae2de4de27),
    ])
    func matchesReference(input: [UInt8], seed: UInt64, expected: UInt64) {
        #expect(XXH64.hash(input, seed: seed) == expected)
    }
}

@Suite struct LabelsTests {
    @Test func canonicalFormIsSortedWithoutEmptyValues() {
        let a = Labels(["b": "2", "a": "1", "c": ""])
        #expect(a.array == [Label("a", "1"), Label("b", "2")])
        #expect(a == Labels(["a": "1", "b": "2"]))
        #expect(a.bytes == [1, 0x61, 1, 0x31, 1, 0x62, 1, 0x32])
        #expect(a.get("a") == "1")
        #expect(a.get("c") == nil)
        #expect(a.count == 2)
    }

    @Test func identityIsBytewiseNotUnicodeEquivalence() {
        let composed = Labels(["n": "\u{e9}"])
        let decomposed = Labels(["n": "e\u{301}"])
        #expect(composed != decomposed)
        #expect(composed.stableHash != decomposed.stableHash)
    }

    @Test func equalityDiffersAtEveryByteOffset() {
        // Lengths around the 8-byte words the comparison steps by; a difference in each byte.
        for length in [1, 7, 8, 9, 15, 16, 17, 40] {
            let value = String(repeating: "v", count: length)
            let a = Labels(["n": value])
            #expect(a == Labels(canonicalBytes: Array(a.bytes)))
            for i in a.bytes.indices {
                var other = a.bytes
                other[i] ^= 0x01
                #expect(a != Labels(canonicalBytes: other), "length \(length), byte \(i)")
            }
            #expect(a != Labels(["n": value + "v"]))
        }
    }

    @Test func validatesUntrustedBytes() throws {
        let good = Labels(["a": "1", "b": "2"])
        #expect(try Labels.validatingCanonicalBytes(good.bytes) == good)
        #expect(throws: DecodeError.self) { try Labels.validatingCanonicalBytes([1, 0x62, 1, 0x32, 1, 0x61, 1, 0x31]) }  // unsorted
        #expect(throws: DecodeError.self) { try Labels.validatingCanonicalBytes([5, 0x61]) }  // truncated
        #expect(throws: DecodeError.self) { try Labels.validatingCanonicalBytes([1, 0x61, 0]) }  // empty value
        #expect(throws: DecodeError.self) { try Labels.validatingCanonicalBytes([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]) }
    }

    @Test func orderFollowsPrometheus() {
        let x = Labels(["__name__": "a", "job": "x"])
        let y = Labels(["__name__": "a", "job": "y"])
        let z = Labels(["__name__": "a"])
        #expect(z < x && x < y)
        #expect(Labels.compare(x, x) == 0)
        #expect(Labels(["a": "1", "b": "1"]) < Labels(["a": "1", "c": "1"]))
        #expect(Labels(["aa": "1"]) > Labels(["a": "2"]))
    }

    @Test func manipulation() {
        let l = Labels(["__name__": "up", "job": "x", "instance": "i"])
        #expect(l.droppingMetricName == Labels(["job": "x", "instance": "i"]))
        #expect(l.keeping(["job"]) == Labels(["job": "x"]))
        #expect(l.setting("job", "") == Labels(["__name__": "up", "instance": "i"]))
        #expect(l.setting("zone", "z") .get("zone") == "z")
        #expect(l.description == #"up{instance="i", job="x"}"#)
    }

    @Test func nameSyntax() {
        #expect(isValidLabelName("job_1"))
        #expect(!isValidLabelName("1job"))
        #expect(!isValidLabelName("a:b"))
        #expect(!isValidLabelName(""))
        #expect(isValidMetricName("a:b_c"))
        #expect(!isValidMetricName("a-b"))
    }
}

@Suite struct SeriesIDTests {
    @Test func shardIsHashModuloCountAndLeadsTheID() {
        let layout = ShardLayout.default
        let l = Labels(["__name__": "up", "job": "x"])
        let h = l.stableHash
        #expect(layout.shard(for: l).rawValue == UInt16(h % 1024))
        let id = layout.preferredSeriesID(forHash: h)
        #expect(id.shard == layout.shard(for: l))
        #expect(id.low == h >> 16 & 0xFFFF_FFFF_FFFF)
        #expect(id.nextProbe.shard == id.shard)
    }

    @Test func shardsAreBalanced() {
        var rng = SeededRandom(seed: 7)
        var counts = [Int](repeating: 0, count: 64)
        let layout = ShardLayout(shardCount: 64)
        for _ in 0..<64_000 {
            let l = Labels(["__name__": "m", "instance": String(rng.next())])
            counts[Int(layout.shard(for: l).rawValue)] += 1
        }
        #expect(counts.min()! > 850 && counts.max()! < 1150)
    }
}

@Suite struct MatcherTests {
    @Test func regexIsAnchoredAndDotMatchesNewline() throws {
        let m = try LabelMatcher(.regexMatch, "a", "fo+")
        #expect(m.matches("foo"))
        #expect(!m.matches("xfoo"))
        #expect(!m.matches("foox"))
        #expect(try LabelMatcher(.regexMatch, "a", "a.b").matches("a\nb"))
        #expect(try LabelMatcher(.regexMatch, "a", "(?i)ABC").matches("abc"))
    }

    @Test func fastPathsAgreeWithTheRegexEngine() throws {
        for (pattern, inputs) in [
            (".*", ["", "x", "\n"]), (".+", ["", "x"]), ("a|b|", ["a", "b", "", "c", "ab"]),
            ("foo.*", ["foo", "foobar", "fo", "xfoo"]), (#"a\.b"#, ["a.b", "axb"]),
        ] {
            let m = try LabelMatcher(.regexMatch, "n", pattern)
            let slow = try Regex("^(?s:" + pattern + ")$")
            for s in inputs { #expect(m.matches(s) == ((try? slow.wholeMatch(in: s)) != nil), "\(pattern) on \(s)") }
        }
        #expect(try LabelMatcher(.regexMatch, "n", "a|b").setMatches == ["a", "b"])
        #expect(try LabelMatcher(.regexMatch, "n", "a.*").setMatches == nil)
    }

    @Test func invalidRegexIsAnError() {
        #expect(throws: MatcherError.self) { try LabelMatcher(.regexMatch, "a", "(") }
    }

    @Test func emptyMatching() throws {
        #expect(try LabelMatcher(.notEqual, "a", "x").matchesEmpty)
        #expect(!(try LabelMatcher(.notEqual, "a", "").matchesEmpty))
        #expect(try LabelMatcher(.regexNoMatch, "a", ".+").matchesEmpty)
        #expect(!(try LabelMatcher(.regexMatch, "a", ".+").matchesEmpty))
    }

    /// Matching a label set (stored bytes compared in place for `=` and `!=`) agrees with
    /// matching the label's value as a string, absent labels counting as empty.
    @Test func matchingLabelSetsAgreesWithMatchingValues() throws {
        let values = ["", "a", "ab", "b", "é", "e\u{301}", "node-0001.example.net:9100", "node-0001.example.net:9101", String(repeating: "x", count: 200)]
        let sets = values.map { Labels(["__name__": "m", "instance": $0, "zz": "last"]) } + [Labels(["__name__": "m"])]
        for labels in sets {
            for name in ["instance", "zz", "__name__", "missing", "inst"] {
                for value in values + ["last", "m"] {
                    for kind in LabelMatcher.Kind.allCases {
                        let m = try LabelMatcher(kind, name, value)
                        #expect(m.matches(labels) == m.matches(labels.get(name) ?? ""), "\(m) on \(labels)")
                    }
                }
            }
        }
        #expect(LabelMatcher.eq("instance", "ab").matches(Labels(["instance": "ab"])))
        #expect(!LabelMatcher.eq("instance", "ab").matches(Labels(["instance": "abc"])))
        #expect(!LabelMatcher.eq("instance", "e\u{301}").matches(Labels(["instance": "é"])), "bytes, not canonical equivalence")
        #expect(try LabelMatcher(.notEqual, "missing", "").matches(Labels(["a": "b"])) == false)
    }
}

@Suite struct LabelOrderTests {
    /// `Labels.compare` (word-at-a-time skip of the common prefix) against the definition: pair by
    /// pair, name then value, bytewise; a set that is a prefix of the other first.
    @Test func compareMatchesPairwiseBytewiseOrder() {
        var rng = SeededRandom(seed: 21)
        let alphabet: [String] = ["", "a", "b", "ab", "node-0001.example.net:9100", "node-0002.example.net:9100", "é", "z\u{0}", String(repeating: "x", count: 130), String(repeating: "x", count: 129) + "y"]
        func randomLabels() -> Labels {
            var pairs: [String: String] = ["__name__": "node_cpu_seconds_total"]
            for name in ["cpu", "instance", "job", "mode", "zone"] where rng.next() % 3 != 0 {
                pairs[name] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
            }
            return Labels(pairs.filter { !$0.value.isEmpty }.map { Label($0.key, $0.value) })
        }
        func reference(_ a: Labels, _ b: Labels) -> Int {
            let x = a.array, y = b.array
            for (p, q) in zip(x, y) {
                for (u, v) in [(p.name, q.name), (p.value, q.value)] where u != v {
                    return Array(u.utf8).lexicographicallyPrecedes(Array(v.utf8)) ? -1 : 1
                }
            }
            return x.count == y.count ? 0 : (x.count < y.count ? -1 : 1)
        }
        for _ in 0..<20_000 {
            let a = randomLabels(), b = randomLabels()
            #expect(Labels.compare(a, b) == reference(a, b), "\(a) vs \(b)")
            #expect(Labels.compare(b, a) == -reference(a, b))
            #expect(Labels.compare(a, a) == 0)
        }
    }

    /// The keyed sort orders as `<` does, for selections that share a long prefix (one metric),
    /// that differ early (several metrics), that end where others go on, and whose first
    /// difference lies in a length prefix or beyond a value's first 8 bytes.
    @Test func sortByLabelsOrdersAsCompare() {
        var rng = SeededRandom(seed: 7)
        let values: [String] = ["", "a", "ab", "b", "ab\u{0}", "abcdefgh", "abcdefghi", "abcdefgh\u{0}",
                                "node-0001.example.net:9100", "node-0002.example.net:9100", "node-0001.example.net:91",
                                String(repeating: "x", count: 130), String(repeating: "x", count: 129) + "y", "é"]
        func pick() -> String { values[Int(rng.next() % UInt64(values.count))] }
        func randomLabels(names: [String]) -> Labels {
            var pairs: [String: String] = [:]
            for name in names where rng.next() % 4 != 0 { pairs[name] = pick() }
            return Labels(pairs.filter { !$0.value.isEmpty }.map { Label($0.key, $0.value) })
        }
        for round in 0..<400 {
            let oneMetric = round % 2 == 0
            let n = 1 + Int(rng.next() % 60)
            var items: [(Int, Labels)] = (0..<n).map { i in
                var l = randomLabels(names: ["cpu", "instance", "job", "mode"])
                if oneMetric {
                    l = Labels([Label("__name__", "node_cpu_seconds_total")] + l.array)
                } else if rng.next() % 3 != 0 {
                    l = Labels([Label("__name__", ["up", "upx", "node_load1", "node_load15"][Int(rng.next() % 4)])] + l.array)
                }
                return (i, l)
            }
            let want = items.sorted { Labels.compare($0.1, $1.1) < 0 }.map(\.1)
            items.sortByLabels { $0.1 }
            #expect(items.map(\.1) == want, "round \(round)")
        }
        var empty: [Labels] = []
        empty.sortByLabels { $0 }
        #expect(empty.isEmpty)
        var same = [Labels(["a": "1"]), Labels(["a": "1"]), Labels.empty]
        same.sortByLabels { $0 }
        #expect(same == [Labels.empty, Labels(["a": "1"]), Labels(["a": "1"])])
    }
}

@Suite struct RemovingLabelTests {
    @Test func cutsOutOnePairOrReturnsTheSameSet() {
        let l = Labels([Label("__name__", "up"), Label("a", "1"), Label("job", "x")])
        #expect(l.removingLabel(named: "__name__") == Labels([Label("a", "1"), Label("job", "x")]))
        #expect(l.removingLabel(named: "a") == Labels([Label("__name__", "up"), Label("job", "x")]))
        #expect(l.removingLabel(named: "job") == Labels([Label("__name__", "up"), Label("a", "1")]))
        #expect(l.removingLabel(named: "jo") == l)
        #expect(l.removingLabel(named: "up") == l, "values are not names")
        #expect(Labels.empty.removingLabel(named: "a") == .empty)
        let long = Labels([Label(String(repeating: "n", count: 200), String(repeating: "v", count: 300)), Label("z", "1")])
        #expect(long.removingLabel(named: String(repeating: "n", count: 200)) == Labels([Label("z", "1")]))
    }
}

@Suite struct FormattingTests {
    @Test(arguments: [
        (0.1, "0.1"), (1e-7, "0.0000001"), (1.5e20, "150000000000000000000"), (1e21, "1000000000000000000000"),
        (123.456, "123.456"), (-0.0, "-0"), (0.0, "0"), (100.0, "100"), (0.000123, "0.000123"), (-2.5, "-2.5"),
        (Double.nan, "NaN"), (Double.infinity, "+Inf"), (-Double.infinity, "-Inf"), (1e15, "1000000000000000"),
        (1234567890123456789.0, "1234567890123456800"),
    ])
    func goFormatFloatF(value: Double, expected: String) {
        #expect(formatSampleValue(value) == expected)
    }

    /// The byte-level formatter against a plain String re-spelling of `description`, and against
    /// parsing back, over values of every magnitude and sign.
    @Test func shortestDecimalMatchesAStringRespellingAndRoundTrips() {
        var rng = SeededRandom(seed: 11)
        var values: [Double] = [5e-324, .leastNormalMagnitude, .greatestFiniteMagnitude, 1e-7, 9.999999999999999e22, 0.1 + 0.2, 1e23]
        for _ in 0..<200_000 {
            let bits = rng.next()
            switch bits % 4 {
            case 0: values.append(Double(bitPattern: rng.next()))  // any double, NaNs included
            case 1: values.append(Double(Int64(bitPattern: rng.next()) >> Int64(rng.next() % 64)) / [1, 10, 100, 1000, 1e6][Int(rng.next() % 5)])
            case 2: values.append(Double(rng.next() >> 11) / Double(1 << 53) * Double(sign: .plus, exponent: Int(rng.next() % 200) - 100, significand: 1))
            default: values.append(-Double(rng.next() % 100_000) / 100)
            }
        }
        for v in values {
            let text = formatSampleValue(v)
            var bytes: [UInt8] = []
            appendSampleValue(v, to: &bytes)
            #expect(String(decoding: bytes, as: UTF8.self) == text)
            guard v.isFinite else { continue }
            #expect(text == Self.respelledDescription(v), "\(v.bitPattern)")
            #expect(!text.contains("e"))
            #expect(Double(text)?.bitPattern == v.bitPattern, "\(text) does not parse back to \(v)")
        }
    }

    /// Go's `'f', -1` spelling built from Swift's shortest digits with plain String operations.
    static func respelledDescription(_ v: Double) -> String {
        if v == 0 { return v.sign == .minus ? "-0" : "0" }
        var s = v.description
        let negative = s.hasPrefix("-")
        if negative { s.removeFirst() }
        var exponent = 0
        if let e = s.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(s[s.index(after: e)...])!
            s = String(s[..<e])
        }
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        var digits = Array(parts[0] + (parts.count > 1 ? parts[1] : ""))
        var point = parts[0].count + exponent
        while digits.count > 1, digits.first == "0" { digits.removeFirst(); point -= 1 }
        while digits.count > 1, digits.last == "0" { digits.removeLast() }
        let body: String
        if point <= 0 {
            body = "0." + String(repeating: "0", count: -point) + String(digits)
        } else if point >= digits.count {
            body = String(digits) + String(repeating: "0", count: point - digits.count)
        } else {
            body = String(digits[..<point]) + "." + String(digits[point...])
        }
        return negative ? "-" + body : body
    }

    @Test func staleMarkerIsASpecificNaN() {
        #expect(StaleMarker.value.isNaN)
        #expect(StaleMarker.isStale(StaleMarker.value))
        #expect(!StaleMarker.isStale(.nan))
    }

    @Test func varintsRoundTrip() throws {
        var rng = SeededRandom(seed: 3)
        var b: [UInt8] = []
        var values: [Int64] = [0, 1, -1, .max, .min]
        for _ in 0..<1000 { values.append(Int64(bitPattern: rng.next()) >> Int64.random(in: 0..<63, using: &rng)) }
        for v in values { b.appendVarint(v) }
        var r = ByteReader(b)
        for v in values { #expect(try r.readVarint() == v) }
        #expect(r.isAtEnd)
        var bad = ByteReader([0x80, 0x80])
        #expect(throws: DecodeError.self) { try bad.readUVarint() }
    }
}
