import StarlingCore

/// Index of the first `byte` in `s[from...]`, or nil. Scans 8 bytes per step (SWAR).
@inline(__always)
func findByte(_ byte: UInt8, in s: UnsafeRawBufferPointer, from: Int) -> Int? {
    let n = s.count
    var i = from
    let pattern = UInt64(byte) &* 0x0101_0101_0101_0101
    while i + 8 <= n {
        let w = s.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ pattern
        let z = (w &- 0x0101_0101_0101_0101) & ~w & 0x8080_8080_8080_8080
        if z != 0 { return i + (z.littleEndian.trailingZeroBitCount >> 3) }
        i += 8
    }
    while i < n {
        if s[i] == byte { return i }
        i += 1
    }
    return nil
}

/// Splits a body arriving in arbitrary pieces into lines (`\n`-terminated; a trailing `\r` is
/// removed; the last line needs no terminator). Complete lines inside a piece are handed out
/// without copying; only a line straddling pieces is assembled in `carry`. A line longer than
/// `maxLineBytes` is reported once and skipped without being buffered, so memory stays bounded
/// by the limit whatever the body.
struct LineSplitter {
    let maxLineBytes: Int
    private var carry: [UInt8] = []
    /// Skipping the rest of an overlong line.
    private var skipping = false
    /// Bytes seen so far of the line being skipped or carried.
    private var pendingBytes = 0
    /// 1-based number of the line currently being assembled.
    private(set) var lineNumber = 1

    init(maxLineBytes: Int) {
        self.maxLineBytes = maxLineBytes
    }

    mutating func feed<H: LineHandler>(_ chunk: UnsafeRawBufferPointer, _ handler: inout H) {
        var start = 0
        let n = chunk.count
        while start < n {
            guard let nl = findByte(0x0A, in: chunk, from: start) else {
                // No terminator in the rest of the piece: keep it for the next feed.
                let rest = n - start
                if skipping {
                    pendingBytes += rest
                } else if carry.count + rest > maxLineBytes + 1 {  // +1: a trailing \r may follow
                    handler.handleTooLong(number: lineNumber)
                    pendingBytes = carry.count + rest
                    carry.removeAll(keepingCapacity: false)
                    skipping = true
                } else {
                    carry.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[start..<n]))
                }
                return
            }
            if skipping {
                skipping = false
                pendingBytes = 0
            } else if carry.isEmpty {
                emit(UnsafeRawBufferPointer(rebasing: chunk[start..<nl]), &handler)
            } else {
                if carry.count + (nl - start) > maxLineBytes + 1 {
                    handler.handleTooLong(number: lineNumber)
                } else {
                    carry.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[start..<nl]))
                    carry.withUnsafeBytes { emit($0, &handler) }
                }
                carry.removeAll(keepingCapacity: carry.capacity <= 64 * 1024)
            }
            lineNumber += 1
            start = nl + 1
        }
    }

    /// Hands out the final unterminated line, if any.
    mutating func finish<H: LineHandler>(_ handler: inout H) {
        if skipping {
            skipping = false
        } else if !carry.isEmpty {
            carry.withUnsafeBytes { emit($0, &handler) }
            carry.removeAll()
        } else {
            return
        }
        lineNumber += 1
    }

    /// Lines fully handed out (for `IngestResult.lines`).
    var completedLines: Int { lineNumber - 1 }

    @inline(__always)
    private func emit<H: LineHandler>(_ line: UnsafeRawBufferPointer, _ handler: inout H) {
        var l = line
        if let last = l.last, last == 0x0D { l = UnsafeRawBufferPointer(rebasing: l[0..<l.count - 1]) }
        if l.count > maxLineBytes {
            handler.handleTooLong(number: lineNumber)
        } else {
            handler.handle(line: l, number: lineNumber)
        }
    }
}

/// The per-format part of a line-oriented parser.
protocol LineHandler {
    var acc: ResultAccumulator { get set }
    /// Parses one complete line (terminator removed), 1-based `number`.
    mutating func handle(line: UnsafeRawBufferPointer, number: Int)
    /// Line `number` exceeded the line limit and was skipped.
    mutating func handleTooLong(number: Int)
}

/// What the streaming parsers share: splitting, the result being accumulated, early hand-out.
/// Splitter and handler are separate stored properties, so the splitter can call the handler
/// while both are mutated (no copy of the carry buffer, no exclusivity conflict).
struct LineStream<Handler: LineHandler> {
    private var splitter: LineSplitter
    var handler: Handler
    private var takenSamples = 0
    private var finished = false

    init(maxLineBytes: Int, handler: Handler) {
        self.splitter = LineSplitter(maxLineBytes: maxLineBytes)
        self.handler = handler
    }

    mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        precondition(!finished, "feed after finish")
        splitter.feed(bytes, &handler)
    }

    /// Series decoded so far, merged and deduplicated among themselves.
    mutating func takeSeries() -> [SeriesSamples] {
        var taken: [SeriesSamples] = []
        swap(&taken, &handler.acc.result.series)
        handler.acc.result.duplicateSamplesDropped += BatchDeduplicator.mergeAndDeduplicate(&taken)
        for s in taken { takenSamples += s.sampleCount }
        return taken
    }

    mutating func finish() -> IngestResult {
        precondition(!finished, "finish called twice")
        finished = true
        splitter.finish(&handler)
        handler.acc.result.lines = splitter.completedLines
        var r = handler.acc.finalize()
        r.acceptedSamples += takenSamples
        return r
    }
}
