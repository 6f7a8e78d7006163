import StarlingCore

/// The identity of an alert: a 64-bit hash of its label set.
///
/// Computed exactly as Prometheus's `model.LabelSet.Fingerprint()` (which Alertmanager shows as
/// an alert's `fingerprint` and uses for dedup and its notification log): FNV-1a 64 over, for
/// each label in byte order of names, `name 0xFF value 0xFF`; the empty set hashes to the FNV
/// offset basis. Empty values are absent labels in `Labels`, and Prometheus skips nothing, so
/// the two agree whenever the label set has no empty values (Alertmanager rejects those).
///
/// This value is persisted (alert state, notification log) and appears in the API as 16
/// lowercase hex digits: it must never change.
public struct AlertFingerprint: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public init(_ labels: Labels) {
        var h = Self.offsetBasis
        labels.forEachRaw { name, value in
            for b in name { h = (h ^ UInt64(b)) &* Self.prime }
            h = (h ^ 0xFF) &* Self.prime
            for b in value { h = (h ^ UInt64(b)) &* Self.prime }
            h = (h ^ 0xFF) &* Self.prime
        }
        rawValue = h
    }

    /// Parses the 16-hex-digit form (as in `/api/v2/alerts` output).
    public init?(hex: String) {
        guard hex.utf8.count == 16, let v = UInt64(hex, radix: 16) else { return nil }
        rawValue = v
    }

    static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    static let prime: UInt64 = 0x0000_0100_0000_01b3

    public var description: String {
        let s = String(rawValue, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    public static func < (a: AlertFingerprint, b: AlertFingerprint) -> Bool { a.rawValue < b.rawValue }
}

extension Labels {
    /// This label set's alert fingerprint (see `AlertFingerprint`).
    public var alertFingerprint: AlertFingerprint { AlertFingerprint(self) }
}
