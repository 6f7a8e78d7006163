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

    enum Event {
        case line(UnsafeRawBufferPointer, number: Int)
        case tooLong(number: Int, bytesSeen: Int)
    }

    mutating func feed(_ chunk: UnsafeRawBufferPointer, _ handle: (Event) -> Void) {
        var start = 0
        let n = chunk.count
        while start < n {
            guard let nl = findByte(0x0A, in: chunk, from: start) else {
                // No terminator in the rest of the piece: keep it for the next feed.
                let rest = n - start
                if skipping {
                    pendingBytes += rest
                } else if carry.count + rest > maxLineBytes + 1 {  // +1: a trailing \r may follow
                    handle(.tooLong(number: lineNumber, bytesSeen: carry.count + rest))
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
                emit(UnsafeRawBufferPointer(rebasing: chunk[start..<nl]), handle)
            } else {
                if carry.count + (nl - start) > maxLineBytes + 1 {
                    handle(.tooLong(number: lineNumber, bytesSeen: carry.count + (nl - start)))
                } else {
                    carry.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[start..<nl]))
                    carry.withUnsafeBytes { emit($0, handle) }
                }
                carry.removeAll(keepingCapacity: carry.capacity <= 64 * 1024)
            }
            lineNumber += 1
            start = nl + 1
        }
    }

    /// Hands out the final unterminated line, if any.
    mutating func finish(_ handle: (Event) -> Void) {
        if skipping {
            skipping = false
        } else if !carry.isEmpty {
            carry.withUnsafeBytes { emit($0, handle) }
            carry.removeAll()
        } else {
            return
        }
        lineNumber += 1
    }

    /// Lines fully handed out (for `IngestResult.lines`).
    var completedLines: Int { lineNumber - 1 }

    @inline(__always)
    private func emit(_ line: UnsafeRawBufferPointer, _ handle: (Event) -> Void) {
        var l = line
        if let last = l.last, last == 0x0D { l = UnsafeRawBufferPointer(rebasing: l[0..<l.count - 1]) }
        if l.count > maxLineBytes {
            handle(.tooLong(number: lineNumber, bytesSeen: l.count))
        } else {
            handle(.line(l, number: lineNumber))
        }
    }
}
