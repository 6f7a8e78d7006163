import StarlingCore

/// A small streaming JSON writer over bytes. Responses of the read API can hold millions of
/// label values or samples: building them through `Codable` costs an allocation per value, this
/// appends UTF-8 straight into one buffer. Commas are managed by the writer; callers only open,
/// write and close.
public struct JSONWriter: Sendable {
    public private(set) var bytes: [UInt8] = []
    /// One entry per open container: whether the next element needs a leading comma.
    private var needsComma: [Bool] = []
    /// Set after a key: the value that follows takes no comma.
    private var afterKey = false

    public init(reserving capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    /// Empties the buffer for reuse (keeps its capacity).
    public mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        needsComma.removeAll(keepingCapacity: true)
        afterKey = false
    }

    private mutating func separator() {
        if afterKey {
            afterKey = false
            return
        }
        if let last = needsComma.last {
            if last { bytes.append(UInt8(ascii: ",")) }
            needsComma[needsComma.count - 1] = true
        }
    }

    public mutating func beginObject() {
        separator()
        bytes.append(UInt8(ascii: "{"))
        needsComma.append(false)
    }

    public mutating func endObject() {
        needsComma.removeLast()
        bytes.append(UInt8(ascii: "}"))
    }

    public mutating func beginArray() {
        separator()
        bytes.append(UInt8(ascii: "["))
        needsComma.append(false)
    }

    public mutating func endArray() {
        needsComma.removeLast()
        bytes.append(UInt8(ascii: "]"))
    }

    public mutating func key(_ k: String) {
        separator()
        appendQuoted(k)
        bytes.append(UInt8(ascii: ":"))
        afterKey = true
    }

    public mutating func string(_ s: String) {
        separator()
        appendQuoted(s)
    }

    public mutating func int(_ v: Int64) {
        separator()
        bytes.appendDecimal(v)
    }

    /// A finite sample value as a JSON number, spelled as Prometheus spells values
    /// (`appendSampleValue`).
    public mutating func finiteSampleValue(_ v: Double) {
        precondition(v.isFinite, "JSON numbers are finite")
        separator()
        appendSampleValue(v, to: &bytes)
    }

    public mutating func bool(_ v: Bool) {
        separator()
        bytes.append(contentsOf: (v ? "true" : "false").utf8)
    }

    public mutating func null() {
        separator()
        bytes.append(contentsOf: "null".utf8)
    }

    /// A pre-encoded JSON value (trusted input only).
    public mutating func raw(_ json: some Sequence<UInt8>) {
        separator()
        bytes.append(contentsOf: json)
    }

    /// Appends a newline between JSON-lines records (top level only).
    public mutating func newline() {
        precondition(needsComma.isEmpty, "newline inside an open container")
        bytes.append(UInt8(ascii: "\n"))
    }

    // Convenience for the common shapes.
    public mutating func field(_ k: String, _ v: String) {
        key(k)
        string(v)
    }

    public mutating func field(_ k: String, _ v: Int64) {
        key(k)
        int(v)
    }

    public mutating func field(_ k: String, _ v: Bool) {
        key(k)
        bool(v)
    }

    public mutating func object(_ body: (inout JSONWriter) -> Void) {
        beginObject()
        body(&self)
        endObject()
    }

    /// A label set as a JSON object `{"__name__":"up","job":"x"}`, in canonical order.
    public mutating func labels(_ labels: Labels) {
        beginObject()
        labels.forEachRaw { n, v in
            separator()
            appendQuoted(n)
            bytes.append(UInt8(ascii: ":"))
            appendQuoted(v)
        }
        endObject()
    }

    public mutating func stringArray(_ values: [String]) {
        beginArray()
        for v in values { string(v) }
        endArray()
    }

    private mutating func appendQuoted(_ s: String) {
        var s = s
        s.withUTF8 { appendQuoted(UnsafeRawBufferPointer($0)) }
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// Writes `"…"` with JSON escapes. Invalid UTF-8 cannot occur: every input comes from a Swift
    /// `String` or from canonical label bytes, which ingest validated as UTF-8.
    private mutating func appendQuoted(_ raw: UnsafeRawBufferPointer) {
        bytes.append(UInt8(ascii: "\""))
        var start = 0
        for i in 0..<raw.count {
            let b = raw[i]
            if b >= 0x20 && b != UInt8(ascii: "\"") && b != UInt8(ascii: "\\") { continue }
            if start < i { bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[start..<i])) }
            start = i + 1
            bytes.append(UInt8(ascii: "\\"))
            switch b {
            case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "\n"): bytes.append(UInt8(ascii: "n"))
            case UInt8(ascii: "\r"): bytes.append(UInt8(ascii: "r"))
            case UInt8(ascii: "\t"): bytes.append(UInt8(ascii: "t"))
            default:
                bytes.append(contentsOf: [UInt8(ascii: "u"), 0x30, 0x30, Self.hex[Int(b >> 4)], Self.hex[Int(b & 0xF)]])
            }
        }
        if start < raw.count { bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[start..<raw.count])) }
        bytes.append(UInt8(ascii: "\""))
    }
}
