import StarlingCore

// Interim raw chunk encoding (encoding byte 0, 16 bytes/sample), used until the Gorilla codec
// of StarlingChunk is wired in here. Everything else in the store is final.

struct OpenChunk {
    private(set) var samples: [Sample]
    init(_ s: Sample) { samples = [s] }
    var count: Int { samples.count }
    var minTimeMs: Int64 { samples.first!.timestampMs }
    var maxTimeMs: Int64 { samples.last!.timestampMs }
    var lastValueBits: UInt64 { samples.last!.value.bitPattern }
    mutating func append(_ s: Sample) { samples.append(s) }
    func snapshot() -> EncodedChunk { ChunkOps.encodeRaw(samples) }
    func close() -> EncodedChunk { ChunkOps.encodeRaw(samples) }
    func contains(_ s: Sample) -> Bool { samples.contains { $0.bitwiseEqual(s) } }
}

enum ChunkOps {
    static func encodeRaw(_ samples: [Sample]) -> EncodedChunk {
        var b: [UInt8] = [0]
        for s in samples { b.appendLittleEndian(s.timestampMs); b.appendLittleEndian(s.value.bitPattern) }
        return EncodedChunk(minTimeMs: samples.first!.timestampMs, maxTimeMs: samples.last!.timestampMs, bytes: b)
    }
    static func encode(_ samples: [Sample], maxPerChunk: Int) -> [EncodedChunk] {
        stride(from: 0, to: samples.count, by: maxPerChunk).map { encodeRaw(Array(samples[$0..<min($0 + maxPerChunk, samples.count)])) }
    }
    static func decode(_ c: EncodedChunk) throws(DecodeError) -> [Sample] {
        var r = ByteReader(c.bytes)
        _ = try r.readByte()
        var out: [Sample] = []
        while !r.isAtEnd { out.append(Sample(Int64(bitPattern: try r.readLittleEndian(UInt64.self)), Double(bitPattern: try r.readLittleEndian(UInt64.self)))) }
        return out
    }
    static func merge(_ chunks: [EncodedChunk], minTimeMs: Int64, maxTimeMs: Int64) throws(DecodeError) -> [Sample] {
        var all: [Sample] = []
        for c in chunks { all += try decode(c) }
        all = all.filter { $0.timestampMs >= minTimeMs && $0.timestampMs <= maxTimeMs }
        all.sort { $0.timestampMs < $1.timestampMs || ($0.timestampMs == $1.timestampMs && wins($0.value, $1.value)) }
        var out: [Sample] = []
        for s in all where out.last?.timestampMs != s.timestampMs { out.append(s) }
        return out
    }
    static func wins(_ a: Double, _ b: Double) -> Bool {
        if a.isNaN != b.isNaN { return !a.isNaN }
        if a.isNaN { return a.bitPattern > b.bitPattern }
        if a == b { return a.sign == .plus && b.sign == .minus }
        return a > b
    }
}
