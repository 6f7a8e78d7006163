import StarlingCore
import StarlingIngest

/// A fixed "now" for tests: 2023-11-14T22:13:20Z.
let testNowMs: Int64 = 1_700_000_000_000

func L(_ pairs: KeyValuePairs<String, String>) -> Labels { Labels(pairs) }

extension IngestResult {
    /// Series as a dictionary (label text → samples) for order-independent comparisons.
    var seriesByLabels: [Labels: [Sample]] {
        var d: [Labels: [Sample]] = [:]
        for s in series { d[s.labels, default: []].append(contentsOf: s.samples) }
        return d
    }

    /// Samples of the series with exactly these labels.
    func samples(_ labels: Labels) -> [Sample]? { seriesByLabels[labels] }
}

func sameSamples(_ a: [Sample], _ b: [Sample]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.bitwiseEqual($1) }
}

/// Compares two results field by field (series order included), sample values bitwise.
func sameResult(_ a: IngestResult, _ b: IngestResult) -> Bool {
    guard a.series.count == b.series.count else { return false }
    for (x, y) in zip(a.series, b.series) where x.labels != y.labels || !sameSamples(x.samples, y.samples) {
        return false
    }
    return a.acceptedSamples == b.acceptedSamples && a.rejectedSamples == b.rejectedSamples
        && a.rejectedSamplesByReason == b.rejectedSamplesByReason && a.errors == b.errors
        && a.errorCount == b.errorCount && a.duplicateSamplesDropped == b.duplicateSamplesDropped
        && a.skippedStringFields == b.skippedStringFields && a.lines == b.lines
}
