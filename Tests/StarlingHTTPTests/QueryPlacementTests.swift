import Foundation
import Glibc
import NIOPosix
import Synchronization
import StarlingPromQL
import Testing

@testable import StarlingHTTP

@Suite struct QueryPlacementTests {
    static func params(_ pairs: [(String, String)]) -> FormParameters { FormParameters(pairs) }

    @Test func aQueryRunsInlineOnlyAfterARunWithinTheBudget() {
        let p = QueryPlacement(budget: .milliseconds(1))
        let key = QueryPlacement.instantKey(Self.params([("query", "up")]))
        #expect(!p.runsInline(key))  // never seen: the pool
        p.record(key, .microseconds(300))
        #expect(p.runsInline(key))
        p.record(key, .milliseconds(1))
        #expect(p.runsInline(key))  // the budget itself still runs inline
        p.record(key, .microseconds(1_001))
        #expect(!p.runsInline(key))  // overran: back to the pool
        #expect(!p.runsInline(nil))
        // A zero budget keeps everything on the pool.
        let off = QueryPlacement(budget: .zero)
        off.record(key, .zero)
        #expect(!off.runsInline(key))
    }

    @Test func memoryStartsOverWhenFull() {
        let p = QueryPlacement(budget: .milliseconds(1), maxEntries: 3)
        let keys = (0..<4).map { QueryPlacement.instantKey(Self.params([("query", "q\($0)")])) }
        for k in keys.prefix(3) { p.record(k, .zero) }
        #expect(keys.prefix(3).allSatisfy { p.runsInline($0) })
        p.record(keys[0], .zero)  // known: no reset
        #expect(p.runsInline(keys[2]))
        p.record(keys[3], .zero)  // a fourth shape: forget the others
        #expect(p.runsInline(keys[3]))
        #expect(!p.runsInline(keys[0]) && !p.runsInline(keys[2]))
    }

    @Test func rangeKeysFollowTheShapeNotTheWindow() {
        func key(_ start: String, _ end: String, _ step: String, _ q: String = "rate(x[5m])") -> String? {
            QueryPlacement.rangeKey(Self.params([("query", q), ("start", start), ("end", end), ("step", step)]))
        }
        let base = key("1700000000", "1700003600", "15s")
        #expect(base != nil)
        // A dashboard refresh slides the window: same key.
        #expect(key("1700000030", "1700003630", "15s") == base)
        #expect(key("1700000030", "1700003630", "15") == base)  // seconds as a number
        // More steps or another expression: another key.
        #expect(key("1700000000", "1700007200", "15s") != base)
        #expect(key("1700000000", "1700003600", "1s") != base)
        #expect(key("1700000000", "1700003600", "15s", "up") != base)
        #expect(QueryPlacement.instantKey(Self.params([("query", "rate(x[5m])")])) != base)
        // Parameters the API refuses: not remembered.
        #expect(key("x", "1700003600", "15s") == nil)
        #expect(key("1700003600", "1700000000", "15s") == nil)
        #expect(key("1700000000", "1700003600", "0") == nil)
        #expect(key("1700000000", "1700003600", "-5s") == nil)
        #expect(key("1700000000", "1700003600", "0.0001") == nil)  // under a millisecond: refused
        // Times far enough apart that their span overflows 64 bits.
        #expect(key("-9100000000000000", "9100000000000000", "1000000000") == nil)
        #expect(QueryPlacement.instantKey(Self.params([("query", String(repeating: "x", count: 5000))])) == nil)
    }

    /// The first run takes the pool's thread; once its cost is known to fit the budget, the next
    /// runs on the caller's. A run that overruns sends the following one back to the pool.
    @Test func runChoosesTheThread() async throws {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let executor = BlockingExecutor(pool: pool)
        let placements = Mutex<[Bool]>([])
        let p = QueryPlacement(budget: .milliseconds(50), placed: { inline in placements.withLock { $0.append(inline) } })
        let key = QueryPlacement.instantKey(Self.params([("query", "up")]))
        @Sendable func onPool() -> Bool { NIOThreadPool.isOnPoolThread }
        #expect(try await p.run(key, pool: executor) { onPool() })
        #expect(try await p.run(key, pool: executor) { onPool() } == false)
        _ = try await p.run(key, pool: executor) { () -> Bool in
            usleep(100_000)  // overruns the budget, inline
            return true
        }
        #expect(try await p.run(key, pool: executor) { onPool() })
        #expect(placements.withLock { $0 } == [false, true, true, false])
        try await pool.shutdownGracefully()
    }
}

extension NIOThreadPool {
    /// Whether the calling thread is one of a `NIOThreadPool`'s (their names start with `TP-`).
    static var isOnPoolThread: Bool {
        ((try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "").hasPrefix("TP-")
    }
}
