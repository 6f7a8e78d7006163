import Testing

@testable import StarlingCore

@Suite struct SeriesSamplesTests {
    let labels = Labels(["__name__": "up", "job": "node"])

    /// An inline sample and the same sample in an array read the same through every accessor.
    @Test func inlineSampleReadsLikeAnArray() {
        let s = Sample(1_700_000_000_000, .nan)
        let inline = SeriesSamples(labels: labels, labelsHash: labels.stableHash, sample: s)
        let array = SeriesSamples(labels: labels, samples: [s])
        for x in [inline, array] {
            #expect(x.sampleCount == 1)
            #expect(x.samples.map(\.timestampMs) == [s.timestampMs])
            #expect(x.samples[0].value.bitPattern == s.value.bitPattern)
            #expect(x.withSamples { Array($0) }.map(\.value.bitPattern) == [s.value.bitPattern])
            #expect(x.labelsHash == labels.stableHash)
        }
        #expect(inline.samplesStorageIdentity == nil)
        #expect(array.samplesStorageIdentity != nil)
    }

    /// Changing `samples` in place turns an inline sample into an array and keeps it.
    @Test func mutatingAnInlineSample() {
        var x = SeriesSamples(labels: labels, sample: Sample(10, 1))
        x.samples.append(Sample(20, 2))
        #expect(x.sampleCount == 2)
        #expect(x.samples.map(\.timestampMs) == [10, 20])
        x.samples = []
        #expect(x.sampleCount == 0)
        x.samples.append(Sample(30, 3))
        #expect(x.samples.map(\.timestampMs) == [30])
    }

    /// `samples(in:at:)` points at each entry's own samples, inline or not, for a whole batch.
    @Test func samplesInABatch() {
        var batch: [SeriesSamples] = []
        for i in 0..<50 {
            if i % 3 == 0 {
                let samples = (0..<i % 5).map { k in Sample(Int64(i * 100 + k), Double(k)) }
                batch.append(SeriesSamples(labels: labels, samples: samples))
            } else {
                batch.append(SeriesSamples(labels: labels, sample: Sample(Int64(i), Double(-i))))
            }
        }
        batch.withUnsafeBufferPointer { items in
            for i in items.indices {
                let got = SeriesSamples.samples(in: items, at: i)
                #expect(got.count == batch[i].sampleCount)
                #expect(Array(got).map(\.timestampMs) == batch[i].samples.map(\.timestampMs))
                #expect(Array(got).map(\.value) == batch[i].samples.map(\.value))
            }
        }
    }
}
