import StarlingCore

// The gossip wire format, version 1. docs/formats/gossip.md is the byte-by-byte specification;
// keep the two in step. Message and update type numbers are APPEND ONLY: never reuse or renumber.

/// Protocol versions this build speaks. A datagram or frame outside the range is dropped and
/// counted (`SWIMStats.droppedVersion`). A future version 2 would be accepted by raising
/// `maxProtocolVersion` on every node before any node starts sending it.
public enum WireVersion {
    public static let minProtocolVersion: UInt8 = 1
    public static let maxProtocolVersion: UInt8 = 1
    /// The version this build sends.
    public static let current: UInt8 = 1
}

/// The primary message of a datagram. Numbers are the on-wire type byte (append only).
public enum SWIMMessage: Sendable, Hashable {
    /// "Are you alive?" `target` is the receiver's node ID as the sender knows it; a node whose
    /// ID differs (a new node on a reused address) must not answer.
    case ping(seq: UInt32, target: NodeID)
    /// "Please ping `target` at `targetAddress` for me and ack `seq` back if it answers, nack if
    /// it does not within the probe timeout."
    case pingReq(seq: UInt32, target: NodeID, targetAddress: GossipAddress)
    /// Answer to a ping (direct) or forwarded answer to a ping-req (indirect), echoing `seq`.
    case ack(seq: UInt32)
    /// A ping-req relay could not reach the target in time. Tells the origin that the relay
    /// itself is healthy, which is what Lifeguard's local-health awareness needs.
    case nack(seq: UInt32)
    /// No primary message: the datagram only carries gossip updates.
    case gossip

    public var typeByte: UInt8 {
        switch self {
        case .ping: 1
        case .pingReq: 2
        case .ack: 3
        case .nack: 4
        case .gossip: 5
        }
    }
}

/// A membership update, piggybacked on datagrams and retransmitted a bounded number of times.
/// Numbers are the on-wire type byte (append only).
public enum GossipUpdate: Sendable, Hashable {
    /// Type 1. The member is alive at `incarnation` with this name, address and metadata.
    case alive(AliveUpdate)
    /// Type 2. `from` suspects `id` at `incarnation`.
    case suspect(id: NodeID, incarnation: UInt64, from: NodeID)
    /// Type 3. `from` declared `id` dead at `incarnation`.
    case dead(id: NodeID, incarnation: UInt64, from: NodeID)
    /// Type 4. `id` left the cluster gracefully at `incarnation`.
    case left(id: NodeID, incarnation: UInt64)

    public var subject: NodeID {
        switch self {
        case .alive(let a): a.id
        case .suspect(let id, _, _), .dead(let id, _, _), .left(let id, _): id
        }
    }

    public var incarnation: UInt64 {
        switch self {
        case .alive(let a): a.incarnation
        case .suspect(_, let i, _), .dead(_, let i, _), .left(_, let i): i
        }
    }

    var typeByte: UInt8 {
        switch self {
        case .alive: 1
        case .suspect: 2
        case .dead: 3
        case .left: 4
        }
    }
}

public struct AliveUpdate: Sendable, Hashable {
    public var id: NodeID
    public var incarnation: UInt64
    public var name: String
    public var address: GossipAddress
    public var metadata: NodeMetadata

    public init(id: NodeID, incarnation: UInt64, name: String, address: GossipAddress, metadata: NodeMetadata) {
        self.id = id
        self.incarnation = incarnation
        self.name = name
        self.address = address
        self.metadata = metadata
    }
}

/// One datagram's content, before the envelope.
public struct SWIMPacket: Sendable, Hashable {
    public var sender: NodeID
    public var message: SWIMMessage
    public var updates: [GossipUpdate]

    public init(sender: NodeID, message: SWIMMessage, updates: [GossipUpdate] = []) {
        self.sender = sender
        self.message = message
        self.updates = updates
    }
}

/// A member as carried in push-pull state.
public struct MemberRecord: Sendable, Hashable {
    public var id: NodeID
    public var name: String
    public var address: GossipAddress
    public var incarnation: UInt64
    public var status: MemberStatus
    public var metadata: NodeMetadata

    public init(id: NodeID, name: String, address: GossipAddress, incarnation: UInt64,
                status: MemberStatus, metadata: NodeMetadata) {
        self.id = id
        self.name = name
        self.address = address
        self.incarnation = incarnation
        self.status = status
        self.metadata = metadata
    }

    public init(_ m: Member) {
        self.init(id: m.id, name: m.name, address: m.address, incarnation: m.incarnation,
                  status: m.status, metadata: m.metadata)
    }
}

/// A push-pull state exchanged over TCP: the sender's whole view.
public struct PushPullState: Sendable, Hashable {
    public var sender: NodeID
    /// The sender is joining (its first contact with the cluster).
    public var join: Bool
    /// This frame answers a request.
    public var isResponse: Bool
    public var members: [MemberRecord]

    public init(sender: NodeID, join: Bool, isResponse: Bool, members: [MemberRecord]) {
        self.sender = sender
        self.join = join
        self.isResponse = isResponse
        self.members = members
    }
}

/// Encoder/decoder of the plaintext inside the envelope. Every decode is bounded by `Limits` and
/// throws `DecodeError` naming the field and the rule it broke; nothing here traps on input.
public enum SWIMCodec {
    /// Bytes before the message body: version (1) + cluster fingerprint (8) + sender (16) + type (1).
    public static let headerBytes = 26
    /// Bytes of the datagram header plus the largest fixed message body (ping-req with a
    /// maximum-length host) plus the update count varint: the budget the sender reserves.
    public static func messageBytes(_ m: SWIMMessage) -> Int {
        switch m {
        case .ping: return 4 + 16
        case .pingReq(_, _, let a): return 4 + 16 + uvarintSize(UInt64(a.host.utf8.count)) + a.host.utf8.count + 2
        case .ack, .nack: return 4
        case .gossip: return 0
        }
    }

    // MARK: Datagram

    public static func encode(_ p: SWIMPacket, cluster: ClusterID) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        out.append(WireVersion.current)
        out.appendBigEndian(cluster.fingerprint)
        appendID(&out, p.sender)
        out.append(p.message.typeByte)
        switch p.message {
        case .ping(let seq, let target):
            out.appendBigEndian(seq)
            appendID(&out, target)
        case .pingReq(let seq, let target, let address):
            out.appendBigEndian(seq)
            appendID(&out, target)
            appendAddress(&out, address)
        case .ack(let seq), .nack(let seq):
            out.appendBigEndian(seq)
        case .gossip:
            break
        }
        out.appendUVarint(UInt64(p.updates.count))
        for u in p.updates { appendUpdate(&out, u) }
        return out
    }

    /// Decoded header fields checked before the body, so a packet from another cluster or
    /// version is rejected without parsing further.
    public enum HeaderRejection: Error, Equatable, Sendable {
        case unsupportedVersion(UInt8)
        case wrongCluster(fingerprint: UInt64)
    }

    public enum PacketError: Error, Equatable, Sendable, CustomStringConvertible {
        case rejected(HeaderRejection)
        case decode(DecodeError)

        public var description: String {
            switch self {
            case .rejected(.unsupportedVersion(let v)): "unsupported protocol version \(v)"
            case .rejected(.wrongCluster(let f)): "cluster fingerprint \(f) is not ours"
            case .decode(let e): e.description
            }
        }
    }

    public static func decodePacket(_ bytes: [UInt8], cluster: ClusterID) throws(PacketError) -> SWIMPacket {
        var r = ByteReader(bytes)
        do {
            let version = try r.readByte("datagram version")
            guard (WireVersion.minProtocolVersion...WireVersion.maxProtocolVersion).contains(version) else {
                throw PacketError.rejected(.unsupportedVersion(version))
            }
            let fp = try r.readBigEndian(UInt64.self, "cluster fingerprint")
            guard fp == cluster.fingerprint else { throw PacketError.rejected(.wrongCluster(fingerprint: fp)) }
            let sender = try readID(&r, "sender id")
            let type = try r.readByte("message type")
            let message: SWIMMessage
            switch type {
            case 1:
                message = .ping(seq: try r.readBigEndian(UInt32.self, "ping seq"), target: try readID(&r, "ping target"))
            case 2:
                let seq = try r.readBigEndian(UInt32.self, "ping-req seq")
                let target = try readID(&r, "ping-req target")
                message = .pingReq(seq: seq, target: target, targetAddress: try readAddress(&r, "ping-req address"))
            case 3:
                message = .ack(seq: try r.readBigEndian(UInt32.self, "ack seq"))
            case 4:
                message = .nack(seq: try r.readBigEndian(UInt32.self, "nack seq"))
            case 5:
                message = .gossip
            default:
                throw DecodeError.malformed(context: "unknown message type \(type)")
            }
            let count = try r.readUVarint("update count")
            guard count <= UInt64(Limits.maxUpdatesPerDatagram) else {
                throw DecodeError.malformed(context: "update count \(count) exceeds limit \(Limits.maxUpdatesPerDatagram)")
            }
            var updates: [GossipUpdate] = []
            updates.reserveCapacity(Int(count))
            for i in 0..<Int(count) {
                if let u = try readUpdate(&r, index: i) { updates.append(u) }
            }
            guard r.isAtEnd else { throw DecodeError.malformed(context: "\(r.remaining) trailing bytes after updates") }
            return SWIMPacket(sender: sender, message: message, updates: updates)
        } catch let e as PacketError {
            throw e
        } catch let e as DecodeError {
            throw .decode(e)
        } catch {
            throw .decode(.malformed(context: "\(error)"))
        }
    }

    // MARK: Updates

    /// Encoded size of one update entry (type, length, body).
    public static func encodedSize(_ u: GossipUpdate) -> Int {
        let b = updateBodySize(u)
        return 1 + uvarintSize(UInt64(b)) + b
    }

    static func updateBodySize(_ u: GossipUpdate) -> Int {
        switch u {
        case .alive(let a):
            return 16 + uvarintSize(a.incarnation) + lpSize(a.name) + lpSize(a.address.host) + 2 + metadataSize(a.metadata)
        case .suspect(_, let inc, _), .dead(_, let inc, _):
            return 16 + uvarintSize(inc) + 16
        case .left(_, let inc):
            return 16 + uvarintSize(inc)
        }
    }

    static func appendUpdate(_ out: inout [UInt8], _ u: GossipUpdate) {
        out.append(u.typeByte)
        out.appendUVarint(UInt64(updateBodySize(u)))
        let start = out.count
        switch u {
        case .alive(let a):
            appendID(&out, a.id)
            out.appendUVarint(a.incarnation)
            out.appendLengthPrefixed(a.name)
            appendAddress(&out, a.address)
            appendMetadata(&out, a.metadata)
        case .suspect(let id, let inc, let from), .dead(let id, let inc, let from):
            appendID(&out, id)
            out.appendUVarint(inc)
            appendID(&out, from)
        case .left(let id, let inc):
            appendID(&out, id)
            out.appendUVarint(inc)
        }
        assert(out.count - start == updateBodySize(u), "update body size mismatch")
    }

    /// Reads one update entry. Unknown types are skipped (returns nil) so a newer peer's
    /// additions do not break older nodes; trailing bytes inside a known body are ignored for
    /// the same reason (fields are only ever appended).
    static func readUpdate(_ r: inout ByteReader, index: Int) throws(DecodeError) -> GossipUpdate? {
        let type = try r.readByte("update \(index) type")
        let body = try r.readLengthPrefixed(limit: 1_024, "update \(index) body")
        var b = ByteReader(Array(body))
        switch type {
        case 1:
            let id = try readID(&b, "alive id")
            let inc = try b.readUVarint("alive incarnation")
            let name = try readString(&b, limit: Limits.maxNameBytes, "alive name")
            let address = try readAddress(&b, "alive address")
            let meta = try readMetadata(&b)
            return .alive(AliveUpdate(id: id, incarnation: inc, name: name, address: address, metadata: meta))
        case 2, 3:
            let what = type == 2 ? "suspect" : "dead"
            let id = try readID(&b, "\(what) id")
            let inc = try b.readUVarint("\(what) incarnation")
            let from = try readID(&b, "\(what) from")
            return type == 2 ? .suspect(id: id, incarnation: inc, from: from) : .dead(id: id, incarnation: inc, from: from)
        case 4:
            let id = try readID(&b, "left id")
            return .left(id: id, incarnation: try b.readUVarint("left incarnation"))
        default:
            return nil
        }
    }

    // MARK: Push-pull state

    public static func encode(_ s: PushPullState, cluster: ClusterID) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + s.members.count * 96)
        out.append(WireVersion.current)
        out.appendBigEndian(cluster.fingerprint)
        appendID(&out, s.sender)
        out.append((s.join ? 1 : 0) | (s.isResponse ? 2 : 0))
        out.appendUVarint(UInt64(s.members.count))
        for m in s.members {
            var body: [UInt8] = []
            appendID(&body, m.id)
            body.append(m.status.rawValue)
            body.appendUVarint(m.incarnation)
            body.appendLengthPrefixed(m.name)
            appendAddress(&body, m.address)
            appendMetadata(&body, m.metadata)
            out.appendLengthPrefixed(body)
        }
        return out
    }

    public static func decodePushPull(_ bytes: [UInt8], cluster: ClusterID) throws(PacketError) -> PushPullState {
        guard bytes.count <= Limits.maxPushPullBytes else {
            throw .decode(.malformed(context: "push-pull state of \(bytes.count) bytes exceeds limit \(Limits.maxPushPullBytes)"))
        }
        var r = ByteReader(bytes)
        do {
            let version = try r.readByte("push-pull version")
            guard (WireVersion.minProtocolVersion...WireVersion.maxProtocolVersion).contains(version) else {
                throw PacketError.rejected(.unsupportedVersion(version))
            }
            let fp = try r.readBigEndian(UInt64.self, "cluster fingerprint")
            guard fp == cluster.fingerprint else { throw PacketError.rejected(.wrongCluster(fingerprint: fp)) }
            let sender = try readID(&r, "push-pull sender")
            let flags = try r.readByte("push-pull flags")
            let count = try r.readUVarint("member count")
            guard count <= UInt64(Limits.maxPushPullMembers) else {
                throw DecodeError.malformed(context: "member count \(count) exceeds limit \(Limits.maxPushPullMembers)")
            }
            var members: [MemberRecord] = []
            members.reserveCapacity(Int(count))
            for i in 0..<Int(count) {
                let body = try r.readLengthPrefixed(limit: 2_048, "member \(i)")
                var b = ByteReader(Array(body))
                let id = try readID(&b, "member \(i) id")
                let rawStatus = try b.readByte("member \(i) status")
                guard let status = MemberStatus(rawValue: rawStatus) else {
                    throw DecodeError.malformed(context: "member \(i) status \(rawStatus) unknown")
                }
                let inc = try b.readUVarint("member \(i) incarnation")
                let name = try readString(&b, limit: Limits.maxNameBytes, "member \(i) name")
                let address = try readAddress(&b, "member \(i) address")
                let meta = try readMetadata(&b)
                members.append(MemberRecord(id: id, name: name, address: address, incarnation: inc, status: status, metadata: meta))
            }
            guard r.isAtEnd else { throw DecodeError.malformed(context: "\(r.remaining) trailing bytes after members") }
            return PushPullState(sender: sender, join: flags & 1 != 0, isResponse: flags & 2 != 0, members: members)
        } catch let e as PacketError {
            throw e
        } catch let e as DecodeError {
            throw .decode(e)
        } catch {
            throw .decode(.malformed(context: "\(error)"))
        }
    }

    // MARK: Field helpers

    static func appendID(_ out: inout [UInt8], _ id: NodeID) {
        out.appendBigEndian(id.high)
        out.appendBigEndian(id.low)
    }

    static func readID(_ r: inout ByteReader, _ what: String) throws(DecodeError) -> NodeID {
        let h = try r.readBigEndian(UInt64.self, what)
        let l = try r.readBigEndian(UInt64.self, what)
        return NodeID(high: h, low: l)
    }

    static func appendAddress(_ out: inout [UInt8], _ a: GossipAddress) {
        out.appendLengthPrefixed(a.host)
        out.appendBigEndian(a.port)
    }

    static func readAddress(_ r: inout ByteReader, _ what: String) throws(DecodeError) -> GossipAddress {
        let host = try readString(&r, limit: Limits.maxHostBytes, "\(what) host")
        guard !host.isEmpty else { throw .malformed(context: "\(what): empty host") }
        let port = try r.readBigEndian(UInt16.self, "\(what) port")
        guard port != 0 else { throw .malformed(context: "\(what): port 0") }
        return GossipAddress(host: host, port: port)
    }

    static func appendMetadata(_ out: inout [UInt8], _ m: NodeMetadata) {
        out.appendLengthPrefixed(m.httpAddress)
        out.appendLengthPrefixed(m.peerAddress)
        out.appendLengthPrefixed(m.zone)
        out.append(m.state.rawValue)
        out.appendLengthPrefixed(m.version)
    }

    static func metadataSize(_ m: NodeMetadata) -> Int {
        lpSize(m.httpAddress) + lpSize(m.peerAddress) + lpSize(m.zone) + 1 + lpSize(m.version)
    }

    static func readMetadata(_ r: inout ByteReader) throws(DecodeError) -> NodeMetadata {
        let limit = Limits.maxMetadataStringBytes
        let http = try readString(&r, limit: limit, "metadata http address")
        let peer = try readString(&r, limit: limit, "metadata peer address")
        let zone = try readString(&r, limit: limit, "metadata zone")
        let rawState = try r.readByte("metadata state")
        guard let state = NodeState(rawValue: rawState) else { throw .malformed(context: "metadata state \(rawState) unknown") }
        let version = try readString(&r, limit: limit, "metadata version")
        return NodeMetadata(httpAddress: http, peerAddress: peer, zone: zone, state: state, version: version)
    }

    /// A length-prefixed string that must be valid UTF-8 (peers must not smuggle bytes that
    /// later break logs or JSON).
    static func readString(_ r: inout ByteReader, limit: Int, _ what: String) throws(DecodeError) -> String {
        let bytes = try r.readLengthPrefixed(limit: limit, what)
        guard let s = String(validating: bytes, as: UTF8.self) else { throw .malformed(context: "\(what): invalid UTF-8") }
        return s
    }

    static func lpSize(_ s: String) -> Int {
        let n = s.utf8.count
        return uvarintSize(UInt64(n)) + n
    }

    static func uvarintSize(_ v: UInt64) -> Int {
        var n = 1
        var x = v
        while x >= 0x80 { x >>= 7; n += 1 }
        return n
    }
}
