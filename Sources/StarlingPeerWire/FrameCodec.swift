import Crypto
import StarlingCore
import StarlingMembership

/// LZ4 block compression, injected: this target is pure and may not import the C library. The
/// node passes an adapter over `StarlingCompression.LZ4Block`.
public protocol PeerPayloadCompressor: Sendable {
    /// One raw LZ4 block of `input`.
    func compressLZ4(_ input: [UInt8]) -> [UInt8]
    /// Decodes one raw LZ4 block to exactly `decodedSize` bytes; throws on anything else.
    func decompressLZ4(_ block: ArraySlice<UInt8>, decodedSize: Int) throws -> [UInt8]
}

/// Turns frames into bytes for one connection: compresses payloads that shrink, seals with the
/// keyring's primary key.
///
/// **Nonces.** AES-GCM must never reuse a (key, nonce) pair. Each encoder draws a random 64-bit
/// `salt` once and sends `salt ‖ counter` (big-endian u64 ‖ u32), counting frames; when the
/// counter wraps the salt is incremented. The nonce is a 96-bit counter starting at a random
/// point, unique within the connection by construction and across connections unless two
/// random 64-bit starting points land within 2³²·(frames ÷ 2³²) of each other. Random nonces
/// alone would be capped at ~2³² frames per key cluster-wide (NIST SP 800-38D).
public struct PeerFrameEncoder: Sendable {
    public let keyring: Keyring
    public let compressor: (any PeerPayloadCompressor)?
    /// Payloads shorter than this are sent uncompressed, in bytes. Default 512: below that LZ4
    /// rarely saves a network packet and costs a call. Compression is also skipped when the
    /// result is not smaller than the input.
    public let compressMinBytes: Int
    private var salt: UInt64
    private var counter: UInt32 = 0

    /// - Parameter random: draws the nonce salt (the shell passes the system generator, tests a
    ///   seeded one); not kept.
    public init(keyring: Keyring, compressor: (any PeerPayloadCompressor)? = nil, compressMinBytes: Int = 512,
                random: inout some RandomNumberGenerator) {
        self.keyring = keyring
        self.compressor = compressor
        self.compressMinBytes = compressMinBytes
        salt = random.next()
    }

    /// For tests: a chosen nonce position.
    init(keyring: Keyring, compressor: (any PeerPayloadCompressor)?, compressMinBytes: Int, salt: UInt64, counter: UInt32) {
        self.keyring = keyring
        self.compressor = compressor
        self.compressMinBytes = compressMinBytes
        self.salt = salt
        self.counter = counter
    }

    /// The frame's bytes. `frame.flags` may carry `response` and `endOfStream`; the encoder sets
    /// `lz4` and `sealed`.
    /// - Precondition: the body fits in a u32 (callers cut streams into frames far smaller).
    public mutating func encode(_ frame: PeerFrame) -> [UInt8] {
        var flags = frame.flags.intersection([.response, .endOfStream])
        var body = frame.payload
        if let compressor, body.count >= compressMinBytes {
            var packed: [UInt8] = []
            packed.appendUVarint(UInt64(body.count))
            packed.append(contentsOf: compressor.compressLZ4(body))
            if packed.count < body.count {
                body = packed
                flags.insert(.lz4)
            }
        }
        let sealing = keyring.isEncrypting
        if sealing { flags.insert(.sealed) }
        let bodyLength = body.count + (sealing ? PeerWire.sealOverheadBytes : 0)
        precondition(bodyLength <= Int(UInt32.max), "peer frame body of \(bodyLength) bytes exceeds u32")
        var out: [UInt8] = []
        out.reserveCapacity(PeerWire.headerBytes + bodyLength)
        out.append(PeerWire.magic.0)
        out.append(PeerWire.magic.1)
        out.append(PeerWire.version)
        out.append(frame.type.rawValue)
        out.append(flags.rawValue)
        out.appendBigEndian(frame.requestID)
        out.appendBigEndian(frame.placementVersion)
        out.appendBigEndian(frame.timeoutMs)
        out.appendBigEndian(UInt32(bodyLength))
        guard sealing, let key = keyring.keys.first else {
            out.append(contentsOf: body)
            return out
        }
        var nonceBytes: [UInt8] = []
        nonceBytes.reserveCapacity(PeerWire.nonceBytes)
        nonceBytes.appendBigEndian(salt)
        nonceBytes.appendBigEndian(counter)
        if counter == .max {
            counter = 0
            salt &+= 1
        } else {
            counter += 1
        }
        do {
            let nonce = try AES.GCM.Nonce(data: nonceBytes)
            let box = try AES.GCM.seal(body, using: key, nonce: nonce, authenticating: out)
            out.append(contentsOf: nonceBytes)
            out.append(contentsOf: box.ciphertext)
            out.append(contentsOf: box.tag)
            return out
        } catch {
            // Only possible with a malformed key or nonce; both are valid by construction.
            preconditionFailure("AES-GCM seal failed with a valid key and nonce: \(error)")
        }
    }
}

/// Reassembles frames from a TCP byte stream, in any fragmentation (one byte at a time works).
///
/// Header fields are checked as soon as their byte arrives — a wrong magic at the first two
/// bytes, an unknown version, type or flag at its offset, an oversized body as soon as the
/// length is complete — so garbage never makes the decoder wait for (or buffer) a body.
/// Authentication happens before a payload byte is decompressed or parsed.
///
/// After a frame-level error the stream is out of sync: every later call throws the same error
/// and the shell closes the connection.
public struct PeerFrameDecoder: Sendable {
    public let keyring: Keyring
    public let limits: PeerWireLimits
    public let compressor: (any PeerPayloadCompressor)?
    private var buffer: [UInt8] = []
    private var start = 0
    /// How many bytes of the current frame's header have been validated.
    private var checked = 0
    private var failure: PeerWireError?

    public init(keyring: Keyring, limits: PeerWireLimits = .default, compressor: (any PeerPayloadCompressor)? = nil) {
        self.keyring = keyring
        self.limits = limits
        self.compressor = compressor
    }

    /// Bytes received but not yet returned as frames (for a bounded-buffer check in the shell).
    public var bufferedBytes: Int { buffer.count - start }

    public mutating func append(_ bytes: some Collection<UInt8>) {
        if start > 0, start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame, or nil if more bytes are needed.
    public mutating func next() throws(PeerWireError) -> PeerFrame? {
        if let failure { throw failure }
        do {
            return try decodeNext()
        } catch {
            failure = error
            throw error
        }
    }

    private mutating func decodeNext() throws(PeerWireError) -> PeerFrame? {
        let available = buffer.count - start
        try checkHeader(upTo: min(available, PeerWire.headerBytes))
        guard available >= PeerWire.headerBytes else { return nil }
        let h = start
        let flags = PeerFrameFlags(rawValue: buffer[h + 4])
        let bodyLength = Int(be32(h + 25))
        guard available >= PeerWire.headerBytes + bodyLength else { return nil }
        let bodyStart = h + PeerWire.headerBytes
        let bodyEnd = bodyStart + bodyLength
        var payload: [UInt8]
        if flags.contains(.sealed) {
            payload = try open(header: buffer[h..<bodyStart], body: buffer[bodyStart..<bodyEnd])
        } else {
            payload = Array(buffer[bodyStart..<bodyEnd])
        }
        if flags.contains(.lz4) { payload = try decompress(payload) }
        let frame = PeerFrame(
            type: PeerMessageType(rawValue: buffer[h + 3])!,
            flags: flags.intersection([.response, .endOfStream]),
            requestID: be64(h + 5), placementVersion: be64(h + 13), timeoutMs: be32(h + 21), payload: payload)
        start = bodyEnd
        checked = 0
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        return frame
    }

    /// Validates header bytes `checked ..< count` of the frame at `start`.
    private mutating func checkHeader(upTo count: Int) throws(PeerWireError) {
        let h = start
        while checked < count {
            switch checked {
            case 1:
                guard buffer[h] == PeerWire.magic.0, buffer[h + 1] == PeerWire.magic.1 else {
                    throw .badMagic(buffer[h], buffer[h + 1])
                }
            case 0:
                guard buffer[h] == PeerWire.magic.0 else { throw .badMagic(buffer[h], count > 1 ? buffer[h + 1] : 0) }
            case 2:
                guard PeerWire.supportedVersions.contains(buffer[h + 2]) else {
                    throw .unsupportedVersion(buffer[h + 2], supported: PeerWire.supportedVersions)
                }
            case 3:
                guard PeerMessageType(rawValue: buffer[h + 3]) != nil else { throw .unknownType(buffer[h + 3]) }
            case 4:
                let flags = PeerFrameFlags(rawValue: buffer[h + 4])
                guard PeerFrameFlags.known.isSuperset(of: flags) else { throw .unknownFlags(flags.rawValue) }
                if flags.contains(.sealed), !keyring.isEncrypting { throw .sealedWithoutKeys }
                if !flags.contains(.sealed), keyring.isEncrypting { throw .plaintextRefused }
            case PeerWire.headerBytes - 1:
                let length = Int(be32(h + 25))
                guard length <= limits.maxBodyBytes else { throw .bodyTooLarge(length, limit: limits.maxBodyBytes) }
                if PeerFrameFlags(rawValue: buffer[h + 4]).contains(.sealed), length < PeerWire.sealOverheadBytes {
                    throw .sealedBodyTooShort(length)
                }
            default:
                break
            }
            checked += 1
        }
    }

    private func open(header: ArraySlice<UInt8>, body: ArraySlice<UInt8>) throws(PeerWireError) -> [UInt8] {
        let n = body.startIndex
        let tagStart = body.endIndex - PeerWire.tagBytes
        guard let nonce = try? AES.GCM.Nonce(data: body[n..<n + PeerWire.nonceBytes]),
              let box = try? AES.GCM.SealedBox(
                  nonce: nonce, ciphertext: body[(n + PeerWire.nonceBytes)..<tagStart], tag: body[tagStart...])
        else { throw .authenticationFailed }
        for key in keyring.keys {
            if let plain = try? AES.GCM.open(box, using: key, authenticating: header) {
                return Array(plain)
            }
        }
        throw .authenticationFailed
    }

    private func decompress(_ packed: [UInt8]) throws(PeerWireError) -> [UInt8] {
        var r = ByteReader(packed)
        let size: UInt64
        do {
            size = try r.readUVarint("LZ4 decoded size")
        } catch {
            throw .decompression("\(error)")
        }
        guard size <= UInt64(limits.maxDecodedPayloadBytes) else {
            throw .decodedPayloadTooLarge(size > UInt64(Int.max) ? Int.max : Int(size), limit: limits.maxDecodedPayloadBytes)
        }
        guard let compressor else { throw .decompression("LZ4 flag set but this node has no decompressor") }
        do {
            return try compressor.decompressLZ4(packed[r.offset...], decodedSize: Int(size))
        } catch {
            throw .decompression("\(error)")
        }
    }

    @inline(__always)
    private func be32(_ i: Int) -> UInt32 {
        UInt32(buffer[i]) << 24 | UInt32(buffer[i + 1]) << 16 | UInt32(buffer[i + 2]) << 8 | UInt32(buffer[i + 3])
    }

    @inline(__always)
    private func be64(_ i: Int) -> UInt64 { UInt64(be32(i)) << 32 | UInt64(be32(i + 4)) }
}
