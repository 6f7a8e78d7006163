import StarlingChunk
import StarlingCore

/// The head's open chunk: an appendable Gorilla XOR chunk (`StarlingChunk.XORAppender`) that is
/// snapshotted as-is for checkpoints and reads, and re-encoded in its smallest encoding when it
/// closes.
struct OpenChunk {
    private var appender: XORAppender

    init(_ first: Sample, expectedSamples: Int) {
        appender = XORAppender(expectedSamples: expectedSamples)
        appender.append(first.timestampMs, first.value)
    }

    /// See `XORAppender.prefetch`.
    @inline(__always)
    func prefetch() { appender.prefetch() }

    var count: Int { appender.count }
    var minTimeMs: Int64 { appender.minTimeMs }
    var maxTimeMs: Int64 { appender.maxTimeMs }
    var lastValueBits: UInt64 { appender.lastValue.bitPattern }

    /// - Precondition: `s` is newer than every sample in the chunk.
    mutating func append(_ s: Sample) { appender.append(s.timestampMs, s.value) }

    /// The chunk as it is now (a copy of its few hundred bytes).
    func snapshot() -> EncodedChunk { appender.chunk }

    /// The chunk in its smallest encoding (decimal when every value is and that is smaller), for
    /// closing and for checkpoints; the open chunk itself is unchanged.
    func close() -> EncodedChunk { appender.closed() }

    /// Whether exactly this sample (timestamp and value bits) is in the chunk. Decodes the chunk:
    /// only used for samples that arrive out of order inside the open chunk's range.
    func contains(_ s: Sample) -> Bool {
        guard var it = try? ChunkIterator(appender.bytes), (try? it.seek(toTimeMs: s.timestampMs)) == true else { return false }
        return it.timestampMs == s.timestampMs && it.value.bitPattern == s.value.bitPattern
    }
}

enum ChunkOps {
    static func encode(_ samples: [Sample], maxPerChunk: Int) -> [EncodedChunk] {
        ChunkEncoder.encode(samples, maxSamplesPerChunk: min(maxPerChunk, ChunkCodec.maxSamplesPerChunk))
    }

    static func merge(_ chunks: [EncodedChunk], minTimeMs: Int64, maxTimeMs: Int64) throws(DecodeError) -> [Sample] {
        try SeriesSampleIterator.collect(chunks: chunks, minTimeMs: minTimeMs, maxTimeMs: maxTimeMs)
    }
}
