import NIOCore
import StarlingCompression
import StarlingMembership
import StarlingPeerWire

/// LZ4 for peer frames, through liblz4 (`StarlingCompression`); the pure codec takes it as a
/// `PeerPayloadCompressor`.
public struct LZ4PeerCompressor: PeerPayloadCompressor {
    public init() {}

    public func compressLZ4(_ input: [UInt8]) -> [UInt8] { LZ4Block.compress(input) }

    public func decompressLZ4(_ block: ArraySlice<UInt8>, decodedSize: Int) throws -> [UInt8] {
        try block.withUnsafeBytes { (raw) throws(CompressionError) -> [UInt8] in
            try LZ4Block.decompress(raw, decodedSize: decodedSize)
        }
    }
}

/// Inbound framing: bytes → `PeerFrame`s, with every check of `PeerFrameDecoder` (header bytes
/// as they arrive, body limit, authentication, LZ4 bound). A `PeerWireError` goes down the
/// pipeline as an error; the connection owner closes the channel on it, since the stream is
/// out of sync.
public struct PeerFrameByteDecoder: ByteToMessageDecoder {
    public typealias InboundOut = PeerFrame

    /// The connection ended in the middle of a frame.
    public struct TruncatedFrame: Error, Equatable, CustomStringConvertible {
        public var bufferedBytes: Int
        public init(bufferedBytes: Int) { self.bufferedBytes = bufferedBytes }
        public var description: String { "peer connection closed inside a frame (\(bufferedBytes) bytes buffered)" }
    }

    private var decoder: PeerFrameDecoder

    public init(decoder: PeerFrameDecoder) { self.decoder = decoder }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if buffer.readableBytes > 0 {
            buffer.withUnsafeReadableBytes { decoder.append($0) }
            buffer.moveReaderIndex(to: buffer.writerIndex)
        }
        while let frame = try decoder.next() {
            context.fireChannelRead(wrapInboundOut(frame))
        }
        return .needMoreData
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        _ = try decode(context: context, buffer: &buffer)
        if seenEOF, decoder.bufferedBytes > 0 { throw TruncatedFrame(bufferedBytes: decoder.bufferedBytes) }
        return .needMoreData
    }
}

/// Outbound framing: `PeerFrame` → bytes (compression, sealing). One per connection: it owns
/// the connection's nonce sequence.
public final class PeerFrameEncoderHandler: ChannelOutboundHandler {
    public typealias OutboundIn = PeerFrame
    public typealias OutboundOut = ByteBuffer

    private var encoder: PeerFrameEncoder

    public init(encoder: PeerFrameEncoder) { self.encoder = encoder }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let bytes = encoder.encode(unwrapOutboundIn(data))
        var buffer = context.channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        context.write(wrapOutboundOut(buffer), promise: promise)
    }
}

/// How a peer connection frames and protects its bytes: shared by both ends.
public struct PeerWireConfiguration: Sendable {
    public var keyring: Keyring
    public var limits: PeerWireLimits
    /// Compress payloads with LZ4 when it shrinks them. Default true: write batches and chunk
    /// streams of text-like label sets shrink several-fold for ~1 GB/s of CPU.
    public var compress: Bool

    public init(keyring: Keyring, limits: PeerWireLimits = .default, compress: Bool = true) {
        self.keyring = keyring
        self.limits = limits
        self.compress = compress
    }

    /// Adds the framing handlers to a fresh channel; call on its event loop.
    /// - Parameter random: draws this connection's nonce salt.
    public func addHandlers(to pipeline: ChannelPipeline.SynchronousOperations,
                            random: inout some RandomNumberGenerator) throws {
        let compressor: (any PeerPayloadCompressor)? = compress ? LZ4PeerCompressor() : nil
        let encoder = PeerFrameEncoder(keyring: keyring, compressor: compressor, random: &random)
        let decoder = PeerFrameDecoder(keyring: keyring, limits: limits, compressor: LZ4PeerCompressor())
        try pipeline.addHandler(ByteToMessageHandler(PeerFrameByteDecoder(decoder: decoder)))
        try pipeline.addHandler(PeerFrameEncoderHandler(encoder: encoder))
    }

    /// A bootstrap's channel initializer: the framing handlers (nonce salt from the system
    /// generator) under a `NIOAsyncChannel` of frames.
    public func framedChannel(_ channel: any Channel) -> EventLoopFuture<NIOAsyncChannel<PeerFrame, PeerFrame>> {
        channel.eventLoop.makeCompletedFuture {
            var random = SystemRandomNumberGenerator()
            try addHandlers(to: channel.pipeline.syncOperations, random: &random)
            return try NIOAsyncChannel<PeerFrame, PeerFrame>(wrappingChannelSynchronously: channel)
        }
    }
}
