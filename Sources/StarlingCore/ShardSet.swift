/// A set of shards as a bitmap: 128 bytes for the default 1024 shards, constant-time membership.
///
/// Used for peer reports ("shards I hold complete") and per-node shard lists. Equality and
/// hashing ignore trailing empty words, so two sets with the same members are equal however they
/// were built.
public struct ShardSet: Hashable, Sendable, Sequence, ExpressibleByArrayLiteral, CustomStringConvertible {
    @usableFromInline var words: [UInt64]

    public init() { words = [] }

    public init(_ shards: some Sequence<ShardID>) {
        words = []
        for s in shards { insert(s) }
    }

    public init(arrayLiteral elements: ShardID...) { self.init(elements) }

    @inlinable
    public func contains(_ shard: ShardID) -> Bool {
        let w = Int(shard.rawValue) >> 6
        return w < words.count && words[w] & (1 << UInt64(shard.rawValue & 63)) != 0
    }

    /// Inserts `shard`; returns whether it was absent.
    @discardableResult
    public mutating func insert(_ shard: ShardID) -> Bool {
        let w = Int(shard.rawValue) >> 6
        if w >= words.count { words.append(contentsOf: repeatElement(0, count: w + 1 - words.count)) }
        let bit: UInt64 = 1 << UInt64(shard.rawValue & 63)
        defer { words[w] |= bit }
        return words[w] & bit == 0
    }

    /// Removes `shard`; returns whether it was present.
    @discardableResult
    public mutating func remove(_ shard: ShardID) -> Bool {
        let w = Int(shard.rawValue) >> 6
        guard w < words.count else { return false }
        let bit: UInt64 = 1 << UInt64(shard.rawValue & 63)
        defer { words[w] &= ~bit }
        return words[w] & bit != 0
    }

    public var count: Int { words.reduce(0) { $0 + $1.nonzeroBitCount } }
    public var isEmpty: Bool { words.allSatisfy { $0 == 0 } }

    public func isSuperset(of other: ShardSet) -> Bool {
        for (i, w) in other.words.enumerated() where w != 0 {
            if i >= words.count || words[i] & w != w { return false }
        }
        return true
    }

    public static func == (a: ShardSet, b: ShardSet) -> Bool {
        let n = Swift.max(a.words.count, b.words.count)
        for i in 0..<n {
            let x = i < a.words.count ? a.words[i] : 0
            let y = i < b.words.count ? b.words[i] : 0
            if x != y { return false }
        }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        var end = words.count
        while end > 0, words[end - 1] == 0 { end -= 1 }
        hasher.combine(end)
        for i in 0..<end { hasher.combine(words[i]) }
    }

    public struct Iterator: IteratorProtocol {
        let words: [UInt64]
        var index = 0
        var current: UInt64

        init(words: [UInt64]) {
            self.words = words
            current = words.first ?? 0
        }

        public mutating func next() -> ShardID? {
            while current == 0 {
                index += 1
                guard index < words.count else { return nil }
                current = words[index]
            }
            let bit = current.trailingZeroBitCount
            current &= current - 1
            return ShardID(rawValue: UInt16(index << 6 | bit))
        }
    }

    public func makeIterator() -> Iterator { Iterator(words: words) }

    /// Ranges of consecutive shards, e.g. `0-3,7,9-12`.
    public var description: String {
        var parts: [String] = []
        var start: Int?
        var prev = -2
        func flush() {
            guard let s = start else { return }
            parts.append(s == prev ? "\(s)" : "\(s)-\(prev)")
        }
        for shard in self {
            let v = Int(shard.rawValue)
            if v != prev + 1 {
                flush()
                start = v
            }
            prev = v
        }
        flush()
        return "{" + parts.joined(separator: ",") + "}"
    }
}
