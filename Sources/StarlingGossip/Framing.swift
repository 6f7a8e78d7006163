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
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard length <= UInt32(Self.maxFrameBytes) else { throw FrameTooLarge(length: length) }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
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
