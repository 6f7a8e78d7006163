import StarlingCore

/// How two samples of one series with the same timestamp resolve.
///
/// Equal bits are one sample. Different values resolve to the greater by a total order, so the
/// answer depends neither on chunk order nor on arrival order, and replicas that received the
/// same writes in different orders converge:
/// 1. a non-NaN value beats NaN (a real value beats a stale marker);
/// 2. between non-NaN values the numerically greater wins, and +0.0 beats -0.0;
/// 3. between NaNs the greater bit pattern (as `UInt64`) wins.
public enum DuplicateRule {
    /// The value kept when `a` and `b` share a timestamp. Commutative and associative.
    @inlinable
    public static func preferred(_ a: Double, _ b: Double) -> Double {
        if a.isNaN {
            if b.isNaN { return a.bitPattern >= b.bitPattern ? a : b }
            return b
        }
        if b.isNaN { return a }
        if a > b { return a }
        if b > a { return b }
        // Numerically equal: identical bits, or +0.0 and -0.0.
        return a.sign == .plus ? a : b
    }
}

/// Merges the chunks of one series into a stream of samples in strictly increasing time order,
/// restricted to `[minTimeMs, maxTimeMs]` (inclusive).
///
/// Chunks may overlap in time and repeat samples (the head and persisted chunks, replicas merged
/// by a fan-out, out-of-order chunks): duplicates resolve by `DuplicateRule`. Chunks whose
/// declared bounds miss the range are never decoded; a chunk is decoded only once the merge
/// reaches its `minTimeMs`, and while a single chunk is open each sample costs one decode and one
/// comparison. A chunk whose samples lie outside its declared bounds is reported as malformed,
/// since the bounds are what lets readers skip chunks.
///
/// Errors end the iteration: after `next()` threw, it returns false.
public struct SeriesSampleIterator: Sendable {
    private struct Cursor: Sendable {
        var it: ChunkIterator
        let declaredMaxMs: Int64
    }

    /// The chunks that overlap the range, sorted by `minTimeMs`.
    private let chunks: [EncodedChunk]
    private var nextChunk = 0
    private let minTimeMs: Int64
    private let maxTimeMs: Int64
    /// Nothing below this is returned: `minTimeMs`, raised by `seek`.
    private var floorMs: Int64
    /// Open chunks, each positioned at a sample not yet returned, or, while `emitted`, at the
    /// sample just returned (those whose timestamp equals `timestampMs`).
    private var open: [Cursor] = []
    /// Iterators of closed chunks, kept to reuse their buffers.
    private var spare: [ChunkIterator] = []
    /// With one open chunk, its samples up to this timestamp need no merging.
    private var fastLimitMs: Int64 = .min
    private var emitted = false
    private var finished = false

    /// The current sample; valid after `next()` or `seek` returned true.
    public private(set) var timestampMs: Int64 = 0
    public private(set) var value: Double = 0
    public var sample: Sample { Sample(timestampMs, value) }

    /// - Parameters:
    ///   - chunks: the series' chunks in any order; overlapping and duplicated samples allowed.
    ///   - minTimeMs: inclusive lower bound of the samples returned.
    ///   - maxTimeMs: inclusive upper bound of the samples returned.
    public init(chunks: [EncodedChunk], minTimeMs: Int64 = .min, maxTimeMs: Int64 = .max) {
        var selected = chunks.filter { $0.overlaps(minTimeMs, maxTimeMs) }
        var sorted = true
        for i in selected.indices.dropFirst() where selected[i].minTimeMs < selected[i - 1].minTimeMs {
            sorted = false
            break
        }
        if !sorted { selected.sort { $0.minTimeMs < $1.minTimeMs } }
        self.chunks = selected
        self.minTimeMs = minTimeMs
        self.maxTimeMs = maxTimeMs
        self.floorMs = minTimeMs
        finished = minTimeMs > maxTimeMs || selected.isEmpty
    }

    /// Advances to the next sample; false at the end.
    @inline(__always)
    public mutating func next() throws(DecodeError) -> Bool {
        if finished { return false }
        if emitted && open.count == 1 {
            // One open chunk: its samples below the next chunk's start need no merging.
            do {
                if try open[0].it.next() {
                    let t = open[0].it.timestampMs
                    if t <= fastLimitMs {
                        timestampMs = t
                        value = open[0].it.value
                        return true
                    }
                    emitted = false
                    try admitOrDrop(0)
                } else {
                    close(0)
                    emitted = false
                }
            } catch {
                finished = true
                throw error
            }
        }
        return try slowNext()
    }

    private mutating func slowNext() throws(DecodeError) -> Bool {
        do {
            if emitted {
                emitted = false
                var i = open.count - 1
                while i >= 0 {
                    if open[i].it.timestampMs == timestampMs {
                        if try open[i].it.next() { try admitOrDrop(i) } else { close(i) }
                    }
                    i -= 1
                }
            }
            return try select()
        } catch {
            finished = true
            throw error
        }
    }

    /// Advances to the first sample at or after `timestampMs`, staying put if the current sample
    /// already is; false if there is none. Chunks that end before the target are not decoded.
    public mutating func seek(toTimeMs target: Int64) throws(DecodeError) -> Bool {
        if finished { return false }
        if emitted && timestampMs >= target { return true }
        do {
            if target > floorMs { floorMs = target }
            var i = open.count - 1
            while i >= 0 {
                if open[i].it.timestampMs < floorMs {
                    if try open[i].it.seek(toTimeMs: floorMs) { try admitOrDrop(i) } else { close(i) }
                }
                i -= 1
            }
            emitted = false
            return try select()
        } catch {
            finished = true
            throw error
        }
    }

    /// Every sample left, in order.
    public mutating func collect() throws(DecodeError) -> [Sample] {
        var out: [Sample] = []
        var estimate = 0
        for c in chunks[nextChunk...] {
            // Every sample takes at least one bit: a damaged count cannot inflate the reservation.
            estimate += min((try? ChunkCodec.sampleCount(c.bytes)) ?? 0, c.bytes.count * 8)
        }
        out.reserveCapacity(estimate + open.count * 16)
        while try next() { out.append(Sample(timestampMs, value)) }
        return out
    }

    /// The merged samples of `chunks` in `[minTimeMs, maxTimeMs]` (inclusive).
    public static func collect(chunks: [EncodedChunk], minTimeMs: Int64 = .min, maxTimeMs: Int64 = .max) throws(DecodeError) -> [Sample] {
        var it = SeriesSampleIterator(chunks: chunks, minTimeMs: minTimeMs, maxTimeMs: maxTimeMs)
        return try it.collect()
    }

    // MARK: - Merging

    /// Opens the chunks the merge has reached, then returns the smallest pending timestamp with
    /// its duplicates resolved. Precondition: every open cursor is at a sample not yet returned.
    private mutating func select() throws(DecodeError) -> Bool {
        var lowest = Int64.max
        for c in open where c.it.timestampMs < lowest { lowest = c.it.timestampMs }
        while nextChunk < chunks.count {
            let chunk = chunks[nextChunk]
            if !open.isEmpty && chunk.minTimeMs > lowest { break }
            nextChunk += 1
            if chunk.maxTimeMs < floorMs { continue }
            if try openChunk(chunk) {
                let t = open[open.count - 1].it.timestampMs
                if t < lowest { lowest = t }
            }
        }
        if open.isEmpty {
            finished = true
            return false
        }
        var v = 0.0
        var first = true
        for c in open where c.it.timestampMs == lowest {
            v = first ? c.it.value : DuplicateRule.preferred(v, c.it.value)
            first = false
        }
        timestampMs = lowest
        value = v
        emitted = true
        if open.count == 1 {
            var limit = min(maxTimeMs, open[0].declaredMaxMs)
            if nextChunk < chunks.count {
                let nextMin = chunks[nextChunk].minTimeMs
                limit = min(limit, nextMin == .min ? .min : nextMin - 1)
            }
            fastLimitMs = limit
        }
        return true
    }

    /// Positions a new iterator on `chunk`'s first sample at or after `floorMs`; adds it to
    /// `open` and returns true if that sample is within range.
    private mutating func openChunk(_ chunk: EncodedChunk) throws(DecodeError) -> Bool {
        var it: ChunkIterator
        if var reused = spare.popLast() {
            try reused.reset(chunk.bytes)
            it = reused
        } else {
            it = try ChunkIterator(chunk.bytes)
        }
        guard try it.next() else {
            spare.append(it)
            return false
        }
        guard it.timestampMs >= chunk.minTimeMs else {
            throw .malformed(context: "chunk: sample at \(it.timestampMs) before its declared minTimeMs \(chunk.minTimeMs)")
        }
        if it.timestampMs < floorMs {
            guard try it.seek(toTimeMs: floorMs) else {
                spare.append(it)
                return false
            }
        }
        open.append(Cursor(it: it, declaredMaxMs: chunk.maxTimeMs))
        return try admitOrDrop(open.count - 1)
    }

    /// Checks the sample cursor `i` was just moved to: beyond its chunk's declared end is
    /// corruption; beyond the range closes the cursor. Returns whether the cursor stays open.
    @discardableResult
    private mutating func admitOrDrop(_ i: Int) throws(DecodeError) -> Bool {
        let t = open[i].it.timestampMs
        guard t <= open[i].declaredMaxMs else {
            throw .malformed(context: "chunk: sample at \(t) after its declared maxTimeMs \(open[i].declaredMaxMs)")
        }
        if t > maxTimeMs {
            close(i)
            return false
        }
        return true
    }

    private mutating func close(_ i: Int) {
        open.swapAt(i, open.count - 1)
        spare.append(open.removeLast().it)
    }
}
