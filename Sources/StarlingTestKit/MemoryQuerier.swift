import StarlingChunk
import StarlingCore
import Synchronization

/// An in-memory `Querier` for tests: series appended with `add`, stored as chunks produced by
/// the real `ChunkEncoder`, answered with the ordering and range rules of the `Querier` contract
/// (sorted unique label sets, chunks overlapping the range). It can inject warnings to exercise
/// partial-result paths, and counts the selects it served.
public final class MemoryQuerier: Querier, Sendable {
    private struct Series {
        var labels: Labels
        var samples: [Sample]
        var chunks: [EncodedChunk]
    }

    private struct State {
        var series: [Labels: Series] = [:]
        var warnings: [String] = []
        var selects = 0
    }

    private let state = Mutex(State())
    /// Samples per encoded chunk; small values exercise multi-chunk merging.
    private let samplesPerChunk: Int

    public init(samplesPerChunk: Int = 120) {
        self.samplesPerChunk = samplesPerChunk
    }

    /// Adds samples to a series (merged with what it has; a repeated timestamp keeps the later value).
    public func add(_ labels: Labels, _ samples: [Sample]) {
        state.withLock { st in
            var s = st.series[labels] ?? Series(labels: labels, samples: [], chunks: [])
            var byTime: [Int64: Double] = [:]
            for x in s.samples { byTime[x.timestampMs] = x.value }
            for x in samples { byTime[x.timestampMs] = x.value }
            s.samples = byTime.map { Sample($0.key, $0.value) }.sorted { $0.timestampMs < $1.timestampMs }
            s.chunks = ChunkEncoder.encode(s.samples, maxSamplesPerChunk: samplesPerChunk)
            st.series[labels] = s
        }
    }

    public func clear() { state.withLock { $0.series.removeAll() } }

    /// Warnings returned with every answer, as a fan-out querier with a missing shard would.
    public func setWarnings(_ w: [String]) { state.withLock { $0.warnings = w } }

    public var selectCount: Int { state.withLock { $0.selects } }

    private func matching(_ matchers: [LabelMatcher], _ startMs: Int64, _ endMs: Int64) -> [Series] {
        state.withLock { st in
            st.series.values
                .filter { matchers.matches($0.labels) && $0.chunks.contains { $0.overlaps(startMs, endMs) } }
                .sorted { $0.labels < $1.labels }
        }
    }

    public func select(_ matchers: [LabelMatcher], hints: SelectHints) async throws -> any SeriesSet {
        let found = matching(matchers, hints.startMs, hints.endMs)
        let (warnings, _) = state.withLock { st -> ([String], Int) in
            st.selects += 1
            return (st.warnings, st.selects)
        }
        var items = found.map { s in
            SeriesChunks(labels: s.labels, chunks: s.chunks.filter { $0.overlaps(hints.startMs, hints.endMs) })
        }
        var w = warnings
        if let limit = hints.limit, items.count > limit {
            items = Array(items.prefix(limit))
            w.append("results truncated to \(limit) series")
        }
        return ArraySeriesSet(items, warnings: w)
    }

    private func union(_ sets: [[LabelMatcher]], _ startMs: Int64, _ endMs: Int64) -> [Series] {
        if sets.isEmpty { return matching([], startMs, endMs) }
        var seen = Set<Labels>()
        var out: [Series] = []
        for m in sets {
            for s in matching(m, startMs, endMs) where seen.insert(s.labels).inserted { out.append(s) }
        }
        return out.sorted { $0.labels < $1.labels }
    }

    public func series(_ matcherSets: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[Labels]> {
        var l = union(matcherSets, startMs, endMs).map(\.labels)
        if let limit, l.count > limit { l = Array(l.prefix(limit)) }
        return QueryResult(l, warnings: state.withLock { $0.warnings })
    }

    public func labelNames(_ matcherSets: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[String]> {
        var names = Set<String>()
        for s in union(matcherSets, startMs, endMs) { for l in s.labels.array { names.insert(l.name) } }
        var out = names.sorted(by: utf8Less)
        if let limit, out.count > limit { out = Array(out.prefix(limit)) }
        return QueryResult(out, warnings: state.withLock { $0.warnings })
    }

    public func labelValues(_ name: String, _ matcherSets: [[LabelMatcher]], startMs: Int64, endMs: Int64, limit: Int?) async throws -> QueryResult<[String]> {
        var values = Set<String>()
        for s in union(matcherSets, startMs, endMs) { if let v = s.labels.get(name) { values.insert(v) } }
        var out = values.sorted(by: utf8Less)
        if let limit, out.count > limit { out = Array(out.prefix(limit)) }
        return QueryResult(out, warnings: state.withLock { $0.warnings })
    }
}
