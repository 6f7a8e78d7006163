import StarlingCore

/// A node's identity: 128 random bits chosen once, when a data directory is first used, and kept
/// for the life of that data directory.
///
/// Membership is keyed by `NodeID`, never by address. That is what makes two situations safe:
/// - a container that comes back with a new IP keeps its ID, so peers update its address instead
///   of seeing a second node (it announces itself with a higher incarnation);
/// - a fresh node that happens to reuse a dead node's address has a different ID, so it is a new
///   member, and pings addressed to the old ID are refused by it (`SWIMMessage.ping.target`), which
///   lets the old member be declared dead instead of being kept alive by an impostor's acks.
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let high: UInt64
    public let low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// A new random ID drawn from `random` (the shell passes a system-seeded generator, tests a
    /// seeded one).
    public static func random<R: RandomNumberGenerator>(using random: inout R) -> NodeID {
        NodeID(high: random.next(), low: random.next())
    }

    /// Parses the 32-hex-digit form produced by `description`.
    public init?(hex: some StringProtocol) {
        guard hex.utf8.count == 32,
              let h = UInt64(hex.prefix(16), radix: 16),
              let l = UInt64(hex.suffix(16), radix: 16) else { return nil }
        self.init(high: h, low: l)
    }

    public static func < (a: NodeID, b: NodeID) -> Bool { (a.high, a.low) < (b.high, b.low) }

    /// 32 lowercase hex digits.
    public var description: String { Self.hex16(high) + Self.hex16(low) }

    /// The first 8 hex digits, for logs.
    public var short: String { String(description.prefix(8)) }

    static func hex16(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}

/// The cluster a node belongs to. Every datagram and push-pull frame carries the 64-bit
/// fingerprint of the cluster ID, and a node drops anything whose fingerprint differs, so two
/// clusters whose seed lists accidentally overlap never merge. The fingerprint is XXH64 of the
/// UTF-8 name with seed 0: stable across nodes, processes and releases.
public struct ClusterID: Hashable, Sendable, CustomStringConvertible {
    public let name: String
    public let fingerprint: UInt64

    public init(_ name: String) {
        self.name = name
        self.fingerprint = XXH64.hash(name)
    }

    public static let `default` = ClusterID("starling")
    public var description: String { name }
}

/// A gossip endpoint: a host (an IP literal or, for seeds only, a DNS name the shell resolves)
/// and a port. Kept as text so the pure core does not depend on a socket address type.
public struct GossipAddress: Hashable, Sendable, CustomStringConvertible, Comparable {
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port`, `[v6]:port`; the port is required and must be 1...65535 (0 too with
    /// `allowZeroPort`, for bind addresses: pick a free port).
    public init?(parsing text: some StringProtocol, allowZeroPort: Bool = false) {
        let s = String(text).trimmingWhitespace()
        guard let colon = s.lastIndex(of: ":") else { return nil }
        var host = String(s[s.startIndex..<colon])
        let portText = s[s.index(after: colon)...]
        guard let port = UInt16(portText), port > 0 || allowZeroPort else { return nil }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, host.utf8.count <= Limits.maxHostBytes else { return nil }
        self.init(host: host, port: port)
    }

    /// Parses a comma-separated `host:port` list (the `--join` flag); empty items are skipped.
    public static func parseList(_ text: String) -> [GossipAddress]? {
        var out: [GossipAddress] = []
        for item in text.split(separator: ",") {
            let trimmed = String(item).trimmingWhitespace()
            if trimmed.isEmpty { continue }
            guard let a = GossipAddress(parsing: trimmed) else { return nil }
            out.append(a)
        }
        return out
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public static func < (a: GossipAddress, b: GossipAddress) -> Bool { (a.host, a.port) < (b.host, b.port) }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
