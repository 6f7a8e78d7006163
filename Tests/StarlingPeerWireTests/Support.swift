import StarlingCompression
import StarlingCore
import StarlingMembership
import StarlingPlacement
import StarlingTestKit
@testable import StarlingPeerWire

typealias SeededRandom = StarlingTestKit.SeededRandom

/// The adapter the node will use: liblz4 through StarlingCompression.
struct LZ4Adapter: PeerPayloadCompressor {
    func compressLZ4(_ input: [UInt8]) -> [UInt8] { LZ4Block.compress(input) }
    func decompressLZ4(_ block: ArraySlice<UInt8>, decodedSize: Int) throws -> [UInt8] {
        try LZ4Block.decompress(Array(block), decodedSize: decodedSize)
    }
}

let keyA: [UInt8] = Array(0..<32)
let keyB: [UInt8] = Array(100..<116)

func keyring(_ keys: [UInt8]...) -> Keyring { try! Keyring(rawKeys: keys) }

/// Wire configurations every round trip runs through.
enum Mode: String, CaseIterable, CustomStringConvertible {
    case plain, lz4, sealed, sealedLZ4
    var keys: Keyring { self == .sealed || self == .sealedLZ4 ? keyring(keyA) : Keyring() }
    var compressor: (any PeerPayloadCompressor)? { self == .lz4 || self == .sealedLZ4 ? LZ4Adapter() : nil }
    var description: String { rawValue }

    func encoder(seed: UInt64 = 1) -> PeerFrameEncoder {
        var rng = SeededRandom(seed: seed)
        return PeerFrameEncoder(keyring: keys, compressor: compressor, compressMinBytes: 16, random: &rng)
    }

    func decoder(limits: PeerWireLimits = .default) -> PeerFrameDecoder {
        PeerFrameDecoder(keyring: keys, limits: limits, compressor: LZ4Adapter())
    }
}

/// Feeds `bytes` in the given chunk sizes (cycled), collecting every frame.
func decodeAll(_ bytes: [UInt8], _ decoder: inout PeerFrameDecoder, chunks: [Int] = [1]) throws(PeerWireError) -> [PeerFrame] {
    var frames: [PeerFrame] = []
    var i = 0
    var c = 0
    while i < bytes.count {
        let n = min(max(chunks[c % chunks.count], 1), bytes.count - i)
        decoder.append(bytes[i..<i + n])
        i += n
        c += 1
        while let f = try decoder.next() { frames.append(f) }
    }
    return frames
}

/// A label set like `{__name__="metric_7", instance="host-3:9100", job="node"}`.
func labels(_ i: Int, rng: inout SeededRandom) -> Labels {
    Labels([
        "__name__": "metric_\(i % 17)", "instance": "host-\(rng.next() % 50):9100", "job": "node",
        "series": String(i),
    ])
}

func sampleWrite(rng: inout SeededRandom, shards: Int = 3, series: Int = 4, samples: Int = 20) -> WriteMessage {
    var groups: [ShardWrite] = []
    var i = 0
    for s in 0..<shards {
        var ss: [SeriesSamples] = []
        for _ in 0..<series {
            var t = Int64(1_700_000_000_000) + Int64(rng.next() % 1000)
            var samplesOut: [Sample] = []
            for k in 0..<samples {
                t += 15_000 + Int64(rng.next() % 50) - 25
                let v: Double = switch k % 7 {
                case 3: .nan
                case 5: StaleMarker.value
                case 6: -.infinity
                default: Double(rng.next() % 10_000) / 7
                }
                samplesOut.append(Sample(t, v))
            }
            ss.append(SeriesSamples(labels: labels(i, rng: &rng), samples: samplesOut))
            i += 1
        }
        groups.append(ShardWrite(shard: ShardID(s * 37 + 5), series: ss))
    }
    return WriteMessage(shards: groups)
}

/// One valid instance of every message type (a value per case, so a new type breaks the build here).
func everyMessage(rng: inout SeededRandom) -> [any PeerMessage] {
    let write = sampleWrite(rng: &rng)
    let chunk = EncodedChunk(minTimeMs: 1_700_000_000_000, maxTimeMs: 1_700_000_120_000, bytes: [1, 2, 3, 4, 5, 0xFF])
    var all: [any PeerMessage] = []
    for type in PeerMessageType.allCases {
        switch type {
        case .ping: all.append(PingMessage(sentAtMs: -42))
        case .error: all.append(ErrorMessage(code: .shardNotComplete, message: "shard 12 is bootstrapping — ümlaut"))
        case .write: all.append(write)
        case .writeAck:
            all.append(WriteAckMessage(results: [
                ShardWriteResult(shard: ShardID(5), status: .ok, appended: 80, dropped: 0),
                ShardWriteResult(shard: ShardID(42), status: .overloaded, appended: 0, dropped: 1 << 40),
            ]))
        case .hintDelivery:
            all.append(HintDeliveryMessage(originNodeID: "node-7f3a", sequence: 991, storedAtMs: 1_700_000_000_123, write: write))
        case .select:
            all.append(SelectMessage(
                startMs: -5, endMs: 1_700_000_000_000, shards: [ShardID(0), ShardID(63), ShardID(64), ShardID(1023)], limit: 500,
                matchers: [.eq("__name__", "up"), try! LabelMatcher(.regexMatch, "job", "node|api.*"),
                           try! LabelMatcher(.notEqual, "env", ""), try! LabelMatcher(.regexNoMatch, "i", "x+")]))
        case .seriesFrame:
            all.append(SeriesFrameMessage(series: [
                SeriesChunks(labels: labels(1, rng: &rng), chunks: [chunk, chunk]),
                SeriesChunks(labels: labels(2, rng: &rng), chunks: []),
            ]))
        case .streamEnd: all.append(StreamEndMessage(warnings: ["limit 500 series reached", ""]))
        case .blockDigests: all.append(BlockDigestsMessage(shards: [ShardID(9)], fromBlockMs: 0, toBlockMs: 7_200_000))
        case .blockDigestsReply:
            all.append(BlockDigestsReplyMessage(blocks: [
                BlockDigest(shard: ShardID(9), blockStartMs: 0, digest: 0xDEAD_BEEF_0123_4567, seriesCount: 12),
                BlockDigest(shard: ShardID(9), blockStartMs: 7_200_000, digest: .max, seriesCount: 0),
            ]))
        case .seriesDigests: all.append(SeriesDigestsMessage(shard: ShardID(65535), blockStartMs: -7_200_000))
        case .seriesDigestsReply:
            let a = Labels(["__name__": "a"]), b = Labels(["__name__": "b"])
            all.append(SeriesDigestsReplyMessage(shard: ShardID(3), blockStartMs: 0, series: [
                SeriesDigest(labels: a, digest: 1), SeriesDigest(labels: b, digest: 2),
            ]))
        case .fetchShard:
            all.append(FetchShardMessage(shard: ShardID(700), fromMs: .min, toMs: .max, series: [labels(3, rng: &rng)]))
        case .shardState: all.append(ShardStateMessage(nodeID: "node-7f3a", complete: ShardSet((0..<1024).filter { $0 % 3 == 0 }.map(ShardID.init))))
        case .labelQuery:
            all.append(LabelQueryMessage(kind: .labelValues, name: "job", startMs: -1, endMs: 1_700_000_000_000, limit: 7,
                                         matcherSets: [[.eq("__name__", "up")], [], [try! LabelMatcher(.regexMatch, "i", "a|b")]]))
            all.append(LabelQueryMessage(kind: .labelNames, startMs: 0, endMs: 0, matcherSets: []))
        case .labelQueryReply:
            all.append(LabelQueryReplyMessage(warnings: ["shard 3 unavailable"], strings: ["a", "ümlaut", ""]))
            all.append(LabelQueryReplyMessage(series: [labels(4, rng: &rng), labels(5, rng: &rng)]))
        case .pushChunks:
            all.append(PushChunksMessage(shard: ShardID(1023), series: [SeriesChunks(labels: labels(6, rng: &rng), chunks: [chunk])]))
            all.append(PushChunksMessage(shard: ShardID(0), series: []))
        case .ruleGroups:
            all.append(RuleGroupsMessage())
        case .ruleGroupsReply:
            all.append(RuleGroupsReplyMessage(json: Array(#"{"groups":[]}"#.utf8)))
        case .postAlerts:
            all.append(PostAlertsMessage(json: Array(#"[{"labels":{"alertname":"A"}}]"#.utf8)))
        case .postAlertsReply, .alertmanagerOp, .alertmanagerOpReply, .rulesOp, .rulesOpReply:
            break  // the same body as post_alerts, checked there
        }
    }
    return all
}
