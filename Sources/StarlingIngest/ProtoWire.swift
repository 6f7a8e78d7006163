/// A bounds-checked protobuf wire-format reader over borrowed bytes (no copies, no allocations).
/// Offsets are absolute within the whole body so errors can name the exact byte.
///
/// Wire rules follow SwiftProtobuf's binary decoder (our reference): field number 0, wire types
/// 6 and 7, an END_GROUP without its START_GROUP, varints longer than 10 bytes and lengths past
/// the end are malformed; groups (wire types 3/4) are skipped with their contents; a known field
/// number with an unexpected wire type is skipped like an unknown field.
struct ProtoReader {
    let p: UnsafeRawBufferPointer
    var i: Int
    let end: Int

    struct WireError: Error {
        var offset: Int
        var message: String
    }

    enum WireType: Int {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, startGroup = 3, endGroup = 4, fixed32 = 5
    }

    /// Deepest group nesting skipped (SwiftProtobuf's default recursion limit).
    static let maxGroupDepth = 100

    init(_ p: UnsafeRawBufferPointer, from: Int, to: Int) {
        self.p = p
        self.i = from
        self.end = to
    }

    var isAtEnd: Bool { i >= end }

    @inline(__always)
    mutating func readVarint() throws(WireError) -> UInt64 {
        // Fast path: one byte.
        if i < end {
            let b = p[i]
            if b < 0x80 {
                i += 1
                return UInt64(b)
            }
        }
        let start = i
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard i < end else { throw WireError(offset: start, message: "truncated varint") }
            let b = p[i]
            i += 1
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
            if shift >= 70 { throw WireError(offset: start, message: "varint longer than 10 bytes") }
        }
    }

    /// Reads a field tag. Returns the field number and wire type.
    @inline(__always)
    mutating func readTag() throws(WireError) -> (field: Int, wire: WireType) {
        let at = i
        let tag = try readVarint()
        guard tag <= UInt64(UInt32.max) else { throw WireError(offset: at, message: "field tag \(tag) out of range") }
        let field = Int(tag >> 3)
        guard field > 0 else { throw WireError(offset: at, message: "field number 0") }
        guard let wire = WireType(rawValue: Int(tag & 7)) else {
            throw WireError(offset: at, message: "invalid wire type \(tag & 7) for field \(field)")
        }
        return (field, wire)
    }

    @inline(__always)
    mutating func readFixed64() throws(WireError) -> UInt64 {
        guard end - i >= 8 else { throw WireError(offset: i, message: "truncated fixed64") }
        let v = p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        i += 8
        return UInt64(littleEndian: v)
    }

    /// Reads a length prefix and returns the body's range; the reader moves past it.
    @inline(__always)
    mutating func readLengthDelimited() throws(WireError) -> Range<Int> {
        let at = i
        let n = try readVarint()
        guard n <= UInt64(end - i) else {
            throw WireError(offset: at, message: "length \(n) runs past the end of the enclosing message (\(end - i) bytes left)")
        }
        let start = i
        i += Int(n)
        return start..<i
    }

    /// Skips the value of a field already tagged with `wire`.
    mutating func skip(_ wire: WireType, field: Int, depth: Int = 0) throws(WireError) {
        switch wire {
        case .varint: _ = try readVarint()
        case .fixed64:
            guard end - i >= 8 else { throw WireError(offset: i, message: "truncated fixed64 in field \(field)") }
            i += 8
        case .fixed32:
            guard end - i >= 4 else { throw WireError(offset: i, message: "truncated fixed32 in field \(field)") }
            i += 4
        case .lengthDelimited: _ = try readLengthDelimited()
        case .startGroup:
            guard depth < Self.maxGroupDepth else { throw WireError(offset: i, message: "groups nested deeper than \(Self.maxGroupDepth)") }
            while true {
                guard i < end else { throw WireError(offset: i, message: "unterminated group for field \(field)") }
                let at = i
                let (f, w) = try readTag()
                if w == .endGroup {
                    guard f == field else { throw WireError(offset: at, message: "END_GROUP for field \(f) inside group \(field)") }
                    return
                }
                try skip(w, field: f, depth: depth + 1)
            }
        case .endGroup:
            throw WireError(offset: i, message: "END_GROUP for field \(field) without a START_GROUP")
        }
    }
}
