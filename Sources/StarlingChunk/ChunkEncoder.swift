import StarlingCore

/// Turns samples into chunks, each in its smallest encoding. Used when the head closes a chunk
/// (`XORAppender.closed()` is the shortcut), when the compactor rewrites a series' chunks of a
/// time block, and by tests and tools.
public enum ChunkEncoder {
    /// Cuts `samples` (strictly increasing timestamps: sorted and de-duplicated) into chunks of
    /// at most `maxSamplesPerChunk` samples of near-equal size, each in its smallest encoding.
    /// Equal sizes avoid a small trailing chunk whose header would dominate it.
    public static func encode(_ samples: [Sample], maxSamplesPerChunk: Int = ChunkCodec.defaultSamplesPerChunk) -> [EncodedChunk] {
        precondition((1...ChunkCodec.maxSamplesPerChunk).contains(maxSamplesPerChunk),
                     "maxSamplesPerChunk \(maxSamplesPerChunk) outside 1...\(ChunkCodec.maxSamplesPerChunk)")
        let n = samples.count
        guard n > 0 else { return [] }
        let chunkCount = (n + maxSamplesPerChunk - 1) / maxSamplesPerChunk
        var out: [EncodedChunk] = []
        out.reserveCapacity(chunkCount)
        var start = 0
        for c in 0..<chunkCount {
            let end = n * (c + 1) / chunkCount
            out.append(encodeChunk(samples[start..<end]))
            start = end
        }
        return out
    }

    /// One chunk of `samples` (1...`ChunkCodec.maxSamplesPerChunk` samples, strictly increasing
    /// timestamps) in the smallest encoding: decimal when every value is an exact decimal and
    /// that is smaller, else XOR.
    public static func encodeChunk(_ samples: ArraySlice<Sample>) -> EncodedChunk {
        // The XOR size is computed without encoding: most chunks of node-exporter data end up
        // decimal, and the XOR bytes would be thrown away.
        let xorSize = samples.withUnsafeBufferPointer { XORAppender.encodedSize($0) }
        if let decimal = encode(samples, as: .decimal), decimal.bytes.count < xorSize { return decimal }
        return encode(samples, as: .xor)!
    }

    /// One chunk of `samples` in the given encoding; nil if the encoding cannot hold them
    /// (decimal: a value that is not an exact decimal of a common scale). Prefer
    /// `encodeChunk`; this exists for tests, fixtures and measurements.
    public static func encode(_ samples: ArraySlice<Sample>, as encoding: ChunkEncoding) -> EncodedChunk? {
        precondition((1...ChunkCodec.maxSamplesPerChunk).contains(samples.count),
                     "chunk of \(samples.count) samples outside 1...\(ChunkCodec.maxSamplesPerChunk)")
        let minT = samples.first!.timestampMs
        let maxT = samples.last!.timestampMs
        switch encoding {
        case .xor:
            var a = XORAppender(expectedSamples: samples.count)
            for s in samples { a.append(s.timestampMs, s.value) }
            return a.chunk
        case .decimal:
            let bytes = samples.withUnsafeBufferPointer { DecimalCodec.encode($0) }
            return bytes.map { EncodedChunk(minTimeMs: minT, maxTimeMs: maxT, bytes: $0) }
        }
    }

    /// Rewrites possibly overlapping chunks of one series as non-overlapping chunks in their
    /// smallest encodings, keeping the samples in `[minTimeMs, maxTimeMs]` (inclusive) with
    /// duplicates resolved by `DuplicateRule`. What the compactor does to a series' block.
    public static func compact(_ chunks: [EncodedChunk], minTimeMs: Int64 = .min, maxTimeMs: Int64 = .max,
                               maxSamplesPerChunk: Int = ChunkCodec.defaultSamplesPerChunk) throws(DecodeError) -> [EncodedChunk] {
        let samples = try SeriesSampleIterator.collect(chunks: chunks, minTimeMs: minTimeMs, maxTimeMs: maxTimeMs)
        return encode(samples, maxSamplesPerChunk: maxSamplesPerChunk)
    }
}
