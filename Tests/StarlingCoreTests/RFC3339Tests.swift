import StarlingCore
import Testing

@Suite struct RFC3339Tests {
    @Test func fractionsAsGoPrintsThem() {
        #expect(rfc3339(ms: 1_764_860_700_000) == "2025-12-04T15:05:00Z")
        #expect(rfc3339(ms: 1_764_860_700_120) == "2025-12-04T15:05:00.12Z")
        #expect(rfc3339(ms: 1_764_860_700_007) == "2025-12-04T15:05:00.007Z")
        #expect(rfc3339(ms: 0) == "1970-01-01T00:00:00Z")
        #expect(rfc3339(ms: -1) == "1969-12-31T23:59:59.999Z")
    }

    @Test func fixedMillisecondsAndWholeSeconds() {
        #expect(rfc3339(ms: 1_764_860_700_120, fraction: .milliseconds) == "2025-12-04T15:05:00.120Z")
        #expect(rfc3339(ms: 1_764_860_700_000, fraction: .milliseconds) == "2025-12-04T15:05:00.000Z")
        #expect(rfc3339(ms: -1, fraction: .milliseconds) == "1969-12-31T23:59:59.999Z")
        #expect(rfc3339(ms: 1_764_860_700_999, fraction: .none) == "2025-12-04T15:05:00Z")
        #expect(rfc3339(ms: -1, fraction: .none) == "1969-12-31T23:59:59Z")
    }
}
