/// Byte-level encoding helpers shared by every documented binary format (chunks, keys, WAL
/// records, gossip datagrams, peer frames). Big-endian fixed-width integers keep keys
/// lexicographically ordered; unsigned LEB128 varints and zig-zag keep payloads small.

public enum DecodeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input ended before a complete value was read; `context` names what was being read.
    case truncated(context: String)
    /// The input has a value that breaks the format; `context` says which rule.
    case malformed(context: String)

    public var description: String {
        switch self {
        case .truncated(let c): return "truncated input while reading \(c)"
        case .malformed(let c): return "malformed input: \(c)"
        }
    }
}

extension Array where Element == UInt8 {
    @inlinable
    public mutating func appendUVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        append(UInt8(truncatingIfNeeded: v))
    }

    @inlinable
    public mutating func appendVarint(_ value: Int64) {
        appendUVarint(ZigZag.encode(value))
    }

    @inlinable
    public mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }

    @inlinable
    public mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    /// Appends `bytes` prefixed by their length as a uvarint.
    @inlinable
    public mutating func appendLengthPrefixed<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        appendUVarint(UInt64(bytes.count))
        append(contentsOf: bytes)
    }

    @inlinable
    public mutating func appendLengthPrefixed(_ string: String) {
        appendLengthPrefixed(string.utf8)
    }
}

public enum ZigZag {
    @inlinable @inline(__always)
    public static func encode(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }
    @inlinable @inline(__always)
    public static func decode(_ v: UInt64) -> Int64 { Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1) }
}

/// A bounds-checked forward reader over bytes. Every read throws `DecodeError` instead of trapping,
/// because the bytes may come from the network or a damaged file.
///
/// Inlinable: it is used from every decoding module (chunks, the WAL, the index, peer frames),
/// and its generic reads ran unspecialised across the module boundary (a chunk header's
/// `readBigEndian(UInt16.self)` was 2 % of a small query's CPU).
public struct ByteReader {
    public let bytes: [UInt8]
    @usableFromInline var _offset: Int
    public var offset: Int { _offset }
    public let end: Int

    @inlinable
    public init(_ bytes: [UInt8], offset: Int = 0, end: Int? = nil) {
        self.bytes = bytes
        self._offset = offset
        self.end = end ?? bytes.count
    }

    @inlinable public var remaining: Int { end - _offset }
    @inlinable public var isAtEnd: Bool { _offset >= end }

    @inlinable
    public mutating func readByte(_ context: @autoclosure () -> String = "byte") throws(DecodeError) -> UInt8 {
        guard _offset < end else { throw .truncated(context: context()) }
        defer { _offset += 1 }
        return bytes[_offset]
    }

    @inlinable
    public mutating func readUVarint(_ context: @autoclosure () -> String = "uvarint") throws(DecodeError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard _offset < end else { throw .truncated(context: context()) }
            let b = bytes[_offset]
            _offset += 1
            if shift == 63 && b > 1 { throw .malformed(context: "\(context()): varint overflows 64 bits") }
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
            if shift > 63 { throw .malformed(context: "\(context()): varint longer than 10 bytes") }
        }
    }

    @inlinable
    public mutating func readVarint(_ context: @autoclosure () -> String = "varint") throws(DecodeError) -> Int64 {
        ZigZag.decode(try readUVarint(context()))
    }

    @inlinable
    public mutating func readBigEndian<T: FixedWidthInteger>(_: T.Type, _ context: @autoclosure () -> String = "integer") throws(DecodeError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw .truncated(context: context()) }
        var v: T = 0
        for i in 0..<size { v = (v << 8) | T(bytes[_offset + i]) }
        _offset += size
        return v
    }

    @inlinable
    public mutating func readLittleEndian<T: FixedWidthInteger>(_: T.Type, _ context: @autoclosure () -> String = "integer") throws(DecodeError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw .truncated(context: context()) }
        var v: T = 0
        for i in (0..<size).reversed() { v = (v << 8) | T(bytes[_offset + i]) }
        _offset += size
        return v
    }

    @inlinable
    public mutating func readBytes(_ count: Int, _ context: @autoclosure () -> String = "bytes") throws(DecodeError) -> ArraySlice<UInt8> {
        guard count >= 0, remaining >= count else { throw .truncated(context: context()) }
        defer { _offset += count }
        return bytes[_offset..<_offset + count]
    }

    /// Reads a uvarint length followed by that many bytes; `limit` bounds the length so a hostile
    /// length prefix cannot make the reader allocate or skip arbitrarily.
    @inlinable
    public mutating func readLengthPrefixed(limit: Int = Int(Int32.max), _ context: @autoclosure () -> String = "length-prefixed bytes") throws(DecodeError) -> ArraySlice<UInt8> {
        let n = try readUVarint(context())
        guard n <= UInt64(limit) else { throw .malformed(context: "\(context()): length \(n) exceeds limit \(limit)") }
        return try readBytes(Int(n), context())
    }

    @inlinable
    public mutating func readString(limit: Int = Int(Int32.max), _ context: @autoclosure () -> String = "string") throws(DecodeError) -> String {
        let slice = try readLengthPrefixed(limit: limit, context())
        return String(decoding: slice, as: UTF8.self)
    }

    @inlinable
    public mutating func skip(_ count: Int, _ context: @autoclosure () -> String = "bytes") throws(DecodeError) {
        guard count >= 0, remaining >= count else { throw .truncated(context: context()) }
        _offset += count
    }
}
