import StarlingCore
import StarlingMembership
import StarlingPlacement
import StarlingTestKit
import Testing
@testable import StarlingPeerWire

@Suite struct FrameCodecTests {
    // MARK: Golden bytes (docs/formats/peer.md, worked example)

    @Test func goldenPlaintextPing() throws {
        var enc = Mode.plain.encoder()
        let frame = PingMessage(sentAtMs: -1).frame(
            requestID: 0x0102_0304_0506_0708, placementVersion: 0x1122_3344_5566_7788, timeoutMs: 250)
        let bytes = enc.encode(frame)
        #expect(bytes == [
            0x53, 0x50, 0x01, 0x01, 0x00,
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
            0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
            0x00, 0x00, 0x00, 0xFA,
            0x00, 0x00, 0x00, 0x01,
            0x01,
        ])
        var dec = Mode.plain.decoder()
        let frames = try decodeAll(bytes, &dec)
        #expect(frames == [frame])
        #expect(try PingMessage.decode(frames[0].payload) == PingMessage(sentAtMs: -1))
    }

    @Test func goldenWritePayload() throws {
        let write = WriteMessage(shards: [ShardWrite(shard: ShardID(7), series: [
            SeriesSamples(labels: Labels(["__name__": "up", "job": "a"]),
                          samples: [Sample(1000, 1.0), Sample(1015, StaleMarker.value)]),
        ])])
        let expected: [UInt8] = [0x01, 0x00, 0x07, 0x01, 0x12]
            + [0x08] + Array("__name__".utf8) + [0x02] + Array("up".utf8) + [0x03] + Array("job".utf8) + [0x01] + Array("a".utf8)
            + [0x02, 0xD0, 0x0F, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0, 0x1E, 0x7F, 0xF0, 0, 0, 0, 0, 0, 0x02]
        #expect(write.encoded() == expected)
        let back = try WriteMessage.decode(expected)
        let samples = back.shards[0].series[0].samples
        #expect(samples.map(\.timestampMs) == [1000, 1015])
        #expect(samples[1].value.bitPattern == StaleMarker.bitPattern)
    }

    /// Sealed layout: header in the clear with the sealed flag, body = salt ‖ counter ‖
    /// ciphertext ‖ tag; the counter advances per frame and carries into the salt.
    @Test func sealedLayoutAndNonceSequence() throws {
        var enc = PeerFrameEncoder(keyring: keyring(keyA), compressor: nil, compressMinBytes: 512,
                                   salt: 0xAABB_CCDD_EEFF_0011, counter: .max - 1)
        let frame = PingMessage(sentAtMs: 7).frame(requestID: 9, placementVersion: 3)
        var nonces: [[UInt8]] = []
        var wire: [UInt8] = []
        for _ in 0..<3 {
            let bytes = enc.encode(frame)
            #expect(Array(bytes[0..<5]) == [0x53, 0x50, 0x01, 0x01, PeerFrameFlags.sealed.rawValue])
            #expect(Array(bytes[25..<29]) == [0, 0, 0, UInt8(1 + 28)])
            #expect(bytes.count == 29 + 1 + 28)
            nonces.append(Array(bytes[29..<41]))
            wire += bytes
        }
        #expect(nonces == [
            [0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF, 0x00, 0x11, 0xFF, 0xFF, 0xFF, 0xFE],
            [0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF, 0x00, 0x11, 0xFF, 0xFF, 0xFF, 0xFF],
            [0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF, 0x00, 0x12, 0x00, 0x00, 0x00, 0x00],
        ])
        var dec = Mode.sealed.decoder()
        #expect(try decodeAll(wire, &dec, chunks: [7, 1, 30]) == [frame, frame, frame])
    }

    // MARK: Round trips

    @Test(arguments: Mode.allCases)
    func everyMessageRoundTripsInAnyFragmentation(mode: Mode) throws {
        var rng = SeededRandom(seed: 11)
        let messages = everyMessage(rng: &rng)
        var enc = mode.encoder()
        var wire: [UInt8] = []
        var frames: [PeerFrame] = []
        for (i, m) in messages.enumerated() {
            let flags: PeerFrameFlags = i % 2 == 0 ? [.response] : (i % 3 == 0 ? [.response, .endOfStream] : [])
            let f = m.frame(requestID: UInt64(i) * 0x1_0000_0001, placementVersion: 0xFEED, flags: flags, timeoutMs: UInt32(i * 100))
            frames.append(f)
            wire += enc.encode(f)
        }
        for chunks in [[1], [2, 3, 5], [29], [4096], [wire.count]] {
            var dec = mode.decoder()
            let got = try decodeAll(wire, &dec, chunks: chunks)
            #expect(got == frames, Comment(rawValue: "\(mode) chunks \(chunks)"))
            #expect(dec.bufferedBytes == 0)
        }
        // Payloads decode as their type and re-encode to the same bytes.
        for (m, f) in zip(messages, frames) {
            let decoded = try AnyPeerMessage(f)
            #expect(reencode(decoded) == m.encoded(), "\(f.type)")
        }
        if mode == .lz4 || mode == .sealedLZ4 {
            // The write batch is large and repetitive: it travels compressed.
            var e = mode.encoder()
            let bytes = e.encode(messages[2].frame(requestID: 1, placementVersion: 1))
            #expect(PeerFrameFlags(rawValue: bytes[4]).contains(.lz4))
            #expect(bytes.count < messages[2].encoded().count)
        }
    }

    func reencode(_ m: AnyPeerMessage) -> [UInt8] {
        switch m {
        case let .ping(x): x.encoded()
        case let .error(x): x.encoded()
        case let .write(x): x.encoded()
        case let .writeAck(x): x.encoded()
        case let .hintDelivery(x): x.encoded()
        case let .select(x): x.encoded()
        case let .seriesFrame(x): x.encoded()
        case let .streamEnd(x): x.encoded()
        case let .blockDigests(x): x.encoded()
        case let .blockDigestsReply(x): x.encoded()
        case let .seriesDigests(x): x.encoded()
        case let .seriesDigestsReply(x): x.encoded()
        case let .fetchShard(x): x.encoded()
        case let .shardState(x): x.encoded()
        case let .labelQuery(x): x.encoded()
        case let .labelQueryReply(x): x.encoded()
        case let .pushChunks(x): x.encoded()
        case let .ruleGroups(x): x.encoded()
        case let .ruleGroupsReply(x): x.encoded()
        case let .postAlerts(x): x.encoded()
        case let .postAlertsReply(x): x.encoded()
        case let .alertmanagerOp(x): x.encoded()
        case let .alertmanagerOpReply(x): x.encoded()
        case let .rulesOp(x): x.encoded()
        case let .rulesOpReply(x): x.encoded()
        }
    }

    @Test func writeValuesSurviveBitForBit() throws {
        var rng = SeededRandom(seed: 3)
        let write = sampleWrite(rng: &rng, shards: 2, series: 3, samples: 50)
        var extremes = write
        extremes.shards[0].series[0].samples = [
            Sample(.min, -0.0), Sample(.max, Double(bitPattern: 0x7FF8_0000_DEAD_BEEF)), Sample(0, .infinity), Sample(-1, .leastNonzeroMagnitude),
        ]
        // One sample: decoded into an inline sample (`SeriesSamples(labels:sample:)`).
        extremes.shards[0].series[1].samples = [Sample(-7, Double(bitPattern: 0xFFF0_0000_0000_0001))]
        extremes.shards[1].series[0] = SeriesSamples(labels: extremes.shards[1].series[0].labels, sample: Sample(.max, StaleMarker.value))
        for w in [write, extremes] {
            let back = try WriteMessage.decode(w.encoded())
            #expect(back.shards.map { $0.shard } == w.shards.map { $0.shard })
            for (a, b) in zip(back.shards.flatMap { $0.series }, w.shards.flatMap { $0.series }) {
                #expect(a.labels == b.labels)
                #expect(a.samples.count == b.samples.count)
                #expect(zip(a.samples, b.samples).allSatisfy { $0.bitwiseEqual($1) })
            }
            #expect(back.sampleCount == w.sampleCount)
        }
    }

    @Test func keyRotationOpensWithASecondaryKey() throws {
        var old = PeerFrameEncoder(keyring: keyring(keyB), compressor: nil, compressMinBytes: 512, salt: 1, counter: 0)
        let frame = PingMessage(sentAtMs: 1).frame(requestID: 1, placementVersion: 1)
        let bytes = old.encode(frame)
        var rotating = PeerFrameDecoder(keyring: keyring(keyA, keyB))
        #expect(try decodeAll(bytes, &rotating) == [frame])
        var newOnly = PeerFrameDecoder(keyring: keyring(keyA))
        #expect(throws: PeerWireError.authenticationFailed) { try decodeAll(bytes, &newOnly) }
    }

    @Test func encoderKeepsOnlyResponseAndEndFlags() throws {
        var enc = Mode.plain.encoder()
        var f = PingMessage(sentAtMs: 0).frame(requestID: 1, placementVersion: 0)
        f.flags = [.lz4, .sealed, .endOfStream]
        let bytes = enc.encode(f)
        #expect(bytes[4] == PeerFrameFlags.endOfStream.rawValue)
        var dec = Mode.plain.decoder()
        #expect(try decodeAll(bytes, &dec).first?.flags == [.endOfStream])
    }

    @Test func incompressiblePayloadIsSentAsIs() throws {
        var rng = SeededRandom(seed: 8)
        let noise = (0..<4096).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        var enc = Mode.lz4.encoder()
        let bytes = enc.encode(PeerFrame(type: .ping, requestID: 1, placementVersion: 0, payload: noise))
        #expect(bytes[4] & PeerFrameFlags.lz4.rawValue == 0)
        #expect(bytes.count == 29 + noise.count)
    }
}
