import Foundation
import StarlingCore
import StarlingTestKit
import Testing

@testable import StarlingIngest

@Suite("Validation and byte-level helpers")
struct ValidationTests {
    @Test func doubleParsingRoundTripsShortestRepresentations() {
        var rng = SeededRandom(seed: 3)
        for k in 0..<20_000 {
            let d: Double
            switch k % 4 {
            case 0: d = Double(bitPattern: rng.next())
            case 1: d = Double(Int64.random(in: -1_000_000...1_000_000, using: &rng)) / 1000
            case 2: d = Double.random(in: -1e20...1e20, using: &rng)
            default: d = Double(Int64.random(in: Int64.min...Int64.max, using: &rng))
            }
            let text = Array(d.description.utf8)
            let parsed = text.withUnsafeBytes { NumberParsing.parseDouble($0, allowSpecial: true) }
            if d.isNaN {
                #expect(parsed?.isNaN == true, "\(d)")
            } else {
                #expect(parsed?.bitPattern == d.bitPattern, "\(d.description)")
            }
        }
        let cases: [(String, Double?)] = [
            ("0", 0), ("-0", -0.0), ("1.", 1), (".5", 0.5), ("+2", 2), ("1e3", 1000), ("1E-3", 0.001),
            ("123456789012345678901234567890", 123456789012345678901234567890.0), ("0.1", 0.1),
            ("4.9e-324", 4.9e-324), ("1e400", .infinity), ("Inf", .infinity), ("-infinity", -.infinity),
            ("", nil), ("-", nil), (".", nil), ("e5", nil), ("1e", nil), ("1e+", nil), ("0x10", nil), ("1.2.3", nil),
            ("--1", nil), ("+nan", nil), ("1 ", nil),
        ]
        for (text, expected) in cases {
            let parsed = Array(text.utf8).withUnsafeBytes { NumberParsing.parseDouble($0, allowSpecial: true) }
            #expect(parsed?.bitPattern == expected?.bitPattern, "\(text)")
        }
    }

    @Test func integerParsing() {
        func i(_ s: String) -> Int64? { Array(s.utf8).withUnsafeBytes { NumberParsing.parseInt64($0) } }
        func u(_ s: String) -> UInt64? { Array(s.utf8).withUnsafeBytes { NumberParsing.parseUInt64($0) } }
        #expect(i("9223372036854775807") == .max)
        #expect(i("-9223372036854775808") == .min)
        #expect(i("9223372036854775808") == nil)
        #expect(i("-9223372036854775809") == nil)
        #expect(i("+5") == 5)
        #expect(i("") == nil && i("-") == nil && i("1a") == nil && i("99999999999999999999") == nil)
        #expect(u("18446744073709551615") == .max)
        #expect(u("18446744073709551616") == nil)
        #expect(u("-1") == nil && u("+") == nil)
    }

    @Test func utf8CheckAgreesWithTheStandardLibrary() {
        var rng = SeededRandom(seed: 4)
        let interesting: [UInt8] = [0x00, 0x41, 0x7F, 0x80, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 0xA0, 0x9F, 0x90, 0x8F]
        for _ in 0..<50_000 {
            let n = Int.random(in: 0...12, using: &rng)
            let bytes = (0..<n).map { _ in Bool.random(using: &rng) ? interesting.randomElement(using: &rng)! : UInt8.random(in: 0...255, using: &rng) }
            let valid = String(validating: bytes, as: UTF8.self) != nil
            let check = bytes.withUnsafeBytes { checkText($0) }
            switch check {
            case .ok: #expect(valid && !bytes.contains(0), "\(bytes)")
            case .nul: #expect(bytes.contains(0), "\(bytes)")
            case .invalidUTF8: #expect(!valid, "\(bytes)")
            }
        }
    }

    /// The byte-level builder emits exactly StarlingCore's canonical encoding.
    @Test func builderMatchesCanonicalLabels() {
        var rng = SeededRandom(seed: 5)
        let names = ["__name__", "a", "b", "job", "instance", "zz", "A", "_x", "le"]
        let values = ["v", "", "é", "a b", "😀", "0", String(repeating: "x", count: 200)]
        for _ in 0..<5_000 {
            var b = SeriesLabelsBuilder()
            var dict: [String: String] = ["__name__": "m"]
            var pairs: [(String, String)] = [("__name__", "m")]
            for _ in 0..<Int.random(in: 0...8, using: &rng) {
                let n = names.randomElement(using: &rng)!
                if dict[n] != nil { continue }
                let v = values.randomElement(using: &rng)!
                dict[n] = v
                pairs.append((n, v))
            }
            pairs.shuffle(using: &rng)
            for (n, v) in pairs {
                Array(n.utf8).withUnsafeBytes { nb in Array(v.utf8).withUnsafeBytes { vb in b.add(name: nb, value: vb) } }
            }
            let rules = LabelRules(limits: .default, namePolicy: .reject, enricher: .none)
            guard case .success(let built) = b.build(rules) else {
                Issue.record("rejected \(pairs)")
                continue
            }
            #expect(built == Labels(dict), "\(pairs)")
            #expect((try? Labels.validatingCanonicalBytes(built.bytes)) != nil)
        }
    }

    @Test func sanitizing() {
        func s(_ name: String, colon: Bool) -> String {
            var out: [UInt8] = []
            Array(name.utf8).withUnsafeBytes { appendSanitizedName($0, allowColon: colon, to: &out) }
            return String(decoding: out, as: UTF8.self)
        }
        #expect(s("cpu.load-1", colon: true) == "cpu_load_1")
        #expect(s("http:req", colon: true) == "http:req")
        #expect(s("http:req", colon: false) == "http_req")
        #expect(s("1m", colon: true) == "_1m")
        #expect(s("température", colon: false) == "temp_rature")
        #expect(s("a😀b", colon: false) == "a_b")
        #expect(isValidMetricName(s("9.x/y", colon: true)))
    }

    @Test func deduplicationWithinABatch() {
        var rng = SeededRandom(seed: 6)
        for _ in 0..<500 {
            var samples: [Sample] = []
            for _ in 0..<Int.random(in: 0...20, using: &rng) {
                let t = Int64.random(in: 0...5, using: &rng)
                let v = [1.0, 2.0, .nan, StaleMarker.value].randomElement(using: &rng)!
                samples.append(Sample(t, v))
            }
            var deduped = samples
            let removed = BatchDeduplicator.dedupeSamples(&deduped)
            #expect(deduped.count + removed == samples.count)
            // Sorted by time, no exact duplicates, nothing invented, nothing distinct lost.
            #expect(zip(deduped, deduped.dropFirst()).allSatisfy { $0.timestampMs <= $1.timestampMs })
            for (i, a) in deduped.enumerated() {
                for b in deduped[(i + 1)...] { #expect(!a.bitwiseEqual(b)) }
            }
            for s in samples { #expect(deduped.contains { $0.bitwiseEqual(s) }) }
        }
        let a = SeriesSamples(labels: L(["__name__": "a"]), samples: [Sample(2, 1)])
        let b = SeriesSamples(labels: L(["__name__": "b"]), samples: [Sample(1, 1)])
        let a2 = SeriesSamples(labels: L(["__name__": "a"]), samples: [Sample(1, 1), Sample(2, 1)])
        var merged = [a, b, a2]
        let dropped = BatchDeduplicator.mergeAndDeduplicate(&merged)
        #expect(merged.map(\.labels) == [a.labels, b.labels])
        #expect(sameSamples(merged[0].samples, [Sample(1, 1), Sample(2, 1)]))
        #expect(dropped == 1)
        // Every label set colliding on the 64-bit hash still merges exactly.
        let c = SeriesSamples(labels: L(["__name__": "c"]), samples: [Sample(3, 1)])
        let b2 = SeriesSamples(labels: L(["__name__": "b"]), samples: [Sample(1, 1)])
        var colliding = [a, b, a2, c, b2]
        let droppedColliding = BatchDeduplicator.mergeAndDeduplicate(&colliding) { _ in 42 }
        #expect(colliding.map(\.labels) == [a.labels, b.labels, c.labels])
        #expect(colliding.map(\.samples.count) == [2, 1, 1])
        #expect(droppedColliding == 2)
    }

    @Test func responsesAreWellFormed() throws {
        let r = LineProtocolParser.parse(Array("a v=1\nb,x-y=\"q\" v=oops\n\u{1}c v=1\n".utf8), nowMs: 1_700_000_000_000)
        #expect(r.httpStatus == 400)
        let json = try JSONSerialization.jsonObject(with: Data(r.responseJSON().utf8)) as? [String: Any]
        #expect(json?["accepted"] as? Int == r.acceptedSamples)
        #expect((json?["errors"] as? [[String: Any]])?.count == r.errors.count)
        #expect(json?["code"] as? String == "invalid")
        #expect(r.responseText().hasPrefix("accepted 2 samples"))
        var limits = IngestLimits()
        limits.maxReportedErrors = 2
        let many = LineProtocolParser.parse(Array(String(repeating: "bad\n", count: 10).utf8), nowMs: 0, limits: limits)
        #expect(many.errors.count == 2)
        #expect(many.errorCount == 10)
        #expect(many.responseText().contains("first 2 listed"))
        var outside = IngestResult()
        outside.record(.bodyTooLarge(limitBytes: 10, actualBytes: 11))
        #expect(outside.httpStatus == 400)
        #expect(outside.rejectedSamplesByReason == [.bodyTooLarge: 0])
        #expect(RejectionReason.allCases.allSatisfy { $0.rawValue.allSatisfy { $0.isLowercase || $0 == "_" || $0.isNumber } })
    }
}
