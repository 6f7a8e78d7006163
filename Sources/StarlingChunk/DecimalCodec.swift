import StarlingCore

/// Encoding 2: values that are all exact decimals of one per-chunk scale, stored as integer
/// mantissas. Node-exporter data is mostly integers (counters, byte gauges) and values parsed
/// from text with one or two decimals (`node_cpu_seconds_total` is ticks / 100); XOR spends 30–50
/// bits per such sample because consecutive values share few mantissa bits, while the mantissa
/// deltas fit in a handful of bits.
///
/// Header after the common `0x02, count (UInt16 BE)`:
/// - first timestamp, zig-zag varint;
/// - exponent, one byte, `Int8` in -22...22: value = `Double(m) / 10^e` for e ≥ 0, and
///   `Double(m) * 10^-e` for e < 0 (powers of ten up to 10^22 are exact doubles, so both are one
///   correctly rounded IEEE operation);
/// - value mode, one byte: 0 constant, 1 delta, 2 delta of delta, 3 centred delta;
/// - first mantissa, zig-zag varint;
/// - modes 1...3: `g` ≥ 1 as uvarint, every stored difference is a multiple of `g` (byte
///   gauges move in pages of 4096, say);
/// - mode 3 only: the centre `c`, zig-zag varint, in units of `g`;
/// - modes 1...3: four bucket widths, one byte each, 0...64; or, in a one-range chunk, the byte
///   0x80 and the largest value code `M` < 2^63 as uvarint.
/// Then the bit stream, for each sample i ≥ 1: the timestamp code (as in encoding 1) and, unless
/// the mode is constant, a value code: the zig-zag of `diff / g` (mode 3: `diff / g - c`) in the
/// bucket where it costs least, behind its prefix `0`, `10`, `110` or `111` (buckets 0...3). The
/// widths and their order are chosen per chunk to minimize its size (`optimalBuckets`); the
/// decoder only reads the table. A one-range chunk codes every value `z` in 0...M in truncated
/// binary instead, with no prefix: with `R = M + 1`, `k = ⌊log2 R⌋` and `u = 2^(k+1) - R`,
/// `z < u` is written in `k` bits and any other `z` as `z + u` in `k + 1` bits. That is within
/// 0.09 bits of log2 R for every code, where uniform noise (a counter's jitter around its rate)
/// costs buckets about a bit more; the encoder takes whichever is smaller.
///
/// Mode 3 is for counters: a counter's deltas cluster around its rate, so their zig-zags all
/// cost about log2(2 × rate) bits, and its deltas of deltas spread over twice the noise. Coded
/// against the median delta, a delta costs only what its noise does.
///
/// A chunk is only produced when every value round-trips bit for bit through its mantissa, so
/// -0.0, NaN, ±Inf and values needing more than 53 mantissa bits keep encoding 1.
enum DecimalCodec {
    /// Largest |exponent|: 10^22 is the largest power of ten a double holds exactly.
    static let maxExponent = 22
    /// 2^53: mantissas beyond this are not all exactly representable as doubles.
    static let maxMantissa: Double = 9_007_199_254_740_992

    static let powersOfTen: [Double] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ]

    enum Mode: UInt8 {
        case constant = 0
        case delta = 1
        case deltaOfDelta = 2
        case centredDelta = 3
    }

    /// Value-code prefixes: length and bucket for each value of a code's first three bits,
    /// packed as 4-bit `length << 2 | bucket` entries (`0xx` → 1/0, `10x` → 2/1, `110` → 3/2,
    /// `111` → 3/3).
    static let prefixTable: UInt64 = 0xFE99_4444
    /// The byte in place of the bucket widths that marks a one-range chunk.
    static let oneRangeMarker: UInt8 = 0x80
    static let prefixLength: (Int, Int, Int, Int) = (1, 2, 3, 3)
    static let prefixBits: (UInt64, UInt64, UInt64, UInt64) = (0b0, 0b10, 0b110, 0b111)

    /// The integer `m` with `v == m / 10^e` (or `m * 10^-e`) bit for bit, or nil.
    @inline(__always)
    static func mantissa(_ v: Double, exponent e: Int) -> Int64? {
        let p = powersOfTen[e >= 0 ? e : -e]
        let m = e >= 0 ? (v * p).rounded() : (v / p).rounded()
        guard m.magnitude <= maxMantissa else { return nil }  // also rejects NaN and ±Inf
        let mi = Int64(m)
        let back = e >= 0 ? Double(mi) / p : Double(mi) * p
        return back.bitPattern == v.bitPattern ? mi : nil
    }

    /// The per-chunk exponent and the mantissas: the smallest e ≥ 0 at which every value is an
    /// exact decimal, else the smallest |e| with e < 0 (large integers with trailing zeros), else
    /// nil. Fails fast on the first value that cannot be represented, which keeps the attempt
    /// cheap for float data; mantissas computed before the exponent last grew are recomputed
    /// (a value exact at a smaller exponent stays exact unless its mantissa leaves the range).
    static func mantissas(_ samples: UnsafeBufferPointer<Sample>) -> (exponent: Int, mantissas: [Int64])? {
        var m = [Int64](repeating: 0, count: samples.count)
        var e = 0
        var stale = 0  // m[..<stale] were computed at an earlier exponent
        for i in 0..<samples.count {
            let v = samples[i].value
            guard v.isFinite else { return nil }
            while true {
                if let mi = mantissa(v, exponent: e) {
                    m[i] = mi
                    break
                }
                if e >= 0 {
                    e = e == maxExponent ? -1 : e + 1
                } else {
                    e -= 1
                    if e < -maxExponent { return nil }
                }
                stale = i
            }
        }
        for i in 0..<stale {
            guard let mi = mantissa(samples[i].value, exponent: e) else { return nil }
            m[i] = mi
        }
        return (e, m)
    }

    /// Encodes `samples` (strictly increasing timestamps) as an encoding-2 chunk, or returns nil
    /// when some value is not an exact decimal of a common scale.
    static func encode(_ samples: UnsafeBufferPointer<Sample>) -> [UInt8]? {
        let n = samples.count
        guard n >= 1, n <= ChunkCodec.maxSamplesPerChunk, let found = mantissas(samples) else { return nil }
        let (e, m) = found

        var mode = Mode.constant
        var best = Plan(g: 1)
        if n > 1, m.contains(where: { $0 != m[0] }) { (mode, best) = plan(m) }
        let g = best.g

        var w = BitWriter(bytes: [ChunkEncoding.decimal.rawValue, UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)])
        w.reserveCapacity(32 + (n * 2 + best.bits) / 8)
        w.appendUVarint(ZigZag.encode(samples[0].timestampMs))
        w.appendByte(UInt8(bitPattern: Int8(e)))
        w.appendByte(mode.rawValue)
        w.appendUVarint(ZigZag.encode(m[0]))
        if mode != .constant {
            w.appendUVarint(UInt64(g))
            if mode == .centredDelta { w.appendUVarint(ZigZag.encode(best.centre)) }
            if let range = best.range {
                w.appendByte(oneRangeMarker)
                w.appendUVarint(range.max)
            } else {
                for b in 0..<4 { w.appendByte(UInt8(truncatingIfNeeded: best.widths >> (8 * b))) }
            }
        }

        var prevT = samples[0].timestampMs
        var prevDelta: Int64 = 0
        var prevDiff: Int64 = 0
        for i in 1..<n {
            let t = samples[i].timestampMs
            precondition(t > prevT, "decimal chunk: timestamps not strictly increasing at \(t)")
            let d = t &- prevT
            TimestampCode.write(d &- prevDelta, &w)
            prevDelta = d
            prevT = t
            switch mode {
            case .constant:
                break
            case .delta:
                writeValue(divide(m[i] - m[i - 1], g), best, &w)
            case .centredDelta:
                writeValue(divide(m[i] - m[i - 1], g) &- best.centre, best, &w)
            case .deltaOfDelta:
                let diff = m[i] - m[i - 1]
                writeValue(divide(diff - prevDiff, g), best, &w)
                prevDiff = diff
            }
        }
        return w.finish()
    }

    @inline(__always)
    static func writeValue(_ q: Int64, _ plan: Plan, _ w: inout BitWriter) {
        let z = ZigZag.encode(q)
        if let range = plan.range {
            if z < range.u {
                w.write(z, range.k)
            } else {
                w.write(z &+ range.u, range.k + 1)
            }
            return
        }
        let b = Int(plan.bucketForLength[64 - z.leadingZeroBitCount])
        let width = Int((plan.widths >> (8 * UInt32(b))) & 0xFF)
        let (plen, prefix): (Int, UInt64)
        switch b {
        case 0: (plen, prefix) = (prefixLength.0, prefixBits.0)
        case 1: (plen, prefix) = (prefixLength.1, prefixBits.1)
        case 2: (plen, prefix) = (prefixLength.2, prefixBits.2)
        default: (plen, prefix) = (prefixLength.3, prefixBits.3)
        }
        if width + plen <= 64 {
            w.write(prefix &<< UInt64(width) | z, width + plen)
        } else {
            w.write(prefix, plen)
            w.write(z, width)
        }
    }

    struct Plan {
        var g: Int64
        /// Bucket widths in code order (bucket 0 = prefix `0`), one byte each.
        var widths: UInt32 = 0
        /// For each bit length 0...64 of a coded value, the bucket it is written in.
        var bucketForLength: [UInt8] = []
        /// Bits of the value stream.
        var bits = 0
        /// Mode 3 only: what is subtracted from each `diff / g` before coding.
        var centre: Int64 = 0
        /// A one-range chunk's largest code and its truncated-binary parameters; nil: buckets.
        var range: OneRange?

        /// Bits of the value stream and of the header fields that depend on the plan.
        var cost: Int {
            let header = uvarintSize(UInt64(g)) + (centre != 0 ? uvarintSize(ZigZag.encode(centre)) : 0)
                + (range.map { 1 + uvarintSize($0.max) } ?? 4)
            return bits + 8 * header
        }
    }

    /// Truncated binary over 0...max.
    struct OneRange {
        let max: UInt64
        /// ⌊log2(max + 1)⌋: codes below `u` take `k` bits, the others `k + 1`.
        let k: Int
        let u: UInt64

        /// Nil when `max` ≥ 2^63 (then `max + 1` does not fit in 64 bits).
        init?(max: UInt64) {
            guard max < 1 << 63 else { return nil }
            self.max = max
            let r = max + 1
            k = 63 - r.leadingZeroBitCount
            u = (1 &<< UInt64(k + 1)) &- r
        }

        func bits(_ z: UInt64) -> Int { z < u ? k : k + 1 }
    }

    /// The cheaper of buckets and one range for the value codes `codes`.
    static func choose(_ codes: [UInt64], g: Int64, centre: Int64) -> Plan {
        var histogram = [Int](repeating: 0, count: 65)
        var largest: UInt64 = 0
        for z in codes {
            histogram[64 - z.leadingZeroBitCount] += 1
            largest = Swift.max(largest, z)
        }
        var plan = optimalBuckets(histogram)
        plan.g = g
        plan.centre = centre
        if let range = OneRange(max: largest) {
            var bits = 0
            for z in codes { bits += range.bits(z) }
            let ranged = Plan(g: g, bits: bits, centre: centre, range: range)
            if ranged.cost < plan.cost { return ranged }
        }
        return plan
    }

    /// The lower median of `values`, which it reorders (quickselect: linear on average).
    static func median(_ values: inout [Int64]) -> Int64 {
        let k = (values.count - 1) / 2
        var lo = 0
        var hi = values.count - 1
        while lo < hi {
            let pivot = values[lo + (hi - lo) / 2]
            var i = lo
            var j = hi
            while i <= j {
                while values[i] < pivot { i += 1 }
                while values[j] > pivot { j -= 1 }
                if i <= j {
                    values.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            if k <= j {
                hi = j
            } else if k >= i {
                lo = i
            } else {
                break
            }
        }
        return values[k]
    }

    /// The value mode and plan for mantissas that are not all equal. The three non-constant modes
    /// are compared by the summed bit lengths of their codes, a close proxy for their size under
    /// either coding, and only the winner is planned exactly: bucket planning is the encoder's
    /// main cost, and it runs under the head lock whenever a chunk closes.
    static func plan(_ m: [Int64]) -> (Mode, Plan) {
        let count = m.count - 1
        var g1: UInt64 = 0  // divides every delta
        var g2: UInt64 = 0  // divides every delta of delta
        var previous: Int64 = 0
        var deltas = [Int64](unsafeUninitializedCapacity: count) { buffer, initialized in
            for i in 0..<count {
                let d = m[i + 1] - m[i]
                let dd = d - previous
                previous = d
                buffer[i] = d
                if g1 != 1, d != 0 { g1 = gcd(g1, d.magnitude) }
                if g2 != 1, dd != 0 { g2 = gcd(g2, dd.magnitude) }
            }
            initialized = count
        }
        let deltaG = Int64(Swift.max(g1, 1))
        let dodG = Int64(Swift.max(g2, 1))
        if deltaG != 1 {
            for i in 0..<count { deltas[i] /= deltaG }
        }
        var scratch = deltas
        let centre = median(&scratch)

        @inline(__always) func length(_ q: Int64) -> Int { 64 - ZigZag.encode(q).leadingZeroBitCount }
        var deltaBits = 0
        var dodBits = 0
        var centredBits = 0
        previous = 0
        for i in 0..<count {
            let q = deltas[i]
            deltaBits += length(q)
            centredBits += length(q &- centre)
            let d = q &* deltaG
            dodBits += length(divide(d - previous, dodG))
            previous = d
        }
        var codes = [UInt64]()
        codes.reserveCapacity(count)
        if centre != 0 && centredBits < Swift.min(deltaBits, dodBits) {
            for q in deltas { codes.append(ZigZag.encode(q &- centre)) }
            return (.centredDelta, choose(codes, g: deltaG, centre: centre))
        }
        if dodBits < deltaBits {
            previous = 0
            for q in deltas {
                let d = q &* deltaG
                codes.append(ZigZag.encode(divide(d - previous, dodG)))
                previous = d
            }
            return (.deltaOfDelta, choose(codes, g: dodG, centre: 0))
        }
        for q in deltas { codes.append(ZigZag.encode(q)) }
        return (.delta, choose(codes, g: deltaG, centre: 0))
    }

    /// `x / g`; most chunks have g == 1, and a 64-bit division costs tens of cycles.
    @inline(__always)
    static func divide(_ x: Int64, _ g: Int64) -> Int64 { g == 1 ? x : x / g }

    static func gcd(_ a: UInt64, _ b: UInt64) -> UInt64 {
        var (a, b) = (a, b)
        while b != 0 { (a, b) = (b, a % b) }
        return a
    }

    /// Buckets that minimize the bits of a value stream whose coded values have the bit-length
    /// `histogram` (index = bit length 0...64).
    ///
    /// First the widths, by dynamic programming over the distinct lengths present with prefix
    /// lengths 1, 2, 3, 3 given in width order (an optimal width always equals the largest length
    /// its bucket holds). Then the prefixes are reassigned by bucket population, the most
    /// frequent bucket taking `0`, and each length goes to the bucket where it costs least
    /// (prefix + width): never worse than the width order, and better when the narrow bucket is
    /// rare (counters that mostly move by ~1000 and sometimes not at all).
    static func optimalBuckets(_ histogram: [Int]) -> Plan {
        var lengths: [Int] = []
        var cumulative: [Int] = [0]
        for (len, c) in histogram.enumerated() where c > 0 {
            lengths.append(len)
            cumulative.append(cumulative.last! + c)
        }
        let k = lengths.count
        guard k > 0 else { return Plan(g: 1, widths: 0, bucketForLength: [UInt8](repeating: 0, count: 65), bits: 0) }
        let prefix = [1, 2, 3, 3]
        let infinity = Int.max / 4
        // cost[j][i]: fewest bits coding lengths[0..<i] with exactly j buckets; from[j][i]: the
        // start index of bucket j-1 on that optimum.
        var cost = [[Int]](repeating: [Int](repeating: infinity, count: k + 1), count: 5)
        var from = [[Int]](repeating: [Int](repeating: 0, count: k + 1), count: 5)
        cost[0][0] = 0
        for j in 1...min(4, k) {
            for i in j...k {
                let perValue = prefix[j - 1] + lengths[i - 1]
                for p in (j - 1)..<i where cost[j - 1][p] < infinity {
                    let c = cost[j - 1][p] + (cumulative[i] - cumulative[p]) * perValue
                    if c < cost[j][i] {
                        cost[j][i] = c
                        from[j][i] = p
                    }
                }
            }
        }
        var used = 1
        for j in 1...min(4, k) where cost[j][k] < cost[used][k] { used = j }
        // Widths and populations of the buckets, in width order.
        var widths = [Int](repeating: lengths[k - 1], count: 4)
        var population = [Int](repeating: 0, count: 4)
        var i = k
        for j in stride(from: used, to: 0, by: -1) {
            let start = from[j][i]
            widths[j - 1] = lengths[i - 1]
            population[j - 1] = cumulative[i] - cumulative[start]
            i = start
        }
        // Code order: by population, descending; ties keep the narrower bucket first.
        let order = (0..<4).sorted { population[$0] != population[$1] ? population[$0] > population[$1] : $0 < $1 }
        var packed: UInt32 = 0
        for (code, b) in order.enumerated() { packed |= UInt32(widths[b]) << (8 * UInt32(code)) }
        var bucketForLength = [UInt8](repeating: 0, count: 65)
        var bits = 0
        for len in 0...64 {
            var best = -1
            var bestCost = Int.max
            for code in 0..<4 where widths[order[code]] >= len && prefix[code] + widths[order[code]] < bestCost {
                best = code
                bestCost = prefix[code] + widths[order[code]]
            }
            if best < 0 { continue }  // longer than every width: not present in the histogram
            bucketForLength[len] = UInt8(best)
            bits += histogram[len] * bestCost
        }
        return Plan(g: 1, widths: packed, bucketForLength: bucketForLength, bits: bits)
    }
}
