import NIOCore
import StarlingMembership

/// Push-pull frames on TCP: `length u32 big-endian ‖ envelope`. The decoder refuses a length
/// above `maxFrameBytes` before buffering it, so a peer cannot make this node hold more than one
/// bounded frame per connection.
struct PushPullFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    static let maxFrameBytes = Limits.maxPushPullBytes + Envelope.maxOverheadBytes

    struct FrameTooLarge: Error, CustomStringConvertible {
        var length: UInt32
        var description: String { "push-pull frame of \(length) bytes exceeds limit \(PushPullFrameDecoder.maxFrameBytes)" }
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try decodeFrame(&buffer) else { return .needMoreData }
        var b = context.channel.allocator.buffer(capacity: frame.count)
        b.writeBytes(frame)
        context.fireChannelRead(wrapInboundOut(b))
        return .continue
    }

    /// The framing rule, independent of a channel: the next complete frame's payload, or nil if
    /// more bytes are needed. Throws before buffering a body longer than `maxFrameBytes`.
    func decodeFrame(_ buffer: inout ByteBuffer) throws -> [UInt8]? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard length <= UInt32(Self.maxFrameBytes) else { throw FrameTooLarge(length: length) }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readBytes(length: Int(length))
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}

func framed(_ payload: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer {
    var b = allocator.buffer(capacity: 4 + payload.count)
    b.writeInteger(UInt32(payload.count))
    b.writeBytes(payload)
    return b
}
