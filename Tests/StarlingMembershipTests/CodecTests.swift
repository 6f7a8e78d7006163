import StarlingCore
import Testing

@testable import StarlingMembership

@Suite struct CodecTests {
    static let cluster = ClusterID("test-cluster")
    static let a = NodeID(high: 0x0102_0304_0506_0708, low: 0x090A_0B0C_0D0E_0F10)
    static let b = NodeID(high: 0x1111_1111_1111_1111, low: 0x2222_2222_2222_2222)

    static func alive(_ id: NodeID, inc: UInt64 = 7) -> GossipUpdate {
        .alive(AliveUpdate(id: id, incarnation: inc, name: "node-a", address: GossipAddress(host: "10.0.0.1", port: 7946),
                           metadata: NodeMetadata(httpAddress: "10.0.0.1:9090", peerAddress: "10.0.0.1:7947", zone: "z1",
                                                  state: .active, version: "0.1.0")))
    }

    static let samplePackets: [SWIMPacket] = [
        SWIMPacket(sender: a, message: .ping(seq: 1, target: b)),
        SWIMPacket(sender: a, message: .pingReq(seq: 0xFFFF_FFFF, target: b, targetAddress: GossipAddress(host: "::1", port: 1))),
        SWIMPacket(sender: b, message: .ack(seq: 42), updates: [alive(a), .suspect(id: a, incarnation: 3, from: b)]),
        SWIMPacket(sender: b, message: .nack(seq: 9), updates: [.dead(id: b, incarnation: 0, from: a), .left(id: a, incarnation: UInt64.max)]),
        SWIMPacket(sender: b, message: .gossip, updates: [alive(b, inc: 1 << 40)]),
    ]

    @Test func packetRoundTrip() throws {
        for p in Self.samplePackets {
            let bytes = SWIMCodec.encode(p, cluster: Self.cluster)
            #expect(try SWIMCodec.decodePacket(bytes, cluster: Self.cluster) == p)
            let expectedSize = SWIMCodec.headerBytes + SWIMCodec.messageBytes(p.message) + 1
                + p.updates.map(SWIMCodec.encodedSize).reduce(0, +)
            #expect(bytes.count == expectedSize)
        }
    }

    /// The format must not drift silently: these bytes are the documented example in
    /// docs/formats/gossip.md.
    @Test func goldenPing() throws {
        let p = SWIMPacket(sender: Self.a, message: .ping(seq: 1, target: Self.b), updates: [.left(id: Self.b, incarnation: 300)])
        let bytes = SWIMCodec.encode(p, cluster: ClusterID("starling"))
        let fp = XXH64.hash("starling")
        var expected: [UInt8] = [0x01]
        expected.appendBigEndian(fp)
        expected += [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10]
        expected += [0x01, 0x00, 0x00, 0x00, 0x01]
        expected += [UInt8](repeating: 0x11, count: 8) + [UInt8](repeating: 0x22, count: 8)
        expected += [0x01]  // one update
        expected += [0x04, 0x12] + [UInt8](repeating: 0x11, count: 8) + [UInt8](repeating: 0x22, count: 8) + [0xAC, 0x02]
        #expect(bytes == expected)
    }

    @Test func pushPullRoundTrip() throws {
        let members = (0..<50).map { i in
            MemberRecord(id: NodeID(high: UInt64(i), low: 1), name: "n\(i)", address: GossipAddress(host: "127.0.0.\(i)", port: 7000),
                         incarnation: UInt64(i * 3), status: MemberStatus(rawValue: UInt8(i % 4))!,
                         metadata: NodeMetadata(httpAddress: "h:\(i)", zone: "z\(i % 3)", state: .active))
        }
        let s = PushPullState(sender: Self.a, join: true, isResponse: false, members: members)
        let bytes = SWIMCodec.encode(s, cluster: Self.cluster)
        #expect(try SWIMCodec.decodePushPull(bytes, cluster: Self.cluster) == s)
    }

    @Test func rejectsOtherClusterAndVersion() {
        var bytes = SWIMCodec.encode(Self.samplePackets[0], cluster: Self.cluster)
        #expect(throws: SWIMCodec.PacketError.rejected(.wrongCluster(fingerprint: Self.cluster.fingerprint))) {
            try SWIMCodec.decodePacket(bytes, cluster: ClusterID("other"))
        }
        bytes[0] = 2
        #expect(throws: SWIMCodec.PacketError.rejected(.unsupportedVersion(2))) {
            try SWIMCodec.decodePacket(bytes, cluster: Self.cluster)
        }
    }

    @Test func unknownUpdateTypeIsSkipped() throws {
        let p = SWIMPacket(sender: Self.a, message: .gossip, updates: [.left(id: Self.b, incarnation: 1)])
        var bytes = SWIMCodec.encode(p, cluster: Self.cluster)
        // Replace the count with 2 and append a type-200 update with a 3-byte body.
        let countAt = SWIMCodec.headerBytes
        bytes[countAt] = 2
        bytes += [200, 3, 9, 9, 9]
        #expect(try SWIMCodec.decodePacket(bytes, cluster: Self.cluster).updates == p.updates)
    }

    /// Every truncation and every single-byte corruption of valid packets either decodes or
    /// throws; none traps. Plus seeded random garbage.
    @Test func malformedNeverCrashes() {
        var rng = Xoshiro256(seed: 1234)
        for p in Self.samplePackets {
            let bytes = SWIMCodec.encode(p, cluster: Self.cluster)
            for cut in 0..<bytes.count {
                #expect(throws: SWIMCodec.PacketError.self) { try SWIMCodec.decodePacket(Array(bytes[..<cut]), cluster: Self.cluster) }
            }
            for i in 0..<bytes.count {
                var c = bytes
                c[i] = UInt8(truncatingIfNeeded: rng.next())
                _ = try? SWIMCodec.decodePacket(c, cluster: Self.cluster)
            }
        }
        for _ in 0..<2_000 {
            let n = Int(rng.next() % 300)
            var garbage = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if n > 9 {
                garbage[0] = 1
                garbage.replaceSubrange(1..<9, with: withUnsafeBytes(of: Self.cluster.fingerprint.bigEndian, Array.init))
            }
            _ = try? SWIMCodec.decodePacket(garbage, cluster: Self.cluster)
            _ = try? SWIMCodec.decodePushPull(garbage, cluster: Self.cluster)
        }
    }

    @Test func hostileCountsAreBounded() {
        var bytes = SWIMCodec.encode(SWIMPacket(sender: Self.a, message: .gossip), cluster: Self.cluster)
        bytes.removeLast()
        bytes.appendUVarint(1_000_000)
        #expect(throws: SWIMCodec.PacketError.self) { try SWIMCodec.decodePacket(bytes, cluster: Self.cluster) }
        var pp = SWIMCodec.encode(PushPullState(sender: Self.a, join: false, isResponse: false, members: []), cluster: Self.cluster)
        pp.removeLast()
        pp.appendUVarint(UInt64(Limits.maxPushPullMembers) + 1)
        #expect(throws: SWIMCodec.PacketError.self) { try SWIMCodec.decodePushPull(pp, cluster: Self.cluster) }
    }

    @Test func invalidUTF8Rejected() {
        var out: [UInt8] = []
        SWIMCodec.appendID(&out, Self.a)
        out.appendUVarint(1)
        out += [2, 0xC3, 0x28]  // name: invalid UTF-8
        var r = ByteReader(out)
        _ = try? SWIMCodec.readID(&r, "id")
        _ = try? r.readUVarint()
        #expect(throws: DecodeError.self) { try SWIMCodec.readString(&r, limit: 10, "name") }
    }

    @Test func addressParsing() {
        #expect(GossipAddress(parsing: "127.0.0.1:7946") == GossipAddress(host: "127.0.0.1", port: 7946))
        #expect(GossipAddress(parsing: "[::1]:7946") == GossipAddress(host: "::1", port: 7946))
        #expect(GossipAddress(parsing: "seeds.starling.svc:7946")?.host == "seeds.starling.svc")
        #expect(GossipAddress(parsing: "nohost") == nil)
        #expect(GossipAddress(parsing: "h:0") == nil)
        #expect(GossipAddress(parsing: "h:70000") == nil)
        #expect(GossipAddress.parseList("a:1, b:2,,") == [GossipAddress(host: "a", port: 1), GossipAddress(host: "b", port: 2)])
        #expect(GossipAddress.parseList("a:1,bad") == nil)
        let id = NodeID(high: 0xABC, low: 0x1)
        #expect(NodeID(hex: id.description) == id)
    }
}

@Suite struct KeyringTests {
    static let k1 = [UInt8](repeating: 1, count: 32)
    static let k2 = [UInt8](repeating: 2, count: 16)

    @Test func sealOpenAndRotate() throws {
        var rng = Xoshiro256(seed: 7)
        let old = try Keyring(rawKeys: [Self.k1])
        let both = try Keyring(rawKeys: [Self.k2, Self.k1])  // new primary, old still accepted
        let new = try Keyring(rawKeys: [Self.k2])
        let msg: [UInt8] = Array("hello gossip".utf8)
        let sealedOld = Envelope.seal(msg, keyring: old, random: &rng)
        #expect(sealedOld.count == msg.count + Envelope.maxOverheadBytes)
        #expect(try Envelope.open(sealedOld, keyring: both) == msg)
        let sealedBoth = Envelope.seal(msg, keyring: both, random: &rng)
        #expect(try Envelope.open(sealedBoth, keyring: new) == msg)
        #expect(throws: Envelope.OpenError.authenticationFailed) { try Envelope.open(sealedOld, keyring: new) }
    }

    @Test func tamperingAndModeMismatchRejected() throws {
        var rng = Xoshiro256(seed: 8)
        let ring = try Keyring(rawKeys: [Self.k1])
        let sealed = Envelope.seal([1, 2, 3], keyring: ring, random: &rng)
        for i in 0..<sealed.count {
            var t = sealed
            t[i] ^= 0x40
            #expect(throws: Envelope.OpenError.self) { try Envelope.open(t, keyring: ring) }
        }
        let plain = Envelope.seal([1, 2, 3], keyring: Keyring(), random: &rng)
        #expect(throws: Envelope.OpenError.plaintextRefused) { try Envelope.open(plain, keyring: ring) }
        #expect(throws: Envelope.OpenError.encryptedWithoutKeys) { try Envelope.open(sealed, keyring: Keyring()) }
        #expect(throws: Envelope.OpenError.tooShort(5)) { try Envelope.open([1, 0, 0, 0, 0], keyring: ring) }
    }

    @Test func keyValidation() {
        #expect(throws: Keyring.KeyError.badLength(index: 0, bytes: 5)) { try Keyring(rawKeys: [[1, 2, 3, 4, 5]]) }
        #expect(throws: Keyring.KeyError.badBase64(index: 1)) { try Keyring(base64Keys: [Base64.encode(Self.k1), "!!"]) }
        #expect(Base64.decode(Base64.encode(Self.k1)) == Self.k1)
        for n in 0..<10 {
            let b = (0..<n).map { UInt8($0 * 37 & 0xFF) }
            #expect(Base64.decode(Base64.encode(b)) == b)
        }
        #expect(Base64.encode(Array("foobar".utf8)) == "Zm9vYmFy")
        #expect(Base64.encode(Array("fo".utf8)) == "Zm8=")
    }
}
