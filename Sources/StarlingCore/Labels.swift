/// One label: a name and a value. Names and values compare by their UTF-8 bytes, as in
/// Prometheus (Go strings), never by Unicode canonical equivalence as Swift's `String ==` does.
public struct Label: Sendable, CustomStringConvertible {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    public var description: String { "\(name)=\(quoteLabelValue(value))" }
}

extension Label: Hashable {
    public static func == (a: Label, b: Label) -> Bool {
        a.name.utf8.elementsEqual(b.name.utf8) && a.value.utf8.elementsEqual(b.value.utf8)
    }
    public func hash(into h: inout Hasher) {
        h.combine(name.utf8.count)
        for b in name.utf8 { h.combine(b) }
        for b in value.utf8 { h.combine(b) }
    }
}

/// The metric-name label.
public let metricNameLabel = "__name__"

/// A label set in canonical form: labels sorted by name (byte order), names unique, no empty
/// values (Prometheus treats an empty value as an absent label).
///
/// Stored as one byte array — for each label `uvarint(len(name)) name uvarint(len(value)) value`
/// — so that equality, hashing, ordering by identity and persistence are all plain byte
/// operations with one allocation per label set (the idea of Prometheus's `stringlabels`).
/// These bytes are also the on-disk series record and the peer-RPC encoding of a label set:
/// the layout is part of the documented formats (docs/formats.md) and must not change.
public struct Labels: Sendable {
    public let bytes: [UInt8]

    /// The address of the storage of `bytes`. Two label sets alive at once with the same
    /// identity share their array (one was copied from the other, or both came from the ingest
    /// series cache) and so are equal, without a comparison; different identities say nothing.
    /// Reads neither the storage nor its reference count.
    @inlinable
    public var storageIdentity: UnsafeRawPointer { unsafeBitCast(bytes, to: UnsafeRawPointer.self) }

    public static let empty = Labels(canonicalBytes: [])

    /// Wraps bytes that are already canonical. Use `validatingCanonicalBytes` for untrusted input.
    public init(canonicalBytes: [UInt8]) { self.bytes = canonicalBytes }

    /// Builds a canonical label set: sorts by name, drops empty values.
    /// - Precondition: names are unique (check with `LabelsBuilder` when the input is untrusted).
    public init(_ labels: [Label]) {
        var b = LabelsBuilder()
        for l in labels { b.set(l.name, l.value) }
        self = b.build()
    }

    public init(_ pairs: KeyValuePairs<String, String>) {
        self.init(pairs.map { Label($0.key, $0.value) })
    }

    public init(_ dict: [String: String]) {
        self.init(dict.map { Label($0.key, $0.value) })
    }

    /// Parses bytes from disk or the network and checks they are canonical.
    public static func validatingCanonicalBytes(_ bytes: [UInt8]) throws(DecodeError) -> Labels {
        var r = ByteReader(bytes)
        var prev: ArraySlice<UInt8>? = nil
        while !r.isAtEnd {
            let name = try r.readLengthPrefixed(limit: 1 << 16, "label name")
            let value = try r.readLengthPrefixed(limit: 1 << 20, "label value")
            if name.isEmpty { throw .malformed(context: "empty label name") }
            if value.isEmpty { throw .malformed(context: "empty label value") }
            if let p = prev, !p.lexicographicallyPrecedes(name) {
                throw .malformed(context: "label names not strictly sorted")
            }
            prev = name
        }
        return Labels(canonicalBytes: bytes)
    }

    /// Number of labels.
    public var count: Int {
        var n = 0
        forEachRaw { _, _ in n += 1 }
        return n
    }

    public var isEmpty: Bool { bytes.isEmpty }

    /// Without the label `name`: its pair cut out of the canonical bytes with two copies, or
    /// `self` when there is none (PromQL drops `__name__` from every series a function returns).
    public func removingLabel(named name: String) -> Labels {
        var name = name
        let cut: Range<Int>? = name.withUTF8 { want in
            bytes.withUnsafeBytes { buf in
                var i = 0
                while i < buf.count {
                    let (nl, a) = Self.uvarint(buf, i)
                    let (vl, b) = Self.uvarint(buf, a + nl)
                    if nl == want.count, compareBytes(UnsafeRawBufferPointer(rebasing: buf[a..<a + nl]), UnsafeRawBufferPointer(want)) == 0 {
                        return i..<(b + vl)
                    }
                    i = b + vl
                }
                return nil
            }
        }
        guard let cut else { return self }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count - cut.count)
        out.append(contentsOf: bytes[..<cut.lowerBound])
        out.append(contentsOf: bytes[cut.upperBound...])
        return Labels(canonicalBytes: out)
    }

    /// Calls `body` with each label's raw name and value bytes, in order.
    @inlinable
    public func forEachRaw(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void) rethrows {
        try bytes.withUnsafeBytes { buf in
            var i = 0
            let n = buf.count
            while i < n {
                let (nl, a) = Self.uvarint(buf, i)
                let name = UnsafeRawBufferPointer(rebasing: buf[a..<a + nl])
                let (vl, b) = Self.uvarint(buf, a + nl)
                let value = UnsafeRawBufferPointer(rebasing: buf[b..<b + vl])
                try body(name, value)
                i = b + vl
            }
        }
    }

    @inlinable @inline(__always)
    static func uvarint(_ buf: UnsafeRawBufferPointer, _ at: Int) -> (Int, Int) {
        var result = 0
        var shift = 0
        var i = at
        while true {
            let b = buf[i]
            i += 1
            result |= Int(b & 0x7F) << shift
            if b < 0x80 { return (result, i) }
            shift += 7
        }
    }

    /// The labels as an array of `Label`.
    public var array: [Label] {
        var out: [Label] = []
        forEachRaw { n, v in out.append(Label(String(decoding: n, as: UTF8.self), String(decoding: v, as: UTF8.self))) }
        return out
    }

    public var names: [String] { array.map(\.name) }

    /// Calls `body` with the raw bytes of label `name`'s value, nil when the label is absent;
    /// no `String` is made (matching a selector against stored labels).
    public func withRawValue<R>(of name: String, _ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        var key = name
        return try key.withUTF8 { k in
            let kb = UnsafeRawBufferPointer(k)
            return try bytes.withUnsafeBytes { buf in
                var i = 0
                while i < buf.count {
                    let (nl, a) = Self.uvarint(buf, i)
                    let (vl, b) = Self.uvarint(buf, a + nl)
                    if nl == kb.count, compareBytes(UnsafeRawBufferPointer(rebasing: buf[a..<a + nl]), kb) == 0 {
                        return try body(UnsafeRawBufferPointer(rebasing: buf[b..<b + vl]))
                    }
                    i = b + vl
                }
                return try body(nil)
            }
        }
    }

    /// The value of label `name`, or nil when absent.
    public func get(_ name: String) -> String? {
        withRawValue(of: name) { $0.map { String(decoding: $0, as: UTF8.self) } }
    }

    public func has(_ name: String) -> Bool { withRawValue(of: name) { $0 != nil } }

    /// The metric name (`__name__`), if any.
    public var metricName: String? { self.get(metricNameLabel) }

    /// The stable 64-bit identity hash of this label set (XXH64 of the canonical bytes).
    public var stableHash: UInt64 { XXH64.hash(bytes) }

    /// A copy with `names` removed.
    public func removing(_ names: Set<String>) -> Labels {
        filterNames { !names.contains($0) }
    }

    /// A copy keeping only `names`.
    public func keeping(_ names: Set<String>) -> Labels {
        filterNames { names.contains($0) }
    }

    /// A copy without the metric name.
    public var droppingMetricName: Labels { removing([metricNameLabel]) }

    /// A copy with `name` set to `value` (removed if `value` is empty).
    public func setting(_ name: String, _ value: String) -> Labels {
        var b = LabelsBuilder(self)
        b.set(name, value)
        return b.build()
    }

    func filterNames(_ keep: (String) -> Bool) -> Labels {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        forEachRaw { n, v in
            if keep(String(decoding: n, as: UTF8.self)) {
                out.appendLengthPrefixed(n)
                out.appendLengthPrefixed(v)
            }
        }
        return Labels(canonicalBytes: out)
    }
}

extension Labels: Hashable {
    /// Word-at-a-time: every series lookup on the ingest path ends in one such comparison of
    /// two ~200-byte label sets, and `Array.==` compares element by element.
    public static func == (a: Labels, b: Labels) -> Bool {
        let n = a.bytes.count
        guard n == b.bytes.count else { return false }
        return a.bytes.withUnsafeBytes { x in
            b.bytes.withUnsafeBytes { y in
                if x.baseAddress == y.baseAddress { return true }
                var i = 0
                while i + 8 <= n {
                    if x.loadUnaligned(fromByteOffset: i, as: UInt64.self) != y.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
                    i += 8
                }
                while i < n {
                    if x[i] != y[i] { return false }
                    i += 1
                }
                return true
            }
        }
    }
    public func hash(into h: inout Hasher) {
        bytes.withUnsafeBytes { h.combine(bytes: $0) }
    }
}

extension Labels: Comparable {
    /// Prometheus's `labels.Compare` order: label by label, name then value (bytewise), then the
    /// shorter set first.
    public static func < (a: Labels, b: Labels) -> Bool { compare(a, b) < 0 }

    public static func compare(_ a: Labels, _ b: Labels) -> Int {
        a.bytes.withUnsafeBytes { x in
            b.bytes.withUnsafeBytes { y in
                // Series sorted for a query share most of their labels: find the first byte that
                // differs, a word at a time. The fields (length-prefixed names and values) that
                // end before it are equal and lie at the same offsets in both.
                let n = Swift.min(x.count, y.count)
                let d = commonPrefix(x, y, upTo: n)
                if d == x.count && d == y.count { return 0 }
                var i = 0
                while i < n {
                    let (la, ia) = uvarint(x, i)
                    if ia + la <= d {
                        i = ia + la
                        continue
                    }
                    // The first field that differs decides, by its bytes (a name against a name,
                    // a value against a value: every field before it was equal).
                    let (lb, ib) = uvarint(y, i)
                    return compareBytes(
                        UnsafeRawBufferPointer(rebasing: x[ia..<ia + la]),
                        UnsafeRawBufferPointer(rebasing: y[ib..<ib + lb]))
                }
                // Equal up to the end of the shorter set: fewer labels first.
                return x.count < y.count ? -1 : 1
            }
        }
    }
}

extension Labels {
    /// How many leading bytes `x` and `y` share, looking at most at `n` (≤ both counts); a
    /// word at a time, since label sets compared or sorted together share most of their bytes.
    static func commonPrefix(_ x: UnsafeRawBufferPointer, _ y: UnsafeRawBufferPointer, upTo n: Int) -> Int {
        var d = 0
        while d + 8 <= n, x.loadUnaligned(fromByteOffset: d, as: UInt64.self) == y.loadUnaligned(fromByteOffset: d, as: UInt64.self) {
            d += 8
        }
        while d < n, x[d] == y[d] { d += 1 }
        return d
    }

    /// For each of `sets`, a key whose order agrees with `Labels.compare` wherever two keys differ
    /// (equal keys decide nothing): sorting by key first settles most pairs with one integer
    /// comparison instead of a walk over both label sets.
    ///
    /// The sets' bytes share a common prefix; every field (a length-prefixed name or value) that
    /// ends inside it is equal in all sets, so the field holding the first difference starts at
    /// the same offset `f` in each. That field decides `compare` by its bytes, so the key is its
    /// first 8 bytes, big-endian, zero-padded (a shorter field that is a prefix of a longer one
    /// pads to a key no greater than the longer one's). A set that ends at `f` has fewer labels
    /// and sorts first: its key is (0, 0), the others' (1, bytes).
    public static func sortKeys(_ sets: [Labels]) -> [(UInt8, UInt64)] {
        guard let first = sets.first else { return [] }
        return first.bytes.withUnsafeBytes { x -> [(UInt8, UInt64)] in
            // Common prefix of every set with the first.
            var common = x.count
            for other in sets.dropFirst() {
                common = other.bytes.withUnsafeBytes { y in commonPrefix(x, y, upTo: Swift.min(common, y.count)) }
                if common == 0 { break }
            }
            // Start of the field holding the first difference (fields ending inside the common
            // prefix are skipped; a field's length prefix belongs to it).
            var f = 0
            while f < x.count {
                let (len, start) = uvarint(x, f)
                if start + len > common { break }
                f = start + len
            }
            return sets.map { set in
                set.bytes.withUnsafeBytes { y -> (UInt8, UInt64) in
                    guard f < y.count else { return (0, 0) }
                    let (len, start) = uvarint(y, f)
                    var key: UInt64 = 0
                    for k in 0..<8 {
                        key <<= 8
                        if k < len { key |= UInt64(y[start + k]) }
                    }
                    return (1, key)
                }
            }
        }
    }
}

extension Array {
    /// Sorts by the `Labels` each element carries (`Labels.<`), most comparisons being one
    /// integer comparison of `Labels.sortKeys`.
    @inlinable
    public mutating func sortByLabels(_ labels: (Element) -> Labels) {
        guard count > 1 else { return }
        let keys = Labels.sortKeys(map(labels))
        var order = Array<Int>(indices)
        order.sort { i, j in
            let a = keys[i], b = keys[j]
            if a != b { return a < b }
            return Labels.compare(labels(self[i]), labels(self[j])) < 0
        }
        self = order.map { self[$0] }
    }
}

/// Bytewise three-way comparison (memcmp then length).
@inlinable
public func compareBytes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
    let n = Swift.min(a.count, b.count)
    var k = 0
    while k + 8 <= n {
        let wa = a.loadUnaligned(fromByteOffset: k, as: UInt64.self)
        let wb = b.loadUnaligned(fromByteOffset: k, as: UInt64.self)
        if wa != wb { return wa.bigEndian < wb.bigEndian ? -1 : 1 }  // byte order = numeric order big-endian
        k += 8
    }
    while k < n {
        if a[k] != b[k] { return a[k] < b[k] ? -1 : 1 }
        k += 1
    }
    return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
}

/// Bytewise order of two strings (Go's string order), which Swift's `<` is not for non-ASCII text.
@inlinable
public func utf8Less(_ a: String, _ b: String) -> Bool {
    a.utf8.lexicographicallyPrecedes(b.utf8)
}

extension Labels: Sequence {
    public func makeIterator() -> IndexingIterator<[Label]> { array.makeIterator() }
}

extension Labels: CustomStringConvertible {
    /// Prometheus text form: `name{a="b", c="d"}`.
    public var description: String {
        var name = ""
        var parts: [String] = []
        for l in array {
            if l.name == metricNameLabel { name = l.value } else { parts.append(l.description) }
        }
        if parts.isEmpty && !name.isEmpty { return name }
        return name + "{" + parts.joined(separator: ", ") + "}"
    }
}

/// Builds canonical label sets; the place where duplicate names are detected.
public struct LabelsBuilder: Sendable {
    private var labels: [Label] = []

    public init() {}
    public init(_ base: Labels) { labels = base.array }

    /// Sets `name` to `value`; an empty value removes the label.
    public mutating func set(_ name: String, _ value: String) {
        if let i = labels.firstIndex(where: { $0.name.utf8.elementsEqual(name.utf8) }) {
            if value.isEmpty { labels.remove(at: i) } else { labels[i].value = value }
        } else if !value.isEmpty {
            labels.append(Label(name, value))
        }
    }

    public mutating func remove(_ name: String) { set(name, "") }

    public func get(_ name: String) -> String? {
        labels.first(where: { $0.name.utf8.elementsEqual(name.utf8) })?.value
    }

    public func build() -> Labels {
        let sorted = labels.sorted { utf8Less($0.name, $1.name) }
        var out: [UInt8] = []
        out.reserveCapacity(sorted.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 2 })
        for l in sorted {
            out.appendLengthPrefixed(l.name)
            out.appendLengthPrefixed(l.value)
        }
        return Labels(canonicalBytes: out)
    }
}

/// Quotes a label value the way Prometheus prints it (Go's `strconv.Quote` for the common cases).
public func quoteLabelValue(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        default:
            if u.value < 0x20 || u.value == 0x7F {
                out += "\\x" + (u.value < 0x10 ? "0" : "") + String(u.value, radix: 16)
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out + "\""
}

/// Label name syntax: Prometheus's classic `[a-zA-Z_][a-zA-Z0-9_]*`.
public func isValidLabelName(_ name: String) -> Bool {
    var first = true
    for b in name.utf8 {
        let ok = (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || b == 0x5F || (!first && b >= 0x30 && b <= 0x39)
        if !ok { return false }
        first = false
    }
    return !first
}

/// Metric name syntax: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
public func isValidMetricName(_ name: String) -> Bool {
    var first = true
    for b in name.utf8 {
        let ok = (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || b == 0x5F || b == 0x3A
            || (!first && b >= 0x30 && b <= 0x39)
        if !ok { return false }
        first = false
    }
    return !first
}
