import StarlingChunk
import StarlingCore
import StarlingTestKit
import Testing

@Suite struct ChunkIteratorTests {
    let samples = series(regularTimestamps(100, start: 1_000, stepMs: 10)) { Double($0) / 4 }

    func bothEncodings() throws -> [EncodedChunk] {
        [xorChunk(samples), try #require(ChunkEncoder.encode(samples[...], as: .decimal))]
    }

    @Test func seekBeforeInsideExactAfter() throws {
        for chunk in try bothEncodings() {
            var it = try ChunkIterator(chunk)
            #expect(try it.seek(toTimeMs: -50))  // before the first sample
            #expect(it.timestampMs == 1_000)
            #expect(try it.seek(toTimeMs: 1_000))  // the current sample: stays
            #expect(it.timestampMs == 1_000)
            #expect(try it.seek(toTimeMs: 1_205))  // between samples: the next one
            #expect(it.timestampMs == 1_210 && it.value == 21.0 / 4)
            #expect(try it.seek(toTimeMs: 1_500))  // exact
            #expect(it.sample.bitwiseEqual(samples[50]))
            #expect(try it.seek(toTimeMs: 1_200))  // backwards: stays put
            #expect(it.timestampMs == 1_500)
            #expect(try it.next())
            #expect(it.timestampMs == 1_510)
            #expect(try it.seek(toTimeMs: 1_990))  // the last sample
            #expect(try !it.next())
            #expect(try !it.seek(toTimeMs: 0))  // finished stays finished
            var after = try ChunkIterator(chunk)
            #expect(try !after.seek(toTimeMs: 1_991))
            #expect(try !after.next())
        }
    }

    @Test func resetReusesTheIterator() throws {
        let chunks = try bothEncodings() + [xorChunk(Array(samples[..<3]))]
        var it = try ChunkIterator(chunks[0])
        _ = try it.next()
        for c in chunks + chunks {
            try it.reset(c.bytes)
            var got: [Sample] = []
            while try it.next() { got.append(it.sample) }
            expectBitwiseEqual(got, try decodeChunk(c.bytes), "reset")
        }
        // A copy keeps decoding its own chunk after the original resets.
        try it.reset(chunks[0].bytes)
        _ = try it.next()
        var copy = it
        try it.reset(chunks[2].bytes)
        #expect(try copy.next() && copy.timestampMs == 1_010)
    }

    @Test func emptyChunk() throws {
        var it = try ChunkIterator(XORAppender().bytes)
        #expect(it.count == 0)
        #expect(try !it.next())
        #expect(try !it.seek(toTimeMs: .min))
    }
}

@Suite struct SeriesSampleIteratorTests {
    func collect(_ chunks: [EncodedChunk], _ lo: Int64 = .min, _ hi: Int64 = .max) throws -> [Sample] {
        try SeriesSampleIterator.collect(chunks: chunks, minTimeMs: lo, maxTimeMs: hi)
    }

    @Test func emptyInputs() throws {
        #expect(try collect([]).isEmpty)
        #expect(try collect([XORAppender().chunk]).isEmpty)
        let c = xorChunk([Sample(10, 1)])
        #expect(try collect([c], 11, 20).isEmpty)
        #expect(try collect([c], 20, 10).isEmpty)
        var it = SeriesSampleIterator(chunks: [])
        #expect(try !it.next())
        #expect(try !it.seek(toTimeMs: 0))
    }

    @Test func sequentialChunksAndRange() throws {
        let all = series(regularTimestamps(1_000, start: 0, stepMs: 15_000)) { Double($0 % 17) / 10 }
        let chunks = ChunkEncoder.encode(all, maxSamplesPerChunk: 120)
        expectBitwiseEqual(try collect(chunks), all, "all")
        expectBitwiseEqual(try collect(chunks.reversed()), all, "reversed order")
        let lo: Int64 = 15_000 * 119, hi: Int64 = 15_000 * 361
        expectBitwiseEqual(try collect(chunks, lo, hi), Array(all[119...361]), "range inclusive")
        expectBitwiseEqual(try collect(chunks, lo + 1, hi - 1), Array(all[120...360]), "range between samples")
    }

    @Test func chunksOutsideTheRangeAreNotDecoded() throws {
        let good = xorChunk(series([100, 200, 300]) { Double($0) })
        let garbage = EncodedChunk(minTimeMs: 1_000, maxTimeMs: 2_000, bytes: [0xEE, 1, 2])
        expectBitwiseEqual(try collect([garbage, good], 0, 999), try decodeChunk(good.bytes), "skipped")
        #expect(throws: DecodeError.self) { try collect([garbage, good]) }
    }

    @Test func overlapsAndDuplicates() throws {
        // Three chunks interleaving in time, sharing some samples with equal bits.
        let a = series([10, 20, 30, 40, 50]) { Double($0) }
        let b = series([15, 20, 35, 40, 45]) { [1.5, 1, 3.5, 3, 4.5][$0] }
        let c = series([5, 20, 60]) { [0.5, 1, 6][$0] }
        let want = series([5, 10, 15, 20, 30, 35, 40, 45, 50, 60]) { [0.5, 0, 1.5, 1, 2, 3.5, 3, 4.5, 4, 6][$0] }
        let chunks = [xorChunk(a), ChunkEncoder.encodeChunk(b[...]), xorChunk(c)]
        for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1]] {
            expectBitwiseEqual(try collect(order.map { chunks[$0] }), want, "order \(order)")
        }
        // The same chunk twice is the chunk once.
        expectBitwiseEqual(try collect([chunks[0], chunks[0]]), a, "self duplicate")
        expectBitwiseEqual(try collect(chunks, 20, 40), Array(want[3...6]), "overlap range")
    }

    @Test func conflictingValuesResolveIndependentlyOfOrder() throws {
        let stale = StaleMarker.value
        let otherNaN = Double(bitPattern: 0xFFF8_0000_0000_0001)
        // (first, second, winner)
        let cases: [(Double, Double, Double)] = [
            (1, 2, 2), (-1, -2, -1), (0.0, -0.0, 0.0), (stale, 7, 7), (.nan, -.infinity, -.infinity),
            (stale, .nan, Double.nan), (otherNaN, stale, otherNaN), (.infinity, .greatestFiniteMagnitude, .infinity),
        ]
        for (x, y, winner) in cases {
            let one = xorChunk([Sample(10, 1), Sample(20, x), Sample(30, 3)])
            let two = xorChunk([Sample(20, y), Sample(25, 2.5)])
            for chunks in [[one, two], [two, one]] {
                let got = try collect(chunks)
                #expect(got.map(\.timestampMs) == [10, 20, 25, 30])
                #expect(got[1].value.bitPattern == winner.bitPattern, "\(x) vs \(y)")
            }
            #expect(DuplicateRule.preferred(x, y).bitPattern == DuplicateRule.preferred(y, x).bitPattern)
        }
    }

    @Test func manyOverlappingChunksAgainstAReference() throws {
        var rng = SeededRandom(seed: 11)
        for round in 0..<30 {
            // Several replicas' worth of chunks over one timeline, some with conflicting values.
            var reference: [Int64: Double] = [:]
            var chunks: [EncodedChunk] = []
            for _ in 0..<rng.int(1...8) {
                var t = Int64(rng.int(0...200))
                var chunk: [Sample] = []
                for _ in 0..<rng.int(1...60) {
                    t += Int64(rng.int(1...10))
                    let v: Double = rng.chance(0.05) ? StaleMarker.value : Double(rng.int(0...3)) / 2
                    chunk.append(Sample(t, v))
                    reference[t] = reference[t].map { DuplicateRule.preferred($0, v) } ?? v
                }
                chunks.append(rng.chance(0.5) ? xorChunk(chunk) : ChunkEncoder.encodeChunk(chunk[...]))
            }
            let want = reference.keys.sorted().map { Sample($0, reference[$0]!) }
            chunks.shuffle(using: &rng)
            expectBitwiseEqual(try collect(chunks), want, "round \(round)")
            let lo = Int64(rng.int(0...300)), hi = lo + Int64(rng.int(0...300))
            expectBitwiseEqual(try collect(chunks, lo, hi), want.filter { $0.timestampMs >= lo && $0.timestampMs <= hi }, "round \(round) range")

            // Seeking lands on the same samples as filtering.
            var it = SeriesSampleIterator(chunks: chunks)
            var target: Int64 = 0
            while true {
                target += Int64(rng.int(0...40))
                let expected = want.first { $0.timestampMs >= target }
                let found = try it.seek(toTimeMs: target)
                #expect(found == (expected != nil))
                guard let e = expected else { break }
                #expect(it.sample.bitwiseEqual(e), "seek \(target) in round \(round)")
                if rng.chance(0.5), try it.next() {
                    target = it.timestampMs
                    #expect(it.sample.bitwiseEqual(want.first { $0.timestampMs >= target }!))
                }
            }
        }
    }

    @Test func declaredBoundsViolationsAreErrors() throws {
        let real = xorChunk(series([100, 200, 300]) { Double($0) })
        var tooLate = real
        tooLate.minTimeMs = 150
        #expect(throws: DecodeError.self) { try collect([tooLate]) }
        var tooEarly = real
        tooEarly.maxTimeMs = 250
        #expect(throws: DecodeError.self) { try collect([tooEarly]) }
        // After an error the iterator is finished.
        var it = SeriesSampleIterator(chunks: [tooEarly])
        #expect(try it.next() && it.next())
        #expect(throws: DecodeError.self) { try it.next() }
        #expect(try !it.next())
    }

    @Test func compactRewritesOverlapsIntoOptimalChunks() throws {
        var rng = SeededRandom(seed: 12)
        let all = nodeExporterSeries(.cpuSeconds, samples: 700, rng: &rng)
        // Head-style XOR chunks of 100 plus an overlapping replica copy of the middle.
        var chunks: [EncodedChunk] = []
        for start in stride(from: 0, to: 700, by: 100) { chunks.append(xorChunk(Array(all[start..<start + 100]))) }
        chunks.append(xorChunk(Array(all[250..<450])))
        let compacted = try ChunkEncoder.compact(chunks, maxSamplesPerChunk: 240)
        #expect(compacted.count == 3)
        for (a, b) in zip(compacted, compacted.dropFirst()) { #expect(a.maxTimeMs < b.minTimeMs) }
        for c in compacted {
            try ChunkCodec.validate(c)
            #expect(c.bytes[0] == ChunkEncoding.decimal.rawValue)
        }
        expectBitwiseEqual(try collect(compacted), all, "compacted")
        #expect(compacted.reduce(0) { $0 + $1.bytes.count } < chunks.reduce(0) { $0 + $1.bytes.count } / 3)
        let block = try ChunkEncoder.compact(chunks, minTimeMs: all[100].timestampMs, maxTimeMs: all[199].timestampMs)
        expectBitwiseEqual(try collect(block), Array(all[100...199]), "block")
    }
}
