/// Operations on postings lists: strictly increasing arrays of series IDs (raw values).
public enum Postings {
    /// Intersection of sorted lists, smallest first for speed.
    public static func intersect(_ lists: [[UInt64]]) -> [UInt64] {
        guard var result = lists.min(by: { $0.count < $1.count }) else { return [] }
        for list in lists where !result.isEmpty {
            if list.count == result.count && list == result { continue }
            result = intersect(result, list)
        }
        return result
    }

    public static func intersect(_ a: [UInt64], _ b: [UInt64]) -> [UInt64] {
        var out: [UInt64] = []
        out.reserveCapacity(min(a.count, b.count))
        var i = 0, j = 0
        while i < a.count && j < b.count {
            let x = a[i], y = b[j]
            if x == y { out.append(x); i += 1; j += 1 } else if x < y { i += 1 } else { j += 1 }
        }
        return out
    }

    /// Union of sorted lists.
    public static func union(_ lists: [[UInt64]]) -> [UInt64] {
        let nonEmpty = lists.filter { !$0.isEmpty }
        if nonEmpty.isEmpty { return [] }
        if nonEmpty.count == 1 { return nonEmpty[0] }
        if nonEmpty.count == 2 { return union(nonEmpty[0], nonEmpty[1]) }
        var all = nonEmpty.flatMap { $0 }
        all.sort()
        return dedupSorted(all)
    }

    public static func union(_ a: [UInt64], _ b: [UInt64]) -> [UInt64] {
        var out: [UInt64] = []
        out.reserveCapacity(a.count + b.count)
        var i = 0, j = 0
        while i < a.count && j < b.count {
            let x = a[i], y = b[j]
            if x == y { out.append(x); i += 1; j += 1 } else if x < y { out.append(x); i += 1 } else { out.append(y); j += 1 }
        }
        out.append(contentsOf: a[i...])
        out.append(contentsOf: b[j...])
        return out
    }

    /// Elements of `a` not in `b`.
    public static func subtract(_ a: [UInt64], _ b: [UInt64]) -> [UInt64] {
        if b.isEmpty { return a }
        var out: [UInt64] = []
        out.reserveCapacity(a.count)
        var j = 0
        for x in a {
            while j < b.count && b[j] < x { j += 1 }
            if j < b.count && b[j] == x { continue }
            out.append(x)
        }
        return out
    }

    public static func dedupSorted(_ a: [UInt64]) -> [UInt64] {
        guard var prev = a.first else { return [] }
        var out: [UInt64] = [prev]
        out.reserveCapacity(a.count)
        for x in a.dropFirst() where x != prev {
            out.append(x)
            prev = x
        }
        return out
    }
}
