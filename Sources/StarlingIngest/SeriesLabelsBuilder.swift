import StarlingCore

/// What the label rules need to know; one per decoder run.
struct LabelRules {
    var limits: IngestLimits
    /// Applies to `__name__` values and to label names.
    var namePolicy: NamePolicy
    var enricher: Enricher
}

/// Why a label set was refused.
struct LabelFailure: Error {
    var reason: RejectionReason
    var message: String
}

/// Builds one canonical `Labels` per series from raw name/value bytes with no intermediate
/// `String`s: decoders copy (or unescape) names and values into `scratch`, register pairs, then
/// `build` validates every rule, sorts, merges enrichment and emits the canonical bytes in one
/// exactly-sized allocation — the only allocation per series besides its samples array.
/// The builder is reused across series (`reset`), so its buffers stop growing after warm-up.
struct SeriesLabelsBuilder {
    struct Pair {
        var nameStart: Int
        var nameEnd: Int
        var valueStart: Int
        var valueEnd: Int
    }

    var scratch: [UInt8] = []
    var pairs: [Pair] = []
    private var order: [Int] = []

    init() {
        scratch.reserveCapacity(4096)
        pairs.reserveCapacity(32)
        order.reserveCapacity(32)
    }

    @inline(__always)
    mutating func reset() {
        scratch.removeAll(keepingCapacity: true)
        pairs.removeAll(keepingCapacity: true)
    }

    /// Drops pairs and scratch bytes added after a checkpoint (Influx: one tag set, many fields).
    @inline(__always)
    mutating func truncate(pairs p: Int, scratch s: Int) {
        if pairs.count > p { pairs.removeLast(pairs.count - p) }
        if scratch.count > s { scratch.removeLast(scratch.count - s) }
    }

    @inline(__always)
    mutating func add(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        let ns = scratch.count
        scratch.append(contentsOf: name)
        let vs = scratch.count
        scratch.append(contentsOf: value)
        pairs.append(Pair(nameStart: ns, nameEnd: vs, valueStart: vs, valueEnd: scratch.count))
    }

    static let metricNameBytes: [UInt8] = Array(metricNameLabel.utf8)

    /// `name == "__name__"`, without a generic sequence comparison.
    @inline(__always)
    static func isMetricNameLabel(_ name: UnsafeRawBufferPointer) -> Bool {
        // "__name__" as a little-endian UInt64.
        name.count == 8 && UInt64(littleEndian: name.loadUnaligned(as: UInt64.self)) == 0x5F5F_656D_616E_5F5F
    }

    /// Label set as text for error messages (`{__name__="x", a="b"}`), from the pairs as sent.
    func describe(maxBytes: Int = 512) -> String {
        var out = "{"
        scratch.withUnsafeBytes { s in
            for (k, p) in pairs.enumerated() {
                if k > 0 { out += ", " }
                let name = UnsafeRawBufferPointer(rebasing: s[p.nameStart..<p.nameEnd])
                out += String(decoding: name.prefix(128), as: UTF8.self)
                out += "="
                out += quoteForError(UnsafeRawBufferPointer(rebasing: s[p.valueStart..<p.valueEnd]), max: 128)
                if out.utf8.count > maxBytes { out += ", …"; break }
            }
        }
        return out + "}"
    }

    /// Validates and builds the canonical label set. The pairs and scratch bytes are left as the
    /// caller registered them (sanitizing and enrichment work on temporary additions), so a
    /// caller may truncate back to a checkpoint and build again (Influx: one tag set, many fields).
    mutating func build(_ rules: LabelRules) -> Result<Labels, LabelFailure> {
        let pairCount = pairs.count
        let scratchCount = scratch.count
        var savedPairs: [Pair]? = nil
        defer {
            if let savedPairs { pairs = savedPairs }
            truncate(pairs: pairCount, scratch: scratchCount)
        }
        return buildUnchecked(rules, savedPairs: &savedPairs)
    }

    private mutating func buildUnchecked(_ rules: LabelRules, savedPairs: inout [Pair]?) -> Result<Labels, LabelFailure> {
        // 1. Per-label checks; names needing sanitization are rewritten afterwards (the rewrite
        //    appends to `scratch`, which must not happen while its bytes are borrowed).
        var sanitizeMask: UInt64 = 0
        var sanitizeOverflow: [Int] = []
        let limits = rules.limits
        let check: LabelFailure? = scratch.withUnsafeBytes { s -> LabelFailure? in
            for k in pairs.indices {
                let p = pairs[k]
                let name = UnsafeRawBufferPointer(rebasing: s[p.nameStart..<p.nameEnd])
                let value = UnsafeRawBufferPointer(rebasing: s[p.valueStart..<p.valueEnd])
                if value.isEmpty { continue }  // an empty value is an absent label
                if name.isEmpty {
                    return LabelFailure(reason: .invalidLabelName, message: "empty label name (value \(quoteForError(value)))")
                }
                // A name with valid syntax is ASCII without NUL: only an invalid one needs the
                // UTF-8/NUL scan (whose errors take precedence over the syntax error).
                let isMetricName = Self.isMetricNameLabel(name)
                let nameSyntaxOK = isMetricName || isValidLabelNameBytes(name)
                if !nameSyntaxOK {
                    switch checkText(name) {
                    case .ok: break
                    case .nul(let at):
                        return LabelFailure(reason: .nulByte, message: "label name \(quoteForError(name)) contains a NUL byte at offset \(at)")
                    case .invalidUTF8(let at):
                        return LabelFailure(reason: .invalidUTF8, message: "label name \(quoteForError(name)) is not valid UTF-8 (byte offset \(at))")
                    }
                }
                switch checkText(value) {
                case .ok: break
                case .nul(let at):
                    return LabelFailure(
                        reason: .nulByte,
                        message: "value of label \(quoteForError(name)) contains a NUL byte at offset \(at): \(quoteForError(value))")
                case .invalidUTF8(let at):
                    return LabelFailure(
                        reason: .invalidUTF8,
                        message: "value of label \(quoteForError(name)) is not valid UTF-8 (byte offset \(at)): \(quoteForError(value))")
                }
                let syntaxOK = isMetricName ? isValidMetricNameBytes(value) : nameSyntaxOK
                if !syntaxOK {
                    if rules.namePolicy == .sanitize {
                        if k < 64 { sanitizeMask |= 1 << UInt64(k) } else { sanitizeOverflow.append(k) }
                    } else if isMetricName {
                        return LabelFailure(
                            reason: .invalidMetricName,
                            message: "metric name \(quoteForError(value)) does not match [a-zA-Z_:][a-zA-Z0-9_:]*")
                    } else {
                        return LabelFailure(
                            reason: .invalidLabelName,
                            message: "label name \(quoteForError(name)) does not match [a-zA-Z_][a-zA-Z0-9_]*")
                    }
                }
            }
            return nil
        }
        if let check { return .failure(check) }
        if sanitizeMask != 0 || !sanitizeOverflow.isEmpty {
            savedPairs = pairs
            for k in pairs.indices where (k < 64 && sanitizeMask & (1 << UInt64(k)) != 0) || sanitizeOverflow.contains(k) {
                sanitize(pair: k)
            }
        }

        // 2. Lengths (after sanitization, which can change them).
        let lengthFailure: LabelFailure? = scratch.withUnsafeBytes { s -> LabelFailure? in
            for p in pairs where p.valueEnd > p.valueStart {
                let nameLen = p.nameEnd - p.nameStart
                let valueLen = p.valueEnd - p.valueStart
                if nameLen > limits.maxLabelNameBytes {
                    return LabelFailure(
                        reason: .labelNameTooLong,
                        message: "label name \(quoteForError(UnsafeRawBufferPointer(rebasing: s[p.nameStart..<p.nameEnd]), max: 64)) is \(nameLen) bytes, more than the limit of \(limits.maxLabelNameBytes)")
                }
                if valueLen > limits.maxLabelValueBytes {
                    return LabelFailure(
                        reason: .labelValueTooLong,
                        message: "value of label \(quoteForError(UnsafeRawBufferPointer(rebasing: s[p.nameStart..<p.nameEnd]), max: 64)) is \(valueLen) bytes, more than the limit of \(limits.maxLabelValueBytes)")
                }
            }
            return nil
        }
        if let lengthFailure { return .failure(lengthFailure) }

        // 3. Sort by name and detect duplicates among the client's labels.
        order.removeAll(keepingCapacity: true)
        for k in pairs.indices where pairs[k].valueEnd > pairs[k].valueStart { order.append(k) }
        if let dup = sortOrderReturningDuplicate() {
            let p = pairs[dup]
            let n = scratch.withUnsafeBytes { quoteForError(UnsafeRawBufferPointer(rebasing: $0[p.nameStart..<p.nameEnd])) }
            return .failure(LabelFailure(reason: .duplicateLabelName, message: "label name \(n) appears more than once"))
        }

        // 4. Enrichment: overrides replace client labels, defaults fill absent ones.
        if !rules.enricher.isEmpty {
            applyEnrichment(rules.enricher)
        }

        // 5. Count and metric name.
        if order.count > limits.maxLabelsPerSeries {
            return .failure(LabelFailure(
                reason: .tooManyLabels,
                message: "\(order.count) labels, more than the limit of \(limits.maxLabelsPerSeries)"))
        }
        let hasName = scratch.withUnsafeBytes { s in
            order.contains { k in
                let p = pairs[k]
                return Self.isMetricNameLabel(UnsafeRawBufferPointer(rebasing: s[p.nameStart..<p.nameEnd]))
            }
        }
        if !hasName {
            return .failure(LabelFailure(reason: .missingMetricName, message: "series has no __name__ label"))
        }

        // 6. Emit canonical bytes in one allocation.
        return .success(emit())
    }

    /// Insertion-sorts `order` by name bytes (label sets are small and usually arrive sorted, so
    /// this is one comparison per label) and returns a pair index whose name repeats, if any:
    /// equal names meet in the comparison that places the second one.
    private mutating func sortOrderReturningDuplicate() -> Int? {
        guard order.count > 1 else { return nil }
        return scratch.withUnsafeBytes { s -> Int? in
            @inline(__always) func name(_ k: Int) -> UnsafeRawBufferPointer {
                let p = pairs[k]
                return UnsafeRawBufferPointer(rebasing: s[p.nameStart..<p.nameEnd])
            }
            for i in 1..<order.count {
                let x = order[i]
                let xn = name(x)
                var j = i - 1
                var c = compareNames(name(order[j]), xn)
                if c < 0 { continue }
                if c == 0 { return x }
                while true {
                    order[j + 1] = order[j]
                    j -= 1
                    if j < 0 { break }
                    c = compareNames(name(order[j]), xn)
                    if c == 0 { return x }
                    if c < 0 { break }
                }
                order[j + 1] = x
            }
            return nil
        }
    }

    /// Index in `order` of the label named `name`, if present.
    private func position(of name: [UInt8]) -> Int? {
        scratch.withUnsafeBytes { s in
            name.withUnsafeBytes { n in
                order.firstIndex { k in
                    let p = pairs[k]
                    return UnsafeRawBufferPointer(rebasing: s[p.nameStart..<p.nameEnd]).elementsEqual(n)
                }
            }
        }
    }

    private mutating func appendPair(_ name: [UInt8], _ value: [UInt8]) -> Int {
        let ns = scratch.count
        scratch.append(contentsOf: name)
        let vs = scratch.count
        scratch.append(contentsOf: value)
        pairs.append(Pair(nameStart: ns, nameEnd: vs, valueStart: vs, valueEnd: scratch.count))
        return pairs.count - 1
    }

    private mutating func applyEnrichment(_ e: Enricher) {
        for o in e.overridingPairs {
            if let at = position(of: o.name) { order.remove(at: at) }
            if !o.value.isEmpty { order.append(appendPair(o.name, o.value)) }
        }
        for d in e.defaultPairs where position(of: d.name) == nil {
            order.append(appendPair(d.name, d.value))
        }
        _ = sortOrderReturningDuplicate()  // enrichment names are unique by construction
    }

    private mutating func sanitize(pair k: Int) {
        let p = pairs[k]
        let isMetricName = scratch[p.nameStart..<p.nameEnd].elementsEqual(Self.metricNameBytes)
        var tmp: [UInt8] = []
        if isMetricName {
            let original = Array(scratch[p.valueStart..<p.valueEnd])
            original.withUnsafeBytes { appendSanitizedName($0, allowColon: true, to: &tmp) }
            let start = scratch.count
            scratch.append(contentsOf: tmp)
            pairs[k].valueStart = start
            pairs[k].valueEnd = scratch.count
        } else {
            let original = Array(scratch[p.nameStart..<p.nameEnd])
            original.withUnsafeBytes { appendSanitizedName($0, allowColon: false, to: &tmp) }
            let start = scratch.count
            scratch.append(contentsOf: tmp)
            pairs[k].nameStart = start
            pairs[k].nameEnd = scratch.count
        }
    }

    @inline(__always)
    private static func uvarintSize(_ v: Int) -> Int {
        var n = 1
        var x = v >> 7
        while x > 0 { n += 1; x >>= 7 }
        return n
    }

    @inline(__always)
    private static func putUVarint(_ v: Int, _ out: UnsafeMutableRawBufferPointer, _ at: inout Int) {
        var x = UInt(v)
        while x >= 0x80 {
            out[at] = UInt8(truncatingIfNeeded: x) | 0x80
            at += 1
            x >>= 7
        }
        out[at] = UInt8(x)
        at += 1
    }

    private func emit() -> Labels {
        var total = 0
        for k in order {
            let p = pairs[k]
            let nl = p.nameEnd - p.nameStart
            let vl = p.valueEnd - p.valueStart
            total += Self.uvarintSize(nl) + nl + Self.uvarintSize(vl) + vl
        }
        let bytes = scratch.withUnsafeBytes { s in
            [UInt8](unsafeUninitializedCapacity: total) { buf, initialized in
                let out = UnsafeMutableRawBufferPointer(buf)
                var at = 0
                @inline(__always) func put(_ start: Int, _ end: Int) {
                    Self.putUVarint(end - start, out, &at)
                    if end > start {
                        UnsafeMutableRawBufferPointer(rebasing: out[at..<at + end - start])
                            .copyMemory(from: UnsafeRawBufferPointer(rebasing: s[start..<end]))
                        at += end - start
                    }
                }
                for k in order {
                    let p = pairs[k]
                    put(p.nameStart, p.nameEnd)
                    put(p.valueStart, p.valueEnd)
                }
                precondition(at == total, "label emission size mismatch")
                initialized = total
            }
        }
        return Labels(canonicalBytes: bytes)
    }
}
