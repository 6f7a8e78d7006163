import StarlingCore
import StarlingMembership
import StarlingPlacement
import StarlingTestKit
import Testing
@testable import StarlingPeerWire

/// Bad input never crashes and is rejected with an error naming what and where — and a header
/// error surfaces at the byte that carries it, not later.
@Suite struct MalformedInputTests {
    static func ping(_ mode: Mode = .plain) -> [UInt8] {
        var enc = mode.encoder()
        return enc.encode(PingMessage(sentAtMs: 5).frame(requestID: 1, placementVersion: 2))
    }

    /// Feeds `bytes` one at a time; returns the index of the byte whose arrival raised the
    /// error, and the error.
    static func firstError(_ bytes: [UInt8], _ decoder: inout PeerFrameDecoder) -> (Int, PeerWireError)? {
        for (i, b) in bytes.enumerated() {
            decoder.append([b])
            do {
                while try decoder.next() != nil {}
            } catch {
                return (i, error)
            }
        }
        return nil
    }

    @Test func headerErrorsAtTheirByte() {
        let good = Self.ping()
        func check(_ offset: Int, _ value: UInt8, _ expected: PeerWireError, mode: Mode = .plain, at: Int? = nil) {
            var bytes = good
            bytes[offset] = value
            var dec = mode.decoder()
            let got = Self.firstError(bytes, &dec)
            #expect(got?.1 == expected, "byte \(offset) = \(value)")
            #expect(got?.0 == (at ?? offset), "byte \(offset) = \(value): raised at \(String(describing: got?.0))")
        }
        check(0, 0x47, .badMagic(0x47, 0))
        check(1, 0x51, .badMagic(0x53, 0x51))
        check(2, 2, .unsupportedVersion(2, supported: 1...1))
        check(2, 0, .unsupportedVersion(0, supported: 1...1))
        check(3, 0, .unknownType(0))
        check(3, 26, .unknownType(26))
        check(3, 0xFF, .unknownType(0xFF))
        check(4, 0x10, .unknownFlags(0x10))
        check(4, 0x80 | 0x08, .unknownFlags(0x88))
        check(4, PeerFrameFlags.sealed.rawValue, .sealedWithoutKeys)
        check(25, 0x02, .bodyTooLarge(0x0200_0001, limit: 32 << 20), at: 28)
        // A plaintext frame at a node with keys is refused at the flags byte.
        var dec = Mode.sealed.decoder()
        let got = Self.firstError(good, &dec)
        #expect(got?.0 == 4 && got?.1 == .plaintextRefused)
    }

    @Test func errorsNameTheirOffsetAndLimit() {
        #expect(PeerWireError.badMagic(0x47, 0x45).description.contains("0x4745 at offset 0"))
        #expect(PeerWireError.unknownType(26).description.contains("offset 3"))
        #expect(PeerWireError.bodyTooLarge(99, limit: 10).description.contains("max_body_bytes 10"))
        #expect(PeerWireError.unknownFlags(0x18).description.contains("0x10 at offset 4"))
        #expect(PeerWireError.authenticationFailed.reason == "authentication")
    }

    @Test func sealedBodyShorterThanNonceAndTag() {
        var bytes = Self.ping(.sealed)
        bytes[25...28] = [0, 0, 0, 27]
        var dec = Mode.sealed.decoder()
        #expect(Self.firstError(bytes, &dec).map { $0.1 } == .sealedBodyTooShort(27))
    }

    /// Any single changed bit — header (authenticated data), nonce, ciphertext or tag — fails
    /// authentication (or an earlier header check); never a wrong frame.
    @Test func everyBitFlipOfASealedFrameIsRejected() throws {
        var enc = Mode.sealed.encoder()
        let frame = StreamEndMessage(warnings: ["w"]).frame(requestID: 77, placementVersion: 5, flags: [.response, .endOfStream])
        let good = enc.encode(frame)
        for i in 0..<good.count {
            for bit in 0..<8 {
                var bytes = good
                bytes[i] ^= 1 << bit
                var dec = Mode.sealed.decoder()
                do {
                    let frames = try decodeAll(bytes, &dec, chunks: [bytes.count])
                    // Only a length that grew leaves the decoder waiting for more bytes.
                    #expect(frames.isEmpty && (25...28).contains(i), "byte \(i) bit \(bit) accepted")
                } catch {
                    if i >= 29 { #expect(error == .authenticationFailed) }
                }
            }
        }
    }

    @Test func decoderStaysFailedAfterAFrameError() {
        var dec = Mode.plain.decoder()
        dec.append([0x00])
        #expect(throws: PeerWireError.badMagic(0, 0)) { try dec.next() }
        dec.append(Self.ping())
        #expect(throws: PeerWireError.badMagic(0, 0)) { try dec.next() }
    }

    // MARK: LZ4

    static func lz4Frame(payload: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = [0x53, 0x50, 0x01, 0x01, PeerFrameFlags.lz4.rawValue]
        bytes += [UInt8](repeating: 0, count: 20)
        bytes.appendBigEndian(UInt32(payload.count))
        return bytes + payload
    }

    @Test func lz4BombIsRejectedBeforeAllocating() {
        var declared: [UInt8] = []
        declared.appendUVarint(UInt64(1) << 40)
        var dec = Mode.lz4.decoder()
        dec.append(Self.lz4Frame(payload: declared + [0x10, 0x41]))
        #expect(throws: PeerWireError.decodedPayloadTooLarge(1 << 40, limit: 64 << 20)) { try dec.next() }

        var small = Mode.lz4.decoder(limits: PeerWireLimits(
            maxBodyBytes: 1 << 20, maxDecodedPayloadBytes: 100, maxLabelsBytes: 100, maxChunkBytes: 100, maxStringBytes: 100))
        var prefix: [UInt8] = []
        prefix.appendUVarint(101)
        small.append(Self.lz4Frame(payload: prefix + [0x00]))
        #expect(throws: PeerWireError.decodedPayloadTooLarge(101, limit: 100)) { try small.next() }
    }

    @Test func corruptLZ4AndMissingDecompressor() {
        var prefix: [UInt8] = []
        prefix.appendUVarint(50)
        for block in [[UInt8](), [0xF0], [0x1F, 0x41, 0xFF, 0xFF], [0x40, 0x41, 0x42, 0x43, 0x44]] {
            var dec = Mode.lz4.decoder()
            dec.append(Self.lz4Frame(payload: prefix + block))
            do {
                _ = try dec.next()
                Issue.record("block \(block) accepted")
            } catch {
                guard case .decompression = error else { Issue.record("\(error)"); continue }
            }
        }
        var noLZ4 = PeerFrameDecoder(keyring: Keyring())
        noLZ4.append(Self.lz4Frame(payload: prefix + [0x00]))
        #expect(throws: PeerWireError.decompression("LZ4 flag set but this node has no decompressor")) { try noLZ4.next() }
        var truncatedSize = Mode.lz4.decoder()
        truncatedSize.append(Self.lz4Frame(payload: [0x80]))
        #expect(throws: PeerWireError.self) { try truncatedSize.next() }
    }

    // MARK: Payloads

    /// Every strict prefix of every message's payload is rejected (never a crash, never a
    /// silently shorter message), and one extra byte is `trailingBytes`.
    @Test func truncatedAndTrailingPayloads() throws {
        var rng = SeededRandom(seed: 5)
        for m in everyMessage(rng: &rng) {
            let type = Swift.type(of: m).type
            let bytes = m.encoded()
            for n in 0..<bytes.count {
                let frame = PeerFrame(type: type, requestID: 1, placementVersion: 0, payload: Array(bytes[0..<n]))
                do {
                    _ = try AnyPeerMessage(frame)
                    // Only a prefix that is itself a complete message may decode: impossible here
                    // because every message ends with a field whose removal breaks it...
                    // except a trailing empty list/bitmap, which has no bytes to lose.
                    Issue.record("\(type): prefix of \(n)/\(bytes.count) bytes decoded")
                } catch {
                    #expect(error.messageType == type, "\(type): unexpected \(error)")
                }
            }
            let extra = PeerFrame(type: type, requestID: 1, placementVersion: 0, payload: bytes + [0])
            #expect(throws: PeerWireError.trailingBytes(type: type, count: 1)) { try AnyPeerMessage(extra) }
        }
    }

    @Test func hostileCountsAndLengths() {
        // A write claiming 2^60 shard groups in 10 bytes.
        var huge: [UInt8] = []
        huge.appendUVarint(1 << 60)
        #expect(throws: PeerWireError.payload(type: .write, .malformed(context:
            "shard_count 1152921504606846976 at payload offset 0 cannot fit in the 0 bytes left"))) {
            try WriteMessage.decode(huge)
        }
        // A label set longer than the limit.
        var longLabels: [UInt8] = [0x01, 0x00, 0x01, 0x01]
        longLabels.appendUVarint(1 << 17)
        #expect(throws: PeerWireError.limitExceeded(type: .write, field: "labels length (max_labels_bytes)", value: 1 << 17, limit: 1 << 16)) {
            try WriteMessage.decode(longLabels)
        }
        // A varint that never ends.
        #expect(throws: PeerWireError.self) { try PingMessage.decode([UInt8](repeating: 0xFF, count: 11)) }
    }

    @Test func contentRulesAreChecked() {
        func expectMalformed(_ type: PeerMessageType, _ payload: [UInt8], _ fragment: String) {
            do {
                _ = try AnyPeerMessage(PeerFrame(type: type, requestID: 1, placementVersion: 0, payload: payload))
                Issue.record("\(type): accepted, expected \(fragment)")
            } catch {
                #expect(error.description.contains(fragment), "\(type): \(error)")
            }
        }
        // Labels not sorted.
        var unsorted: [UInt8] = [0x01, 0x00, 0x01, 0x01]
        let bad: [UInt8] = [0x01, 0x62, 0x01, 0x31, 0x01, 0x61, 0x01, 0x32]  // b=1, a=2
        unsorted.appendLengthPrefixed(bad)
        unsorted.append(0)
        expectMalformed(.write, unsorted, "not strictly sorted")
        // Empty label set.
        expectMalformed(.write, [0x01, 0x00, 0x01, 0x01, 0x00, 0x00], "empty label set")
        // Invalid UTF-8 in an error message.
        expectMalformed(.error, [0x00, 0x01, 0x02, 0xC3, 0x28], "not valid UTF-8")
        // Unknown matcher kind, bad regex, inverted range.
        var select: [UInt8] = []
        select.appendVarint(0)
        select.appendVarint(10)
        select.appendLengthPrefixed([UInt8]())
        select.appendUVarint(0)
        var kind9 = select
        kind9 += [0x01, 0x09, 0x01, 0x61, 0x01, 0x62]
        expectMalformed(.select, kind9, "unknown kind 9")
        var badRegex = select
        badRegex += [0x01, 0x03, 0x01, 0x61, 0x01, UInt8(ascii: "(")]
        expectMalformed(.select, badRegex, "matcher 0")
        var inverted: [UInt8] = []
        inverted.appendVarint(10)
        inverted.appendVarint(0)
        expectMalformed(.select, inverted, "start_ms 10 after end_ms 0")
        // Series digests out of order.
        var digests: [UInt8] = [0x00, 0x03, 0x00, 0x02]
        for name in ["b", "a"] {
            digests.appendLengthPrefixed(Labels(["__name__": name]).bytes)
            digests.appendBigEndian(UInt64(1))
        }
        expectMalformed(.seriesDigestsReply, digests, "not strictly sorted")
        // A chunk whose time span overflows.
        var chunk: [UInt8] = [0x01]
        chunk.appendLengthPrefixed(Labels(["__name__": "x"]).bytes)
        chunk.appendUVarint(1)
        chunk.appendVarint(.max)
        chunk.appendUVarint(1)
        chunk.appendLengthPrefixed([1])
        expectMalformed(.seriesFrame, chunk, "overflows")
        // A shard bitmap above 65,536 shards.
        var shards: [UInt8] = []
        shards.appendLengthPrefixed(Array("node-1".utf8))
        shards.appendUVarint(8193)
        shards += [UInt8](repeating: 0xFF, count: 8193)
        do {
            _ = try ShardStateMessage.decode(shards)
            Issue.record("oversized shard bitmap accepted")
        } catch {
            #expect(error == .limitExceeded(type: .shardState, field: "complete length (65,536 shards)", value: 8193, limit: 8192))
        }
    }

    // MARK: Seeded fuzzing

    /// Valid frames with random damage (bit flips, overwritten, inserted, deleted bytes, cuts),
    /// plus pure noise, through the streaming decoder and the message decoders: every outcome
    /// is a frame or a `PeerWireError`.
    @Test(arguments: Mode.allCases)
    func damagedStreamsNeverCrash(mode: Mode) {
        var rng = SeededRandom(seed: 0xF00D)
        let messages = everyMessage(rng: &rng)
        var enc = mode.encoder()
        let frames = messages.enumerated().map { i, m in enc.encode(m.frame(requestID: UInt64(i), placementVersion: 1)) }
        var decoded = 0, rejected = 0
        for round in 0..<600 {
            var bytes = frames[round % frames.count]
            if round % 5 == 0 { bytes += frames[(round / 5) % frames.count] }
            let edits = 1 + Int(rng.next() % 4)
            for _ in 0..<edits where !bytes.isEmpty {
                let at = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 5 {
                case 0: bytes[at] ^= 1 << UInt8(rng.next() % 8)
                case 1: bytes[at] = UInt8(truncatingIfNeeded: rng.next())
                case 2: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: at)
                case 3: bytes.remove(at: at)
                default: bytes.removeLast(Int(rng.next() % UInt64(bytes.count)))
                }
            }
            if round % 50 == 0 { bytes = (0..<Int(rng.next() % 300)).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
            var dec = mode.decoder()
            do {
                for f in try decodeAll(bytes, &dec, chunks: [1 + Int(rng.next() % 40)]) {
                    do {
                        _ = try AnyPeerMessage(f)
                        decoded += 1
                    } catch {
                        rejected += 1
                    }
                }
            } catch {
                rejected += 1
            }
        }
        #expect(rejected > 0)
        // Plaintext damage past the header often still frames: some payloads survive intact.
        if mode == .plain { #expect(decoded > 0) }
    }

    /// Random payload bytes for every message type.
    @Test func randomPayloadsNeverCrash() {
        var rng = SeededRandom(seed: 77)
        var accepted = 0
        for type in PeerMessageType.allCases {
            for _ in 0..<400 {
                let n = Int(rng.next() % 64)
                let payload = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next() % 4 == 0 ? rng.next() : rng.next() % 3) }
                if (try? AnyPeerMessage(PeerFrame(type: type, requestID: 0, placementVersion: 0, payload: payload))) != nil {
                    accepted += 1
                }
            }
        }
        #expect(accepted > 0)  // small random inputs are sometimes valid (pings, empty lists)
    }
}
