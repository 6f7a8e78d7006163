import StarlingCore
import StarlingPlacement

/// A peer-RPC message: the payload of one frame type. Encodings are in docs/formats/peer.md.
///
/// Decoding is strict: every count is checked against the bytes that remain before anything is
/// allocated for it, every length against a `PeerWireLimits` field, label sets must be
/// canonical, strings valid UTF-8, and no byte may be left over.
public protocol PeerMessage: Sendable {
    static var type: PeerMessageType { get }
    func encode(into out: inout [UInt8])
    init(from reader: inout PayloadReader) throws(PeerWireError)
}

extension PeerMessage {
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }

    public static func decode(_ payload: [UInt8], limits: PeerWireLimits = .default) throws(PeerWireError) -> Self {
        var reader = PayloadReader(payload, type: type, limits: limits)
        let message = try Self(from: &reader)
        guard reader.isAtEnd else { throw .trailingBytes(type: type, count: reader.remaining) }
        return message
    }

    /// The frame carrying this message.
    public func frame(requestID: UInt64, placementVersion: UInt64, flags: PeerFrameFlags = [], timeoutMs: UInt32 = 0) -> PeerFrame {
        PeerFrame(type: Self.type, flags: flags, requestID: requestID, placementVersion: placementVersion,
                  timeoutMs: timeoutMs, payload: encoded())
    }
}

/// Bounds-checked reading of one message's payload; every failure names the message type, the
/// field and, through `DecodeError`, the rule.
public struct PayloadReader {
    private var r: ByteReader
    public let type: PeerMessageType
    public let limits: PeerWireLimits

    init(_ bytes: [UInt8], type: PeerMessageType, limits: PeerWireLimits) {
        r = ByteReader(bytes)
        self.type = type
        self.limits = limits
    }

    public var isAtEnd: Bool { r.isAtEnd }
    public var remaining: Int { r.remaining }
    public var offset: Int { r.offset }

    private func wrap(_ e: DecodeError) -> PeerWireError { .payload(type: type, e) }

    public func malformed(_ what: String) -> PeerWireError {
        .payload(type: type, .malformed(context: "\(what) (payload offset \(r.offset))"))
    }

    public mutating func u8(_ field: String) throws(PeerWireError) -> UInt8 {
        do { return try r.readByte(field) } catch { throw wrap(error) }
    }

    public mutating func u16(_ field: String) throws(PeerWireError) -> UInt16 {
        do { return try r.readBigEndian(UInt16.self, field) } catch { throw wrap(error) }
    }

    public mutating func u64(_ field: String) throws(PeerWireError) -> UInt64 {
        do { return try r.readBigEndian(UInt64.self, field) } catch { throw wrap(error) }
    }

    public mutating func uvarint(_ field: String) throws(PeerWireError) -> UInt64 {
        do { return try r.readUVarint(field) } catch { throw wrap(error) }
    }

    public mutating func varint(_ field: String) throws(PeerWireError) -> Int64 {
        do { return try r.readVarint(field) } catch { throw wrap(error) }
    }

    /// A uvarint count of items each at least `minItemBytes` long: a count that cannot fit in
    /// the remaining bytes is rejected before anything is reserved for it.
    public mutating func count(_ field: String, minItemBytes: Int) throws(PeerWireError) -> Int {
        let at = r.offset
        let n = try uvarint(field)
        guard n <= UInt64(r.remaining / max(minItemBytes, 1)) else {
            throw .payload(type: type, .malformed(context:
                "\(field) \(n) at payload offset \(at) cannot fit in the \(r.remaining) bytes left"))
        }
        return Int(n)
    }

    public mutating func bytes(_ field: String, limit: Int, limitName: String) throws(PeerWireError) -> ArraySlice<UInt8> {
        let n = try uvarint("\(field) length")
        guard n <= UInt64(limit) else {
            throw .limitExceeded(type: type, field: "\(field) length (\(limitName))", value: n > UInt64(Int.max) ? Int.max : Int(n), limit: limit)
        }
        do { return try r.readBytes(Int(n), field) } catch { throw wrap(error) }
    }

    public mutating func string(_ field: String) throws(PeerWireError) -> String {
        let at = r.offset
        let raw = try bytes(field, limit: limits.maxStringBytes, limitName: "max_string_bytes")
        guard let s = String(validating: raw, as: UTF8.self) else {
            throw .payload(type: type, .malformed(context: "\(field) at payload offset \(at) is not valid UTF-8"))
        }
        return s
    }

    public mutating func labels(_ field: String) throws(PeerWireError) -> Labels {
        let at = r.offset
        let raw = try bytes(field, limit: limits.maxLabelsBytes, limitName: "max_labels_bytes")
        do {
            return try Labels.validatingCanonicalBytes(Array(raw))
        } catch {
            throw .payload(type: type, .malformed(context: "\(field) at payload offset \(at): \(error)"))
        }
    }

    public mutating func shard(_ field: String) throws(PeerWireError) -> ShardID {
        ShardID(rawValue: try u16(field))
    }

    /// `uvarint n ‖ n bitmap bytes`, bit i of byte j = shard 8j + i; n ≤ 8192 (65,536 shards).
    public mutating func shardSet(_ field: String) throws(PeerWireError) -> ShardSet {
        let raw = try bytes(field, limit: 8192, limitName: "65,536 shards")
        var set = ShardSet()
        for (j, byte) in raw.enumerated() where byte != 0 {
            for i in 0..<8 where byte & (1 << i) != 0 { set.insert(ShardID(rawValue: UInt16(j * 8 + i))) }
        }
        return set
    }
}

extension PayloadReader {
    /// `uvarint matcher_count ‖ (u8 kind ‖ string name ‖ string value)*`; kinds 1 `=`, 2 `!=`,
    /// 3 `=~`, 4 `!~`. Regular expressions are compiled here, so a bad one is a decode error.
    mutating func matchers() throws(PeerWireError) -> [LabelMatcher] {
        let n = try count("matcher_count", minItemBytes: 3)
        var matchers: [LabelMatcher] = []
        matchers.reserveCapacity(n)
        for i in 0..<n {
            let k = try u8("matcher kind")
            guard let kind = LabelMatcher.Kind(wireValue: k) else { throw malformed("matcher \(i): unknown kind \(k)") }
            let name = try string("matcher name")
            let value = try string("matcher value")
            do {
                matchers.append(try LabelMatcher(kind, name, value))
            } catch {
                throw malformed("matcher \(i): \(error)")
            }
        }
        return matchers
    }
}

extension Array where Element == UInt8 {
    mutating func appendMatchers(_ matchers: [LabelMatcher]) {
        appendUVarint(UInt64(matchers.count))
        for m in matchers {
            append(m.kind.wireValue)
            appendString(m.name)
            appendString(m.value)
        }
    }

    mutating func appendShardSet(_ set: ShardSet) {
        var bitmap: [UInt8] = []
        for s in set {
            let j = Int(s.rawValue) >> 3
            if j >= bitmap.count { bitmap.append(contentsOf: repeatElement(0, count: j + 1 - bitmap.count)) }
            bitmap[j] |= 1 << (s.rawValue & 7)
        }
        appendLengthPrefixed(bitmap)
    }

    mutating func appendString(_ s: String) { appendLengthPrefixed(s.utf8) }
}

// MARK: - Ping, error

/// `varint sentAtMs`: the sender's clock, echoed in the response (round-trip time; clocks are
/// not compared).
public struct PingMessage: PeerMessage, Equatable {
    public static let type = PeerMessageType.ping
    public var sentAtMs: Int64

    public init(sentAtMs: Int64) { self.sentAtMs = sentAtMs }

    public func encode(into out: inout [UInt8]) { out.appendVarint(sentAtMs) }

    public init(from r: inout PayloadReader) throws(PeerWireError) {
        sentAtMs = try r.varint("sent_at_ms")
    }
}

/// Error codes, **append only**. Unknown codes from newer peers decode as themselves and are
/// treated as `internal`.
public struct PeerErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// A bug or unexpected failure on the responder.
    public static let `internal` = PeerErrorCode(rawValue: 1)
    /// The request's payload did not decode (`PeerWireError.payload`, `trailingBytes`, `limitExceeded`).
    public static let malformed = PeerErrorCode(rawValue: 2)
    /// The responder knows the message type but does not serve it as a request (a response
    /// type sent as a request, or a request its role cannot answer). Unknown types fail the
    /// frame instead.
    public static let unsupported = PeerErrorCode(rawValue: 3)
    /// Too many requests in flight on this connection; retry after backoff or elsewhere.
    public static let overloaded = PeerErrorCode(rawValue: 4)
    /// The request's timeout passed before the responder got to it.
    public static let deadlineExceeded = PeerErrorCode(rawValue: 5)
    /// The responder's placement version differs and it is not a replica of a requested shard.
    public static let placementMismatch = PeerErrorCode(rawValue: 6)
    /// A bootstrap source was asked for a shard it does not hold complete.
    public static let shardNotComplete = PeerErrorCode(rawValue: 7)
    /// The store failed (disk full, I/O error).
    public static let storage = PeerErrorCode(rawValue: 8)

    public var description: String {
        switch rawValue {
        case 1: "internal"
        case 2: "malformed"
        case 3: "unsupported"
        case 4: "overloaded"
        case 5: "deadline_exceeded"
        case 6: "placement_mismatch"
        case 7: "shard_not_complete"
        case 8: "storage"
        default: "code_\(rawValue)"
        }
    }
}

/// `u16 code ‖ string message`.
public struct ErrorMessage: PeerMessage, Equatable {
    public static let type = PeerMessageType.error
    public var code: PeerErrorCode
    public var message: String

    public init(code: PeerErrorCode, message: String) {
        self.code = code
        self.message = message
    }

    public func encode(into out: inout [UInt8]) {
        out.appendBigEndian(code.rawValue)
        out.appendString(message)
    }

    public init(from r: inout PayloadReader) throws(PeerWireError) {
        code = PeerErrorCode(rawValue: try r.u16("code"))
        message = try r.string("message")
    }
}

// MARK: - Writes

/// The samples of one shard in a write.
public struct ShardWrite: Sendable {
    public var shard: ShardID
    public var series: [SeriesSamples]

    public init(shard: ShardID, series: [SeriesSamples]) {
        self.shard = shard
        self.series = series
    }
}

/// An append batch from a coordinator to one replica: every shard of the batch that replica
/// holds, in one message.
///
/// ```
/// uvarint shard_count
///   u16 shard ‖ uvarint series_count
///     labels (uvarint length ‖ canonical label bytes) ‖ uvarint sample_count
///       varint (timestamp − previous timestamp of this series; the first against 0) ‖ u64 value bits
/// ```
/// Values travel as their IEEE-754 bit pattern, so NaN payloads and stale markers survive.
public struct WriteMessage: PeerMessage {
    public static let type = PeerMessageType.write
    public var shards: [ShardWrite]

    public init(shards: [ShardWrite]) { self.shards = shards }

    public var sampleCount: Int { shards.reduce(0) { $0 + $1.series.reduce(0) { $0 + $1.sampleCount } } }

    public func encode(into out: inout [UInt8]) {
        out.appendUVarint(UInt64(shards.count))
        for group in shards {
            out.appendBigEndian(group.shard.rawValue)
            out.appendUVarint(UInt64(group.series.count))
            for series in group.series {
                out.appendLengthPrefixed(series.labels.bytes)
                series.withSamples { samples in
                    out.appendUVarint(UInt64(samples.count))
                    var previous: Int64 = 0
                    for sample in samples {
                        out.appendVarint(sample.timestampMs &- previous)
                        out.appendBigEndian(sample.value.bitPattern)
                        previous = sample.timestampMs
                    }
                }
            }
        }
    }

    public init(from r: inout PayloadReader) throws(PeerWireError) {
        // Smallest encodings: a shard group 3 bytes, a series 2 (empty labels are rejected
        // later), a sample 9.
        let groupCount = try r.count("shard_count", minItemBytes: 3)
        var shards: [ShardWrite] = []
        shards.reserveCapacity(groupCount)
        for _ in 0..<groupCount {
            let shard = try r.shard("shard")
            let seriesCount = try r.count("series_count", minItemBytes: 2)
            var series: [SeriesSamples] = []
            series.reserveCapacity(seriesCount)
            for _ in 0..<seriesCount {
                let labels = try r.labels("labels")
                if labels.isEmpty { throw r.malformed("series with an empty label set in shard \(shard)") }
                let n = try r.count("sample_count", minItemBytes: 9)
                if n == 1 {
                    // The common case, kept inline (see `SeriesSamples`).
                    let ts = try r.varint("timestamp delta")
                    let bits = try r.u64("value")
                    series.append(SeriesSamples(labels: labels, sample: Sample(ts, Double(bitPattern: bits))))
                    continue
                }
                var samples: [Sample] = []
                samples.reserveCapacity(n)
                var previous: Int64 = 0
                for _ in 0..<n {
                    let delta = try r.varint("timestamp delta")
                    let bits = try r.u64("value")
                    let ts = previous &+ delta
                    samples.append(Sample(ts, Double(bitPattern: bits)))
                    previous = ts
                }
                series.append(SeriesSamples(labels: labels, samples: samples))
            }
            shards.append(ShardWrite(shard: shard, series: series))
        }
        self.shards = shards
    }
}

/// A write the coordinator kept for a replica that did not answer, replayed when it is back.
///
/// `string origin_node ‖ uvarint sequence ‖ varint stored_at_ms ‖ write body`. The receiver
/// applies it like a write (duplicates are dropped by the store) and acknowledges with
/// `writeAck`; `(origin, sequence)` lets the coordinator delete exactly what was acknowledged.
public struct HintDeliveryMessage: PeerMessage {
    public static let type = PeerMessageType.hintDelivery
    public var originNodeID: String
    public var sequence: UInt64
    public var storedAtMs: Int64
    public var write: WriteMessage

    public init(originNodeID: String, sequence: UInt64, storedAtMs: Int64, write: WriteMessage) {
        self.originNodeID = originNodeID
        self.sequence = sequence
        self.storedAtMs = storedAtMs
        self.write = write
    }

    public func encode(into out: inout [UInt8]) {
        out.appendString(originNodeID)
        out.appendUVarint(sequence)
        out.appendVarint(storedAtMs)
        write.encode(into: &out)
    }

    public init(from r: inout PayloadReader) throws(PeerWireError) {
        originNodeID = try r.string("origin_node")
        sequence = try r.uvarint("sequence")
        storedAtMs = try r.varint("stored_at_ms")
        write = try WriteMessage(from: &r)
    }
}

/// Outcome of one shard of a write, **append only**.
public struct WriteStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Durable on the replica (in its write-ahead path).
    public static let ok = WriteStatus(rawValue: 0)
    /// The replica is not in the write set of this shard by its own placement.
    public static let notReplica = WriteStatus(rawValue: 1)
    /// Rejected for backpressure; the coordinator keeps a hint.
    public static let overloaded = WriteStatus(rawValue: 2)
    /// The store failed.
    public static let storageError = WriteStatus(rawValue: 3)

    public var description: String {
        switch rawValue {
        case 0: "ok"
        case 1: "not_replica"
        case 2: "overloaded"
        case 3: "storage_error"
        default: "status_\(rawValue)"
        }
    }
}

public struct ShardWriteResult: Hashable, Sendable {
    public var shard: ShardID
    public var status: WriteStatus
    /// Samples appended (new).
    public var appended: UInt64
    /// Samples dropped as duplicates or rejected (out of bounds); not an error for the write.
    public var dropped: UInt64

    public init(shard: ShardID, status: WriteStatus, appended: UInt64, dropped: UInt64) {
        self.shard = shard
        self.status = status
        self.appended = appended
        self.dropped = dropped
    }
}

/// `uvarint count ‖ (u16 shard ‖ u8 status ‖ uvarint appended ‖ uvarint dropped)*`.
public struct WriteAckMessage: PeerMessage, Equatable {
    public static let type = PeerMessageType.writeAck
    public var results: [ShardWriteResult]

    public init(results: [ShardWriteResult]) { self.results = results }

    public func encode(into out: inout [UInt8]) {
        out.appendUVarint(UInt64(results.count))
        for x in results {
            out.appendBigEndian(x.shard.rawValue)
            out.append(x.status.rawValue)
            out.appendUVarint(x.appended)
            out.appendUVarint(x.dropped)
        }
    }

    public init(from r: inout PayloadReader) throws(PeerWireError) {
        let n = try r.count("result_count", minItemBytes: 5)
        var results: [ShardWriteResult] = []
        results.reserveCapacity(n)
        for _ in 0..<n {
            results.append(ShardWriteResult(
                shard: try r.shard("shard"), status: WriteStatus(rawValue: try r.u8("status")),
                appended: try r.uvarint("appended"), dropped: try r.uvarint("dropped")))
        }
        self.results = results
    }
}

// MARK: - Queries and streams

extension LabelMatcher.Kind {
    /// Wire numbers, **append only**.
    var wireValue: UInt8 {
        switch self {
        case .equal: 1
        case .notEqual: 2
        case .regexMatch: 3
        case .regexNoMatch: 4
        }
    }

    init?(wireValue: UInt8) {
        switch wireValue {
        case 1: self = .equal
        case 2: self = .notEqual
        case 3: self = .regexMatch
        case 4: self = .regexNoMatch
        default: return nil
        }
    }
}

/// Series matching every matcher with samples in `[start_ms, end_ms]`, from `shards` only,
/// answered with `seriesFrame`s (sorted by label set) and a `streamEnd`.
///
/// `varint start_ms ‖ varint end_ms ‖ shard set ‖ uvarint limit (0 = none) ‖ uvarint
/// matcher_count ‖ (u8 kind ‖ string name ‖ string value)*`; kinds 1 `=`, 2 `!=`, 3 `=~`, 4 `!~`.
public struct SelectMessage: PeerMessage, Equatable {
    public static let type = PeerMessageType.select
    public var startMs: Int64
    public var endMs: Int64
    public var shards: ShardSet
    /// At most this many series; 0 means no limit.
    public var limit: UInt64
    public var matchers: [LabelMatcher]

    public init(startMs: Int64, endMs: Int64, shards: ShardSet, limit: UInt64 = 0, matchers: [LabelMatcher]) {
        self.startMs = startMs
        self.endMs = endMs
        self.shards = shards
        self.limit = limit
        self.matchers = matchers
    }

    public func encode(into out: inout [UInt8]) {
        out.appendVarint(startMs)
        out.appendVarint(endMs)
        out.appendShardSet(shards)
        out.appendUVarint(limit)
        out.appendMatchers(matchers)
    }

    public init(from r: inout PayloadReader) throws(PeerWireError) {
        startMs = try r.varint("start_ms")
        endMs = try r.varint("end_ms")
        guard startMs <= endMs else { throw r.malformed("start_ms \(startMs) after end_ms \(endMs)") }
        shards = try r.shardSet("shards")
        limit = try r.uvarint("limit")
        matchers = try r.matchers()
    }
}

/// Part of a stream: series with their chunks.
///
/// `uvarint series_count ‖ (labels ‖ uvarint chunk_count ‖ (varint min_time_ms ‖ uvarint
/// (max_time_ms − min_time_ms) ‖ uvarint length ‖ chunk bytes)*)*`. Chunk bytes are the chunk
/// codec's format (docs/formats/chunk.md), passed through untouched.
public struct SeriesFrameMessage: PeerMessage {
    public static let type = PeerMessageType.seriesFrame
    public var series: [SeriesChunks]

    public init(series: [SeriesChunks]) { self.series = series }

    public func encode(into out: inout [UInt8]) {
        out.appendUVarint(UInt64(series.count))
        for s in series {
            out.appendLengthPrefixed(s.labels.bytes)
            out.appendUVarint(UInt64(s.chunks.count))
            for c in s.chunks {
                precondition(c.maxTimeMs >= c.minTimeMs, "chunk max time \(c.maxTimeMs) before min time \(c.minTimeMs)")
                out.appendVarint(c.minTimeMs)
                out.appendUVarint(UInt64(bitPattern: c.maxTimeMs &- c.minTimeMs))
                out.appendLengthPrefixed(c.bytes)
            }
        }
    }

    public init(from r: inout PayloadReader) throws(PeerWireError) {
        let n = try r.count("series_count", minItemBytes: 2)
        var series: [SeriesChunks] = []
        series.reserveCapacity(n)
        for _ in 0..<n {
            let labels = try r.labels("labels")
            if labels.isEmpty { throw r.malformed("series with an empty label set") }
            let k = try r.count("chunk_count", minItemBytes: 3)
            var chunks: [EncodedChunk] = []
            chunks.reserveCapacity(k)
            for _ in 0..<k {
                let minT = try r.varint("chunk min_time_ms")
                let span = try r.uvarint("chunk time span")
                let (maxT, overflow) = minT.addingReportingOverflow(Int64(bitPattern: span))
                guard span <= UInt64(Int64.max), !overflow else { throw r.malformed("chunk time span \(span) overflows") }
                let bytes = try r.bytes("chunk", limit: r.limits.maxChunkBytes, limitName: "max_chunk_bytes")
                if bytes.isEmpty { throw r.malformed("empty chunk") }
                chunks.append(EncodedChunk(minTimeMs: minT, maxTimeMs: maxT, bytes: Array(bytes)))
            }
            series.append(SeriesChunks(labels: labels, chunks: chunks))
        }
        self.series = series
    }
}

/// The last frame of a stream (sent with the end-of-stream flag): `uvarint count ‖ string*`
/// warnings (a limit that truncated the answer, a shard that is not complete here).
public struct StreamEndMessage: PeerMessage, Equatable {
    public static let type = PeerMessageType.streamEnd
    public var warnings: [String]

    public init(warnings: [String] = []) { self.warnings = warnings }

    public func encode(into out: inout [UInt8]) {
        out.appendUVarint(UInt64(warnings.count))
        for w in warnings { out.appendString(w) }
    }

    public init(from r: inout PayloadReader) throws(PeerWireError) {
        let n = try r.count("warning_count", minItemBytes: 1)
        var warnings: [String] = []
        warnings.reserveCapacity(n)
        for _ in 0..<n { warnings.append(try r.string("warning")) }
        self.warnings = warnings
    }
}

// MARK: - Anti-entropy and shard streams

/// Digests of every block of `shards` whose start lies in `[from_block_ms, to_block_ms]`, over
/// samples at or before `until_ms` (the settled past; both sides use the requester's cut):
/// `shard set ‖ varint from_block_ms ‖ varint to_block_ms ‖ varint until_ms`.
public struct BlockDigestsMessage: PeerMessage, Equatable {
    public static let type = PeerMessageType.blockDigests
    public var shards: ShardSet
    public var fromBlockMs: Int64
    public var toBlockMs: Int64
    public var untilMs: Int64

    public init(shards: ShardSet, fromBlockMs: Int64, toBlockMs: Int64, untilMs: Int64 = .max) {
        self.shards = shards
        self.fromBlockMs = fromBlockMs
        self.toBlockMs = toBlockMs
        self.untilMs = untilMs
    }

    public func encode(into out: inout [UInt8]) {
        out.appendShardSet(shards)
        out.appendVarint(fromBlockMs)
        out.appendVarint(toBlockMs)
        out.appendVarint(untilMs)
    }

    public init(from r: inout PayloadReader) throws(PeerWireError) {
        shards = try r.shardSet("shards")
        fromBlockMs = try r.varint("from_block_ms")
        toBlockMs = try r.varint("to_block_ms")
        guard fromBlockMs <= toBlockMs else { throw r.malformed("from_block_ms \(fromBlockMs) after to_block_ms \(toBlockMs)") }
        untilMs = try r.varint("until_ms")
    }
}

/// One block's digest: the sum mod 2⁶⁴ of XXH64(labels ‖ merged samples) over its series —
/// independent of chunk boundaries and write order (docs/cluster.md, anti-entropy).
public struct BlockDigest: Hashable, Sendable {
    public var shard: ShardID
    public var blockStartMs: Int64
    public var digest: UInt64
    public var seriesCount: UInt64

    public init(shard: ShardID, blockStartMs: Int64, digest: UInt64, seriesCount: UInt64) {
        self.shard = shard
        self.blockStartMs = blockStartMs
        self.digest = digest
        self.seriesCount = seriesCount
    }
}

/// `uvarint count ‖ (u16 shard ‖ varint block_start_ms ‖ u64 digest ‖ uvarint series_count)*`.
/// Blocks the responder has no data for are absent (an absent block and an empty one compare
/// equal).
public struct BlockDigestsReplyMessage: PeerMessage, Equatable {
    public static let type = PeerMessageType.blockDigestsReply
    public var blocks: [BlockDigest]

    public init(blocks: [BlockDigest]) { self.blocks = blocks }

    public func encode(into out: inout [UInt8]) {
        out.appendUVarint(UInt64(blocks.count))
        for b in blocks {
            out.appendBigEndian(b.shard.rawValue)
            out.appendVarint(b.blockStartMs)
            out.appendBigEndian(b.digest)
            out.appendUVarint(b.seriesCount)
        }
    }

    public init(from r: inout PayloadReader) throws(PeerWireError) {
        let n = try r.count("block_count", minItemBytes: 12)
        var blocks: [BlockDigest] = []
        blocks.reserveCapacity(n)
        for _ in 0..<n {
            blocks.append(BlockDigest(
                shard: try r.shard("shard"), blockStartMs: try r.varint("block_start_ms"),
                digest: try r.u64("digest"), seriesCount: try r.uvarint("series_count")))
        }
        self.blocks = blocks
    }
}

/// Per-series digests of one block over samples at or before `until_ms`:
/// `u16 shard ‖ varint block_start_ms ‖ varint until_ms`.
public struct SeriesDigestsMessage: PeerMessage, Equatable {
    public static let type = PeerMessageType.seriesDigests
    public var shard: ShardID
    public var blockStartMs: Int64
    public var untilMs: Int64

    public init(shard: ShardID, blockStartMs: Int64, untilMs: Int64 = .max) {
        self.shard = shard
        self.blockStartMs = blockStartMs
        self.untilMs = untilMs
    }

    public func encode(into out: inout [UInt8]) {
        out.appendBigEndian(shard.rawValue)
        out.appendVarint(blockStartMs)
        out.appendVarint(untilMs)
    }

    public init(from r: inout PayloadReader) throws(PeerWireError) {
        shard = try r.shard("shard")
        blockStartMs = try r.varint("block_start_ms")
        untilMs = try r.varint("until_ms")
    }
}

public struct SeriesDigest: Hashable, Sendable {
    public var labels: Labels
    public var digest: UInt64

    public init(labels: Labels, digest: UInt64) {
        self.labels = labels
        self.digest = digest
    }
}

/// `u16 shard ‖ varint block_start_ms ‖ uvarint count ‖ (labels ‖ u64 digest)*`, series sorted
/// by label set (so two replies merge in one pass).
public struct SeriesDigestsReplyMessage: PeerMessage, Equatable {
    public static let type = PeerMessageType.seriesDigestsReply
    public var shard: ShardID
    public var blockStartMs: Int64
    public var series: [SeriesDigest]

    public init(shard: ShardID, blockStartMs: Int64, series: [SeriesDigest]) {
        self.shard = shard
        self.blockStartMs = blockStartMs
        self.series = series
    }

    public func encode(into out: inout [UInt8]) {
        out.appendBigEndian(shard.rawValue)
        out.appendVarint(blockStartMs)
        out.appendUVarint(UInt64(series.count))
        for s in series {
            out.appendLengthPrefixed(s.labels.bytes)
            out.appendBigEndian(s.digest)
        }
    }

    public init(from r: inout PayloadReader) throws(PeerWireError) {
        shard = try r.shard("shard")
        blockStartMs = try r.varint("block_start_ms")
        let n = try r.count("series_count", minItemBytes: 10)
        var series: [SeriesDigest] = []
        series.reserveCapacity(n)
        var previous: Labels?
        for _ in 0..<n {
            let labels = try r.labels("labels")
            if let p = previous, !(p < labels) { throw r.malformed("series not strictly sorted by label set") }
            previous = labels
            series.append(SeriesDigest(labels: labels, digest: try r.u64("digest")))
        }
        self.series = series
    }
}

/// Stream a shard's data with samples in `[from_ms, to_ms]`, optionally only some series:
/// `u16 shard ‖ varint from_ms ‖ varint to_ms ‖ uvarint series_count ‖ labels*` (0 series =
/// the whole shard). Answered with `seriesFrame`s and a `streamEnd`, or
/// `error(shard_not_complete)` when the responder's copy is not complete.
public struct FetchShardMessage: PeerMessage, Equatable {
    public static let type = PeerMessageType.fetchShard
    public var shard: ShardID
    public var fromMs: Int64
    public var toMs: Int64
    public var series: [Labels]

    public init(shard: ShardID, fromMs: Int64, toMs: Int64, series: [Labels] = []) {
        self.shard = shard
        self.fromMs = fromMs
        self.toMs = toMs
        self.series = series
    }

    public func encode(into out: inout [UInt8]) {
        out.appendBigEndian(shard.rawValue)
        out.appendVarint(fromMs)
        out.appendVarint(toMs)
        out.appendUVarint(UInt64(series.count))
        for l in series { out.appendLengthPrefixed(l.bytes) }
    }

    public init(from r: inout PayloadReader) throws(PeerWireError) {
        shard = try r.shard("shard")
        fromMs = try r.varint("from_ms")
        toMs = try r.varint("to_ms")
        guard fromMs <= toMs else { throw r.malformed("from_ms \(fromMs) after to_ms \(toMs)") }
        let n = try r.count("series_count", minItemBytes: 2)
        var series: [Labels] = []
        series.reserveCapacity(n)
        for _ in 0..<n {
            let l = try r.labels("labels")
            if l.isEmpty { throw r.malformed("empty label set in the series filter") }
            series.append(l)
        }
        self.series = series
    }
}

/// Hand one shard's chunks to an owner: `u16 shard ‖ series frame body`. The receiver appends
/// them through its durable path (samples it holds already are dropped as duplicates) and answers
/// `writeAck` with one result for the shard; once acknowledged it holds every pushed sample.
public struct PushChunksMessage: PeerMessage {
    public static let type = PeerMessageType.pushChunks
    public var shard: ShardID
    public var series: [SeriesChunks]

    public init(shard: ShardID, series: [SeriesChunks]) {
        self.shard = shard
        self.series = series
    }

    public func encode(into out: inout [UInt8]) {
        out.appendBigEndian(shard.rawValue)
        SeriesFrameMessage(series: series).encode(into: &out)
    }

    public init(from r: inout PayloadReader) throws(PeerWireError) {
        shard = try r.shard("shard")
        series = try SeriesFrameMessage(from: &r).series
    }
}

/// The shards a node holds complete (every acknowledged write of the shard is in its copy):
/// `string node_id ‖ shard set`. Sent as a request, answered with the responder's own report,
/// so one exchange tells both sides; the frame header's placement version says which placement
/// each report was made under.
public struct ShardStateMessage: PeerMessage, Equatable {
    public static let type = PeerMessageType.shardState
    /// The reporting node (connections carry no identity of their own).
    public var nodeID: String
    public var complete: ShardSet

    public init(nodeID: String = "", complete: ShardSet) {
        self.nodeID = nodeID
        self.complete = complete
    }

    public func encode(into out: inout [UInt8]) {
        out.appendString(nodeID)
        out.appendShardSet(complete)
    }

    public init(from r: inout PayloadReader) throws(PeerWireError) {
        nodeID = try r.string("node_id")
        complete = try r.shardSet("complete")
    }
}

// MARK: - Label queries

/// What a `labelQuery` asks for.
public enum LabelQueryKind: UInt8, Sendable, Hashable, CaseIterable {
    /// Label sets of matching series (`/api/v1/series`).
    case series = 1
    /// Label names (`/api/v1/labels`).
    case labelNames = 2
    /// Values of the label `name` (`/api/v1/label/<name>/values`).
    case labelValues = 3
}

/// `u8 kind ‖ string name ‖ varint start_ms ‖ varint end_ms ‖ uvarint limit (0 = none) ‖
/// uvarint set_count ‖ (uvarint matcher_count ‖ (u8 kind ‖ string name ‖ string value)*)*`.
/// Answered over the responder's whole store (not per shard): the coordinator asks enough
/// nodes to cover every shard and takes the union, which replicas cannot make wrong.
public struct LabelQueryMessage: PeerMessage, Equatable {
    public static let type = PeerMessageType.labelQuery
    public var kind: LabelQueryKind
    /// The label whose values are asked for (`labelValues`); empty otherwise.
    public var name: String
    public var startMs: Int64
    public var endMs: Int64
    /// At most this many results; 0 means no limit.
    public var limit: UInt64
    /// Series matching any set; no set means every series.
    public var matcherSets: [[LabelMatcher]]

    public init(kind: LabelQueryKind, name: String = "", startMs: Int64, endMs: Int64, limit: UInt64 = 0, matcherSets: [[LabelMatcher]]) {
        self.kind = kind
        self.name = name
        self.startMs = startMs
        self.endMs = endMs
        self.limit = limit
        self.matcherSets = matcherSets
    }

    public func encode(into out: inout [UInt8]) {
        out.append(kind.rawValue)
        out.appendString(name)
        out.appendVarint(startMs)
        out.appendVarint(endMs)
        out.appendUVarint(limit)
        out.appendUVarint(UInt64(matcherSets.count))
        for set in matcherSets { out.appendMatchers(set) }
    }

    public init(from r: inout PayloadReader) throws(PeerWireError) {
        let k = try r.u8("kind")
        guard let kind = LabelQueryKind(rawValue: k) else { throw r.malformed("unknown label query kind \(k)") }
        self.kind = kind
        name = try r.string("name")
        startMs = try r.varint("start_ms")
        endMs = try r.varint("end_ms")
        guard startMs <= endMs else { throw r.malformed("start_ms \(startMs) after end_ms \(endMs)") }
        limit = try r.uvarint("limit")
        let n = try r.count("set_count", minItemBytes: 1)
        var sets: [[LabelMatcher]] = []
        sets.reserveCapacity(n)
        for _ in 0..<n { sets.append(try r.matchers()) }
        matcherSets = sets
    }
}

/// `uvarint warning_count ‖ string* ‖ uvarint count ‖ item*`: items are label sets (`labels`
/// encoding) for `series`, strings otherwise; sorted as the local read API sorts them.
public struct LabelQueryReplyMessage: PeerMessage, Equatable {
    public static let type = PeerMessageType.labelQueryReply
    public var warnings: [String]
    public var series: [Labels]
    public var strings: [String]

    public init(warnings: [String] = [], series: [Labels] = [], strings: [String] = []) {
        self.warnings = warnings
        self.series = series
        self.strings = strings
    }

    public func encode(into out: inout [UInt8]) {
        out.appendUVarint(UInt64(warnings.count))
        for w in warnings { out.appendString(w) }
        out.append(series.isEmpty ? 0 : 1)
        if series.isEmpty {
            out.appendUVarint(UInt64(strings.count))
            for s in strings { out.appendString(s) }
        } else {
            out.appendUVarint(UInt64(series.count))
            for l in series { out.appendLengthPrefixed(l.bytes) }
        }
    }

    public init(from r: inout PayloadReader) throws(PeerWireError) {
        let w = try r.count("warning_count", minItemBytes: 1)
        warnings = []
        for _ in 0..<w { warnings.append(try r.string("warning")) }
        let holdsSeries = try r.u8("item kind")
        guard holdsSeries <= 1 else { throw r.malformed("item kind \(holdsSeries) is neither 0 (strings) nor 1 (label sets)") }
        let n = try r.count("count", minItemBytes: 1)
        series = []
        strings = []
        if holdsSeries == 1 {
            series.reserveCapacity(n)
            for _ in 0..<n { series.append(try r.labels("labels")) }
        } else {
            strings.reserveCapacity(n)
            for _ in 0..<n { strings.append(try r.string("value")) }
        }
    }
}

/// Ask for the rule groups the receiver evaluates: `u8 0` (reserved for filters).
public struct RuleGroupsMessage: PeerMessage, Equatable {
    public static let type = PeerMessageType.ruleGroups

    public init() {}

    public func encode(into out: inout [UInt8]) { out.append(0) }

    public init(from r: inout PayloadReader) throws(PeerWireError) {
        let v = try r.u8("reserved")
        guard v == 0 else { throw r.malformed("reserved byte \(v), expected 0") }
    }
}

/// The rule groups a node evaluates, as a JSON document (`bytes json`): small control data,
/// rendered and read by the node's rules API, bounded by the frame body limit.
public struct RuleGroupsReplyMessage: PeerMessage, Equatable {
    public static let type = PeerMessageType.ruleGroupsReply
    public var json: [UInt8]

    public init(json: [UInt8]) { self.json = json }

    public func encode(into out: inout [UInt8]) { out.appendLengthPrefixed(json) }

    public init(from r: inout PayloadReader) throws(PeerWireError) {
        json = Array(try r.bytes("json", limit: r.limits.maxDecodedPayloadBytes, limitName: "max_decoded_payload_bytes"))
    }
}

/// Alerts for the alertmanager node, as JSON (`bytes json`); the reply (`post_alerts_reply`)
/// has the same body, `{}`. `alertmanager_op` and its reply carry their JSON the same way.
public struct PostAlertsMessage: PeerMessage, Equatable {
    public static let type = PeerMessageType.postAlerts
    public var json: [UInt8]

    public init(json: [UInt8]) { self.json = json }

    public func encode(into out: inout [UInt8]) { out.appendLengthPrefixed(json) }

    public init(from r: inout PayloadReader) throws(PeerWireError) {
        json = Array(try r.bytes("json", limit: r.limits.maxDecodedPayloadBytes, limitName: "max_decoded_payload_bytes"))
    }
}

/// A decoded message of any type, for the shell's dispatch.
public enum AnyPeerMessage: Sendable {
    case ping(PingMessage)
    case error(ErrorMessage)
    case write(WriteMessage)
    case writeAck(WriteAckMessage)
    case hintDelivery(HintDeliveryMessage)
    case select(SelectMessage)
    case seriesFrame(SeriesFrameMessage)
    case streamEnd(StreamEndMessage)
    case blockDigests(BlockDigestsMessage)
    case blockDigestsReply(BlockDigestsReplyMessage)
    case seriesDigests(SeriesDigestsMessage)
    case seriesDigestsReply(SeriesDigestsReplyMessage)
    case fetchShard(FetchShardMessage)
    case shardState(ShardStateMessage)
    case labelQuery(LabelQueryMessage)
    case labelQueryReply(LabelQueryReplyMessage)
    case pushChunks(PushChunksMessage)
    case ruleGroups(RuleGroupsMessage)
    case ruleGroupsReply(RuleGroupsReplyMessage)
    case postAlerts(PostAlertsMessage)
    case postAlertsReply(PostAlertsMessage)
    case alertmanagerOp(PostAlertsMessage)
    case alertmanagerOpReply(PostAlertsMessage)
    case rulesOp(PostAlertsMessage)
    case rulesOpReply(PostAlertsMessage)

    /// Decodes `frame`'s payload as its type.
    public init(_ frame: PeerFrame, limits: PeerWireLimits = .default) throws(PeerWireError) {
        let p = frame.payload
        switch frame.type {
        case .ping: self = .ping(try .decode(p, limits: limits))
        case .error: self = .error(try .decode(p, limits: limits))
        case .write: self = .write(try .decode(p, limits: limits))
        case .writeAck: self = .writeAck(try .decode(p, limits: limits))
        case .hintDelivery: self = .hintDelivery(try .decode(p, limits: limits))
        case .select: self = .select(try .decode(p, limits: limits))
        case .seriesFrame: self = .seriesFrame(try .decode(p, limits: limits))
        case .streamEnd: self = .streamEnd(try .decode(p, limits: limits))
        case .blockDigests: self = .blockDigests(try .decode(p, limits: limits))
        case .blockDigestsReply: self = .blockDigestsReply(try .decode(p, limits: limits))
        case .seriesDigests: self = .seriesDigests(try .decode(p, limits: limits))
        case .seriesDigestsReply: self = .seriesDigestsReply(try .decode(p, limits: limits))
        case .fetchShard: self = .fetchShard(try .decode(p, limits: limits))
        case .shardState: self = .shardState(try .decode(p, limits: limits))
        case .labelQuery: self = .labelQuery(try .decode(p, limits: limits))
        case .labelQueryReply: self = .labelQueryReply(try .decode(p, limits: limits))
        case .pushChunks: self = .pushChunks(try .decode(p, limits: limits))
        case .ruleGroups: self = .ruleGroups(try .decode(p, limits: limits))
        case .ruleGroupsReply: self = .ruleGroupsReply(try .decode(p, limits: limits))
        case .postAlerts: self = .postAlerts(try .decode(p, limits: limits))
        case .postAlertsReply:
            var r = PayloadReader(p, type: .postAlertsReply, limits: limits)
            let m = try PostAlertsMessage(from: &r)
            guard r.isAtEnd else { throw .trailingBytes(type: .postAlertsReply, count: r.remaining) }
            self = .postAlertsReply(m)
        case .alertmanagerOp, .alertmanagerOpReply:
            var r = PayloadReader(p, type: frame.type, limits: limits)
            let m = try PostAlertsMessage(from: &r)
            guard r.isAtEnd else { throw .trailingBytes(type: frame.type, count: r.remaining) }
            self = frame.type == .alertmanagerOp ? .alertmanagerOp(m) : .alertmanagerOpReply(m)
        case .rulesOp, .rulesOpReply:
            var r = PayloadReader(p, type: frame.type, limits: limits)
            let m = try PostAlertsMessage(from: &r)
            guard r.isAtEnd else { throw .trailingBytes(type: frame.type, count: r.remaining) }
            self = frame.type == .rulesOp ? .rulesOp(m) : .rulesOpReply(m)
        }
    }
}
