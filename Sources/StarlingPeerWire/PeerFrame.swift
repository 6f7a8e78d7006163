import StarlingCore

/// Peer-RPC frames: the unit of every node-to-node request, response and stream on the
/// persistent TCP connections between peers. Layout (docs/formats/peer.md, byte by byte):
///
/// ```
/// offset size  field
/// 0      2     magic "SP" (0x53 0x50)
/// 2      1     protocol version (1)
/// 3      1     message type (PeerMessageType, append only)
/// 4      1     flags (PeerFrameFlags; unknown bits are an error)
/// 5      8     request ID, big-endian (0 = one-way, no response expected)
/// 13     8     sender's placement version, big-endian
/// 21     4     timeout in ms, big-endian (requests: how long the sender will wait; 0 = none)
/// 25     4     body length, big-endian
/// 29     …     body: the payload, or nonce ‖ ciphertext ‖ tag when sealed
/// ```
///
/// The header is never encrypted (the receiver needs the length to frame) but it is the
/// additional authenticated data of the seal, so no header bit can be changed in flight.
public enum PeerWire {
    public static let magic: (UInt8, UInt8) = (0x53, 0x50)
    /// The version this code writes.
    public static let version: UInt8 = 1
    /// The versions this code reads. A frame outside is rejected with `unsupportedVersion`
    /// naming both, so a mixed-version cluster reports the problem instead of misparsing.
    public static let supportedVersions: ClosedRange<UInt8> = 1...1
    public static let headerBytes = 29
    public static let nonceBytes = 12
    public static let tagBytes = 16
    /// What sealing adds to a body.
    public static let sealOverheadBytes = nonceBytes + tagBytes
}

/// Message types. **Append only**: never renumber or reuse a value; a new message gets the next
/// number. Older peers fail a frame of a type they do not know (`unknownType`), so a new type is
/// only sent to peers whose announced version has it.
public enum PeerMessageType: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Liveness and round-trip probe; answered with `ping` (response flag) echoing the body.
    case ping = 1
    /// A request failed; the response to any request type.
    case error = 2
    /// Append a batch of samples to shards the receiver replicates (coordinator → replica).
    case write = 3
    /// Per-shard outcome of a `write` or `hintDelivery`.
    case writeAck = 4
    /// A write stored by the coordinator for a replica that did not answer, replayed later.
    case hintDelivery = 5
    /// Select series and their chunks in a time range from a set of shards (query fan-out).
    case select = 6
    /// One part of a streamed answer: series with their chunks (`select`, `fetchShard`).
    case seriesFrame = 7
    /// The end of a stream, with warnings; carries the end-of-stream flag.
    case streamEnd = 8
    /// Ask for per-block digests of shards (anti-entropy, bootstrap check).
    case blockDigests = 9
    /// The answer to `blockDigests`.
    case blockDigestsReply = 10
    /// Ask for per-series digests of one shard block (to find what differs).
    case seriesDigests = 11
    /// The answer to `seriesDigests`.
    case seriesDigestsReply = 12
    /// Stream a shard's data (bootstrap, repair): answered with `seriesFrame`s and `streamEnd`.
    case fetchShard = 13
    /// The shards the sender holds complete; as a request it is answered with the responder's
    /// own `shardState` (an exchange: both sides learn the other's report).
    case shardState = 14
    /// Series label sets, label names or one label's values matching matcher sets in a time
    /// range (the `/api/v1/series`, `/labels`, `/label/…/values` fan-out).
    case labelQuery = 15
    /// The answer to `labelQuery`.
    case labelQueryReply = 16
    /// Chunks of one shard handed to an owner (a former owner releasing the shard): appended
    /// like a repair, duplicates dropped; answered with `writeAck`.
    case pushChunks = 17
    /// Ask a node for the rule groups it evaluates (`GET /api/v1/rules` and `/api/v1/alerts` on
    /// any node); answered with `ruleGroupsReply`.
    case ruleGroups = 18
    /// The answer to `ruleGroups`: the groups' state as JSON.
    case ruleGroupsReply = 19
    /// Alerts for the node that runs the alertmanager (from rule evaluation or the API on
    /// another node); answered with `postAlertsReply`.
    case postAlerts = 20
    /// The answer to `postAlerts`.
    case postAlertsReply = 21
    /// An Alertmanager API operation (list alerts, silences) for the node that runs the
    /// alertmanager, as JSON; answered with `alertmanagerOpReply`.
    case alertmanagerOp = 22
    /// The answer to `alertmanagerOp`: `{"status": HTTP status, "body": …}`.
    case alertmanagerOpReply = 23
    /// A change to the rule catalog for its coordinator, or a catalog sync between two nodes,
    /// as JSON; answered with `rulesOpReply`.
    case rulesOp = 24
    /// The answer to `rulesOp`.
    case rulesOpReply = 25

    public var description: String {
        switch self {
        case .ping: "ping"
        case .error: "error"
        case .write: "write"
        case .writeAck: "write_ack"
        case .hintDelivery: "hint_delivery"
        case .select: "select"
        case .seriesFrame: "series_frame"
        case .streamEnd: "stream_end"
        case .blockDigests: "block_digests"
        case .blockDigestsReply: "block_digests_reply"
        case .seriesDigests: "series_digests"
        case .seriesDigestsReply: "series_digests_reply"
        case .fetchShard: "fetch_shard"
        case .shardState: "shard_state"
        case .labelQuery: "label_query"
        case .labelQueryReply: "label_query_reply"
        case .pushChunks: "push_chunks"
        case .ruleGroups: "rule_groups"
        case .ruleGroupsReply: "rule_groups_reply"
        case .postAlerts: "post_alerts"
        case .postAlertsReply: "post_alerts_reply"
        case .alertmanagerOp: "alertmanager_op"
        case .alertmanagerOpReply: "alertmanager_op_reply"
        case .rulesOp: "rules_op"
        case .rulesOpReply: "rules_op_reply"
        }
    }
}

/// Frame flags. Bits not listed here must be zero: a frame with an unknown bit is rejected,
/// because its meaning (a new encoding of the body) cannot be ignored safely.
public struct PeerFrameFlags: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The payload is `uvarint decodedSize ‖ LZ4 block` (compressed before sealing).
    public static let lz4 = PeerFrameFlags(rawValue: 0x01)
    /// The last frame of a response stream for this request ID.
    public static let endOfStream = PeerFrameFlags(rawValue: 0x02)
    /// The body is `nonce ‖ AES-GCM ciphertext ‖ tag`, additional data = the 29 header bytes.
    public static let sealed = PeerFrameFlags(rawValue: 0x04)
    /// The frame answers the sender's peer's request with this ID (each side numbers its own
    /// requests; this bit keeps the two ID spaces apart on one connection).
    public static let response = PeerFrameFlags(rawValue: 0x08)

    public static let known: PeerFrameFlags = [.lz4, .endOfStream, .sealed, .response]

    public var description: String {
        var parts: [String] = []
        if contains(.lz4) { parts.append("lz4") }
        if contains(.endOfStream) { parts.append("end") }
        if contains(.sealed) { parts.append("sealed") }
        if contains(.response) { parts.append("response") }
        return "[" + parts.joined(separator: ",") + "]"
    }
}

/// A frame with its payload in the clear (decompressed, opened).
public struct PeerFrame: Sendable, Equatable, CustomStringConvertible {
    public var type: PeerMessageType
    /// `response` and `endOfStream` only: `lz4` and `sealed` describe the encoding on the wire
    /// and are chosen by the encoder.
    public var flags: PeerFrameFlags
    public var requestID: UInt64
    public var placementVersion: UInt64
    /// Requests: how long the sender waits for the answer, in ms (0 = no deadline). Relative,
    /// because peers' clocks differ; the receiver drops work whose deadline has passed.
    public var timeoutMs: UInt32
    public var payload: [UInt8]

    public init(type: PeerMessageType, flags: PeerFrameFlags = [], requestID: UInt64, placementVersion: UInt64,
                timeoutMs: UInt32 = 0, payload: [UInt8]) {
        self.type = type
        self.flags = flags
        self.requestID = requestID
        self.placementVersion = placementVersion
        self.timeoutMs = timeoutMs
        self.payload = payload
    }

    public var isResponse: Bool { flags.contains(.response) }

    public var description: String {
        "\(type)\(flags) id=\(requestID) placement=\(String(placementVersion, radix: 16)) \(payload.count)B"
    }
}

/// Limits applied while decoding untrusted frames. Every one is checked before the memory it
/// guards is allocated; hitting one is a `PeerWireError` naming the limit (the shell counts it
/// in `starling_peer_frames_rejected_total{reason}` and closes the connection).
public struct PeerWireLimits: Sendable, Hashable {
    /// Largest body accepted, in bytes, checked from the header before any body byte is
    /// buffered. Default 33_554_432 (32 MiB): a shard-stream frame is cut at `targetFrameBytes`
    /// by the sender, so only a broken or hostile peer comes near it. Larger allows bigger write
    /// batches per frame at the cost of per-connection buffer memory.
    public var maxBodyBytes: Int
    /// Largest payload after LZ4 decompression, in bytes. Default 67_108_864 (64 MiB): LZ4
    /// expands at most ~255×, so without this bound a 32 MiB body could ask for 8 GiB.
    public var maxDecodedPayloadBytes: Int
    /// Largest encoded label set in a message, in bytes. Default 65_536, far above the ingest
    /// limits (which reject such series before they are ever stored).
    public var maxLabelsBytes: Int
    /// Largest single chunk in a `seriesFrame`, in bytes. Default 1_048_576; the chunk codec's
    /// own limit is lower, this only keeps a corrupt length from allocating.
    public var maxChunkBytes: Int
    /// Largest string (error messages, warnings, label matcher values, node IDs), in bytes.
    /// Default 65_536.
    public var maxStringBytes: Int

    public static let `default` = PeerWireLimits(
        maxBodyBytes: 32 << 20, maxDecodedPayloadBytes: 64 << 20, maxLabelsBytes: 1 << 16,
        maxChunkBytes: 1 << 20, maxStringBytes: 1 << 16)

    public init(maxBodyBytes: Int, maxDecodedPayloadBytes: Int, maxLabelsBytes: Int, maxChunkBytes: Int,
                maxStringBytes: Int) {
        precondition(maxBodyBytes >= PeerWire.sealOverheadBytes && maxBodyBytes <= Int(UInt32.max),
                     "maxBodyBytes \(maxBodyBytes) outside \(PeerWire.sealOverheadBytes)...\(UInt32.max)")
        self.maxBodyBytes = maxBodyBytes
        self.maxDecodedPayloadBytes = maxDecodedPayloadBytes
        self.maxLabelsBytes = maxLabelsBytes
        self.maxChunkBytes = maxChunkBytes
        self.maxStringBytes = maxStringBytes
    }
}

/// Why a frame or message was rejected. Frame-level errors (everything but `payload`) leave the
/// byte stream unsynchronised: the connection must be closed. `payload` errors concern one
/// message whose frame was intact: the receiver answers that request with `error(malformed)`
/// and keeps the connection.
public enum PeerWireError: Error, Equatable, Sendable, CustomStringConvertible {
    case badMagic(UInt8, UInt8)
    case unsupportedVersion(UInt8, supported: ClosedRange<UInt8>)
    case unknownType(UInt8)
    case unknownFlags(UInt8)
    case bodyTooLarge(Int, limit: Int)
    /// The peer sent plaintext but this node has keys: refused, like gossip.
    case plaintextRefused
    /// The peer sealed the frame but this node has no keys.
    case sealedWithoutKeys
    /// A sealed body shorter than nonce + tag.
    case sealedBodyTooShort(Int)
    /// No key of the keyring authenticates the frame (wrong key, or bytes changed in flight).
    case authenticationFailed
    /// The LZ4 size prefix or block is broken.
    case decompression(String)
    case decodedPayloadTooLarge(Int, limit: Int)
    /// The frame was intact but its payload does not decode as its type.
    case payload(type: PeerMessageType, DecodeError)
    /// The payload decoded but bytes were left over.
    case trailingBytes(type: PeerMessageType, count: Int)
    /// A message limit (`limit` names the `PeerWireLimits` field) was exceeded.
    case limitExceeded(type: PeerMessageType, field: String, value: Int, limit: Int)

    /// The message type of a payload-level error (the frame was intact: answer the request
    /// with `error(malformed)` and keep the connection); nil for frame-level errors (close it).
    public var messageType: PeerMessageType? {
        switch self {
        case let .payload(type, _): type
        case let .trailingBytes(type, _): type
        case let .limitExceeded(type, _, _, _): type
        default: nil
        }
    }

    /// Short reason for metrics labels.
    public var reason: String {
        switch self {
        case .badMagic: "bad_magic"
        case .unsupportedVersion: "version"
        case .unknownType: "unknown_type"
        case .unknownFlags: "unknown_flags"
        case .bodyTooLarge: "body_too_large"
        case .plaintextRefused, .sealedWithoutKeys, .sealedBodyTooShort, .authenticationFailed: "authentication"
        case .decompression: "decompression"
        case .decodedPayloadTooLarge: "decoded_too_large"
        case .payload, .trailingBytes: "malformed"
        case .limitExceeded: "limit"
        }
    }

    public var description: String {
        switch self {
        case let .badMagic(a, b):
            "peer frame: bad magic 0x\(hex(a))\(hex(b)) at offset 0, expected 0x5350 (\"SP\")"
        case let .unsupportedVersion(v, range):
            "peer frame: protocol version \(v) at offset 2, this node reads \(range.lowerBound)...\(range.upperBound)"
        case let .unknownType(t):
            "peer frame: unknown message type \(t) at offset 3 (version 1 knows 1...\(PeerMessageType.allCases.count))"
        case let .unknownFlags(f):
            "peer frame: unknown flag bits 0x\(hex(f & ~PeerFrameFlags.known.rawValue)) at offset 4"
        case let .bodyTooLarge(n, limit):
            "peer frame: body length \(n) at offset 25 exceeds max_body_bytes \(limit)"
        case .plaintextRefused: "peer frame: plaintext refused, peer encryption is enabled on this node"
        case .sealedWithoutKeys: "peer frame: sealed, but this node has no cluster keys"
        case let .sealedBodyTooShort(n):
            "peer frame: sealed body of \(n) bytes is shorter than nonce and tag (\(PeerWire.sealOverheadBytes))"
        case .authenticationFailed: "peer frame: no key in the keyring authenticates the frame"
        case let .decompression(detail): "peer frame: LZ4 payload: \(detail)"
        case let .decodedPayloadTooLarge(n, limit):
            "peer frame: LZ4 payload declares \(n) bytes, above max_decoded_payload_bytes \(limit)"
        case let .payload(type, e): "peer \(type) payload: \(e)"
        case let .trailingBytes(type, n): "peer \(type) payload: \(n) trailing bytes after the message"
        case let .limitExceeded(type, field, value, limit):
            "peer \(type) payload: \(field) \(value) exceeds \(limit)"
        }
    }
}

@inline(__always)
func hex(_ b: UInt8) -> String {
    let s = String(b, radix: 16)
    return b < 16 ? "0" + s : s
}
