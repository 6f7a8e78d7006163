import StarlingCore
import StarlingProto
import StarlingTestKit
import SwiftProtobuf
import Testing

@testable import StarlingIngest

private func writeRequest(_ series: [([(String, String)], [(Int64, Double)])]) -> [UInt8] {
    var req = Prometheus_WriteRequest()
    req.timeseries = series.map { labels, samples in
        var ts = Prometheus_TimeSeries()
        ts.labels = labels.map { var l = Prometheus_Label(); l.name = $0.0; l.value = $0.1; return l }
        ts.samples = samples.map { var s = Prometheus_Sample(); s.timestamp = $0.0; s.value = $0.1; return s }
        return ts
    }
    return try! req.serializedBytes()
}

/// The cache must never change what a decoder returns: every test decodes with a shared cache
/// (several times, so later passes hit) and compares with decoding without one.
@Suite("Series label cache")
struct SeriesLabelCacheTests {
    /// Random requests over a small pool of series (labels in random order, some invalid, some
    /// samples outside the window): cached results equal uncached ones, pass after pass.
    @Test(arguments: [1, 2, 3] as [UInt64])
    func remoteWriteMatchesUncachedDecoding(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let names = ["up", "node_cpu_seconds_total", "bad-name", "x"]
        var pool: [[(String, String)]] = []
        for k in 0..<40 {
            var labels: [(String, String)] = [("__name__", names[k % names.count]), ("instance", "h\(k % 7)"), ("job", "node")]
            if k % 5 == 0 { labels.append(("cpu", "\(k)")) }
            if k % 11 == 0 { labels.append(("bad label", "v")) }
            pool.append(labels)
        }
        let cache = SeriesLabelCache()
        for _ in 0..<30 {
            var series: [([(String, String)], [(Int64, Double)])] = []
            for _ in 0..<Int.random(in: 1...20, using: &rng) {
                var labels = pool[Int.random(in: 0..<pool.count, using: &rng)]
                if Bool.random(using: &rng) { labels.shuffle(using: &rng) }
                let t = Int.random(in: 0..<20, using: &rng) == 0 ? testNowMs + 10 * Millis.hour : testNowMs - Int64.random(in: 0...60_000, using: &rng)
                series.append((labels, [(t, Double(Int.random(in: 0...100, using: &rng)))]))
            }
            let body = writeRequest(series)
            let plain = RemoteWriteDecoder.decode(body, nowMs: testNowMs)
            let cached = RemoteWriteDecoder.decode(body, nowMs: testNowMs, cache: cache)
            #expect(sameResult(plain, cached))
            #expect(plain.errors.map(\.location.labels) == cached.errors.map(\.location.labels))
        }
        let st = cache.statistics
        #expect(st.hits > 0 && st.misses > 0)
    }

    /// The second identical request is served from the cache, and its series carry the very
    /// label buffer of the first (what lets storage compare labels by pointer).
    @Test func hitsShareTheLabelBuffer() {
        let cache = SeriesLabelCache()
        let body = writeRequest([([("__name__", "up"), ("job", "a")], [(testNowMs, 1)]), ([("__name__", "up"), ("job", "b")], [(testNowMs, 1)])])
        let a = RemoteWriteDecoder.decode(body, nowMs: testNowMs, cache: cache)
        let b = RemoteWriteDecoder.decode(body, nowMs: testNowMs, cache: cache)
        #expect(a.seriesCacheMisses == 2 && a.seriesCacheHits == 0)
        #expect(b.seriesCacheHits == 2 && b.seriesCacheMisses == 0)
        #expect(b.series.map(\.labels) == [L(["__name__": "up", "job": "a"]), L(["__name__": "up", "job": "b"])])
        // Hits hand their labels' hash downstream (deduplication, storage): it must be theirs.
        for x in a.series + b.series { #expect(x.labelsHash == x.labels.stableHash) }
        for (x, y) in zip(a.series, b.series) {
            let same = x.labels.bytes.withUnsafeBytes { p in y.labels.bytes.withUnsafeBytes { q in p.baseAddress == q.baseAddress } }
            #expect(same)
        }
    }

    /// Node and token enrichment, limits and the name policy are part of the key: the same
    /// bytes under other rules must be built again, never served from another rule set's entry.
    @Test func rulesArePartOfTheKey() throws {
        let cache = SeriesLabelCache()
        let body = writeRequest([([("__name__", "http.requests"), ("tenant", "spoof"), ("a", "1"), ("b", "2")], [(testNowMs, 1)])])
        let e1 = try Enricher(overriding: ["tenant": "acme"], defaults: ["node": "n1"])
        let e2 = try Enricher(overriding: ["tenant": "other"], defaults: ["node": "n1"])
        for _ in 0..<2 {
            let r0 = RemoteWriteDecoder.decode(body, nowMs: testNowMs, namePolicy: .sanitize, cache: cache)
            #expect(r0.series.first?.labels == L(["__name__": "http_requests", "tenant": "spoof", "a": "1", "b": "2"]))
            let r1 = RemoteWriteDecoder.decode(body, nowMs: testNowMs, namePolicy: .sanitize, enricher: e1, cache: cache)
            #expect(r1.series.first?.labels == L(["__name__": "http_requests", "tenant": "acme", "a": "1", "b": "2", "node": "n1"]))
            let r2 = RemoteWriteDecoder.decode(body, nowMs: testNowMs, namePolicy: .sanitize, enricher: e2, cache: cache)
            #expect(r2.series.first?.labels == L(["__name__": "http_requests", "tenant": "other", "a": "1", "b": "2", "node": "n1"]))
            // Same bytes, name policy `.reject`: refused, not served from the sanitized entry.
            let r3 = RemoteWriteDecoder.decode(body, nowMs: testNowMs, cache: cache)
            #expect(r3.series.isEmpty && r3.errors.first?.reason == .invalidMetricName)
            // A tighter limit on labels applies to a series already cached under the default.
            var limits = IngestLimits()
            limits.maxLabelsPerSeries = 3
            let r4 = RemoteWriteDecoder.decode(body, nowMs: testNowMs, limits: limits, namePolicy: .sanitize, cache: cache)
            #expect(r4.series.isEmpty && r4.errors.first?.reason == .tooManyLabels)
        }
        #expect(cache.statistics.hits == 3)
    }

    @Test func lineProtocolMatchesUncachedAndKeysOnField() throws {
        let cache = SeriesLabelCache()
        let body = Array("""
            cpu,host=a,region=eu usage=1,idle=2 1700000000000
            cpu,region=eu,host=a usage=3 1700000000000
            cpu,host=a,region=eu usage=4 1700000000001
            mem,host=a free=5i,str="x" 1700000000000
            mem,host=a free=6i 1700000000001
            bad\\ name,host=a v=1 1700000000000
            """.utf8)
        let e = try Enricher(defaults: ["node": "n1"])
        var skipSingle = InfluxNaming()
        skipSingle.skipSingleField = true
        for (naming, db, enricher) in [(InfluxNaming(), nil, Enricher.none), (InfluxNaming(), "telegraf", Enricher.none), (skipSingle, nil, Enricher.none), (InfluxNaming(), nil, e)] as [(InfluxNaming, String?, Enricher)] {
            let plain = LineProtocolParser.parse(body, precision: .milliseconds, nowMs: testNowMs, naming: naming, db: db, enricher: enricher)
            for _ in 0..<2 {
                let cached = LineProtocolParser.parse(body, precision: .milliseconds, nowMs: testNowMs, naming: naming, db: db, enricher: enricher, cache: cache)
                #expect(sameResult(plain, cached))
            }
        }
        let r = LineProtocolParser.parse(body, precision: .milliseconds, nowMs: testNowMs, cache: cache)
        #expect(r.seriesCacheMisses == 0 && r.seriesCacheHits == 7)
        #expect(r.samples(L(["__name__": "cpu_usage", "host": "a", "region": "eu"])).map { $0.map(\.value) } == [1, 3, 4])
        #expect(r.samples(L(["__name__": "cpu_idle", "host": "a", "region": "eu"])).map { $0.map(\.value) } == [2])
        let single = LineProtocolParser.parse(body, precision: .milliseconds, nowMs: testNowMs, naming: skipSingle, cache: cache)
        // The string field counts for "single field": line 4 is mem_free, line 5 is mem.
        #expect(single.samples(L(["__name__": "mem", "host": "a"])).map { $0.map(\.value) } == [6])
        #expect(single.samples(L(["__name__": "mem_free", "host": "a"])).map { $0.map(\.value) } == [5])
        let withDB = LineProtocolParser.parse(body, precision: .milliseconds, nowMs: testNowMs, db: "telegraf", cache: cache)
        #expect(withDB.samples(L(["__name__": "mem_free", "host": "a", "db": "telegraf"])) != nil)
    }

    /// The memory bound holds: with room for a few entries, many distinct series keep the cache
    /// within `maxBytes`, evictions are counted and results stay right.
    @Test func staysWithinItsBound() {
        let cache = SeriesLabelCache(settings: .init(maxBytes: 4_096))
        var evictions = 0
        for round in 0..<3 {
            for k in 0..<200 {
                let body = writeRequest([([("__name__", "m"), ("k", "\(k)")], [(testNowMs + Int64(round), Double(k))])])
                let r = RemoteWriteDecoder.decode(body, nowMs: testNowMs, cache: cache)
                #expect(r.series.first?.labels == L(["__name__": "m", "k": "\(k)"]))
                evictions += r.seriesCacheEvictions
            }
        }
        let st = cache.statistics
        #expect(st.bytes <= 4_096)
        #expect(evictions > 0 && UInt64(evictions) == st.evictions)
    }

    /// A different key with the same hash, or an entry from a context issued before the
    /// contexts were cleared, is a miss — never another series' labels.
    @Test func collisionsAndStaleContextsMiss() {
        let cache = SeriesLabelCache(settings: .init(maxContexts: 2))
        var ev = 0
        let (c1, _) = cache.context([1])
        let a: [UInt8] = Array("series-a".utf8), b: [UInt8] = Array("series-b".utf8)
        a.withUnsafeBytes { _ = cache.insert($0, hash: 42, context: c1, labels: L(["__name__": "a"])) }
        #expect(a.withUnsafeBytes { cache.lookup($0, hash: 42, context: c1, evicted: &ev)?.labels } == L(["__name__": "a"]))
        #expect(b.withUnsafeBytes { cache.lookup($0, hash: 42, context: c1, evicted: &ev)?.labels } == nil)
        let (c2, _) = cache.context([2])
        #expect(a.withUnsafeBytes { cache.lookup($0, hash: 42, context: c2, evicted: &ev)?.labels } == nil)
        let (_, evicted) = cache.context([3])  // over maxContexts: everything goes
        #expect(evicted == 1)
        let (c1Again, _) = cache.context([1])
        #expect(a.withUnsafeBytes { cache.lookup($0, hash: 42, context: c1, evicted: &ev)?.labels } == nil)
        #expect(a.withUnsafeBytes { cache.lookup($0, hash: 42, context: c1Again, evicted: &ev)?.labels } == nil)
    }
}
