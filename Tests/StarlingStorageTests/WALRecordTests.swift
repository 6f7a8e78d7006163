import StarlingCore
import StarlingTestKit
import Testing

@testable import StarlingStorage

@Suite struct WALRecordTests {
    /// The writer moves the series count in front of the entries at the end; counts that need
    /// one, two and three varint bytes, and values kept bit for bit.
    @Test(arguments: [1, 127, 128, 300, 16_384])
    func writerRoundTrips(seriesCount: Int) throws {
        var rng = SeededRandom(seed: UInt64(seriesCount))
        var entries: [WALRecord.Entry] = []
        for i in 0..<seriesCount {
            var t = Int64.random(in: -1_000_000...2_000_000_000_000, using: &rng)
            let samples = (0..<Int.random(in: 1...4, using: &rng)).map { _ in
                t += Int64.random(in: 0...60_000, using: &rng)
                return Sample(t, Double(bitPattern: UInt64.random(in: 0...UInt64.max, using: &rng)))
            }
            entries.append(WALRecord.Entry(id: SeriesID(rawValue: UInt64(i) &* 0x9E37_79B9_7F4A_7C15), samples: samples))
        }
        var w = WALRecord.Writer()
        for e in entries { w.add(e.id, e.samples) }
        #expect(w.seriesCount == seriesCount)
        let bytes = w.finish()
        #expect(bytes == WALRecord.encode(entries))
        let decoded = try WALRecord.decode(bytes)
        #expect(decoded.count == entries.count)
        for (a, b) in zip(decoded, entries) {
            #expect(a.id == b.id)
            #expect(a.samples.map(\.timestampMs) == b.samples.map(\.timestampMs))
            #expect(a.samples.map(\.value.bitPattern) == b.samples.map(\.value.bitPattern))
        }
    }

    @Test func emptyRecordDecodesToNoEntries() throws {
        #expect(try WALRecord.decode(WALRecord.Writer().finish()).isEmpty)
    }
}
