import Foundation
import Testing

/// The conformance scripts under `Scripts/`: each file is one test.
@Suite struct ScriptTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Scripts")

    static let scripts: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".test") }.sorted()
    }()

    @Test func scriptsArePresent() {
        // The resources were copied and none went missing (a renamed script is renamed here too).
        let expected: Set = ["aggregations_extra.test", "collision.test", "functions_extra.test", "functions_math.test", "literals.test", "operators_extra.test", "range_queries.test", "staleness.test"]
        #expect(expected.isSubset(of: Set(Self.scripts)), "found \(Self.scripts)")
    }

    /// Writes every script as JSON for `scripts/promql-compare.py --check-scripts`. Opt-in:
    /// `PROMQL_SCRIPT_EXPORT=<dir>`.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["PROMQL_SCRIPT_EXPORT"] != nil))
    func export() throws {
        let dir = URL(fileURLWithPath: ProcessInfo.processInfo.environment["PROMQL_SCRIPT_EXPORT"]!)
        var all: [[String: Any]] = []
        for name in Self.scripts {
            let text = try String(contentsOf: Self.directory.appendingPathComponent(name), encoding: .utf8)
            all.append(try ScriptRunner(name: name, text: text).exportJSON())
        }
        let data = try JSONSerialization.data(withJSONObject: all)
        try data.write(to: dir.appendingPathComponent("scripts.json"))
    }

    @Test(arguments: scripts)
    func script(_ name: String) async throws {
        let text = try String(contentsOf: Self.directory.appendingPathComponent(name), encoding: .utf8)
        let runner = try ScriptRunner(name: name, text: text)
        try await runner.run()
    }
}
