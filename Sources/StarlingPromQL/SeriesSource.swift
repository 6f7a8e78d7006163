import StarlingChunk
import StarlingCore

/// The engine's read path: a `Querier` asked for series by matchers, streamed one series at a
/// time, each series' chunks decoded (merged, deduplicated, trimmed to the selected range) just
/// before it is evaluated and dropped right after. The engine never holds a whole series set.
struct SeriesSource: Sendable {
    let querier: any Querier

    func select(_ matchers: [LabelMatcher], hints: SelectHints, state: QueryState) async throws(PromQLError) -> SelectedSeries {
        do {
            let set = try await querier.select(matchers, hints: hints)
            return SelectedSeries(set: set, minTimeMs: hints.startMs, maxTimeMs: hints.endMs, state: state)
        } catch let e as PromQLError {
            throw e
        } catch {
            if Task.isCancelled { throw .canceled }
            throw .storage("expanding series: \(error)")
        }
    }
}

/// An open selection: series in label order, decoded on demand.
final class SelectedSeries {
    private let set: any SeriesSet
    private let minTimeMs: Int64
    private let maxTimeMs: Int64
    private let state: QueryState

    init(set: any SeriesSet, minTimeMs: Int64, maxTimeMs: Int64, state: QueryState) {
        self.set = set
        self.minTimeMs = minTimeMs
        self.maxTimeMs = maxTimeMs
        self.state = state
    }

    /// The next series' labels, with its samples in `[minTimeMs, maxTimeMs]` (time order, one per
    /// timestamp, stale markers kept) written into `samples`. Nil at the end; warnings of the
    /// selection are then added to the query's.
    func next(into samples: inout [Sample]) async throws(PromQLError) -> Labels? {
        try state.checkCanceledNow()
        let item: SeriesChunks?
        do {
            item = try await set.next()
        } catch let e as PromQLError {
            throw e
        } catch {
            if Task.isCancelled { throw .canceled }
            throw .storage("expanding series: \(error)")
        }
        guard let series = item else {
            state.addWarnings(set.warnings)
            return nil
        }
        samples.removeAll(keepingCapacity: true)
        do {
            var it = SeriesSampleIterator(chunks: series.chunks, minTimeMs: minTimeMs, maxTimeMs: maxTimeMs)
            while try it.next() {
                samples.append(Sample(it.timestampMs, canonicalStorageValue(it.value)))
            }
        } catch {
            throw .storage("decoding chunks of \(promLabelsString(series.labels)): \(error)")
        }
        return series.labels
    }
}
