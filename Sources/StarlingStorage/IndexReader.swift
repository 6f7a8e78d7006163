import StarlingCore

/// Reads the per-block inverted index (postings keys, see `Keyspace`). Evaluates label matchers
/// the way Prometheus's `PostingsForMatchers` does: positive matchers intersect, matchers that
/// accept the empty value (so series *without* the label qualify) subtract the series whose value
/// they reject, and a selector with only such matchers starts from the block's all-series list.
/// Values are never scanned for `=` and literal alternations (`=~"a|b"`); other regexes walk the
/// label's distinct values with a skip-scan (one seek per value), never all postings.
struct IndexReader {
    let store: any KeyValueStore
    /// Lists read before (`TimeSeriesDB.postingsCache`); nil reads every list from the store.
    var cache: PostingsCache? = nil

    /// Series IDs of one label pair in a block.
    func postings(block: Int32, name: String, value: String) throws -> [UInt64] {
        guard Self.isStorable(name), Self.isStorable(value) else { return [] }
        let prefix = Keyspace.postingsPrefix(block: block, name: name, value: value)
        guard let cache, cache.isEnabled else { return try collectIDs(prefix: prefix) }
        let key = PostingsCache.Key(block: block, name: name, value: value)
        if case .ids(let ids) = cache.lookup(key) { return ids }
        let token = cache.token
        let ids = try collectIDs(prefix: prefix)
        cache.insert(key, ids, token: token)
        return ids
    }

    /// The list of one `name="value"` pair from the cache, or read whole and cached when it has
    /// at most `cache.maxListIDs` IDs; nil when it is longer (the caller joins by seeking).
    private func shortPostings(block: Int32, name: String, value: String, cache: PostingsCache) throws -> [UInt64]? {
        let key = PostingsCache.Key(block: block, name: name, value: value)
        switch cache.lookup(key) {
        case .ids(let ids): return ids
        case .tooLong: return nil
        case nil: break
        }
        let token = cache.token
        guard let ids = try collectIDs(prefix: Keyspace.postingsPrefix(block: block, name: name, value: value), limit: cache.maxListIDs) else {
            cache.insert(key, .tooLong, token: token)
            return nil
        }
        cache.insert(key, .ids(ids), token: token)
        return ids
    }

    /// Whether a label name or value can be in the index: stored ones never hold a NUL byte
    /// (the store refuses such series), and a NUL in a matcher's name or value would end the
    /// key prefix early, so its prefix would cover the keys of another name or value (`a="x\0"`
    /// those of `a="x"`). Matchers with one select nothing by that name or value.
    static func isStorable(_ s: String) -> Bool { !s.utf8.contains(0) }

    /// Every series indexed in a block.
    func allPostings(block: Int32) throws -> [UInt64] {
        // The all-series list is the posting list of the empty name and value.
        try postings(block: block, name: "", value: "")
    }

    private func collectIDs(prefix: [UInt8]) throws -> [UInt64] {
        try collectIDs(prefix: prefix, limit: .max) ?? []
    }

    /// The IDs under `prefix`; nil when there are more than `limit`.
    private func collectIDs(prefix: [UInt8], limit: Int) throws -> [UInt64]? {
        let it = try store.makeIterator(lowerBound: prefix, upperBound: Keyspace.prefixEnd(prefix))
        it.seekToFirst()
        var ids: [UInt64] = []
        while it.isValid {
            if ids.count == limit { return nil }
            ids.append(it.withKey { Keyspace.seriesID(fromPostingKey: $0).rawValue })
            it.next()
        }
        try it.checkError()
        return ids
    }

    /// Walks the distinct values of `name` in `block`; for each value `body` returns whether its
    /// postings are wanted; returns the union of the wanted postings.
    func postings(block: Int32, name: String, where wanted: (String) -> Bool) throws -> [UInt64] {
        guard Self.isStorable(name) else { return [] }
        let prefix = Keyspace.postingsNamePrefix(block: block, name: name)
        let it = try store.makeIterator(lowerBound: prefix, upperBound: Keyspace.prefixEnd(prefix))
        it.seekToFirst()
        var ids: [UInt64] = []
        var sorted = true
        var last: UInt64 = 0
        while it.isValid {
            // key = prefix | value | 00 | id(8)
            let (valueBytes, keyCount) = it.withKey { k in (Array(k[prefix.count..<(k.count - 9)]), k.count) }
            _ = keyCount
            let value = String(decoding: valueBytes, as: UTF8.self)
            if wanted(value) {
                var groupPrefix = prefix
                groupPrefix.append(contentsOf: valueBytes)
                groupPrefix.append(0)
                while it.isValid {
                    let (inGroup, id) = it.withKey { k -> (Bool, UInt64) in
                        guard k.count == groupPrefix.count + 8, k.starts(with: groupPrefix) else { return (false, 0) }
                        return (true, Keyspace.seriesID(fromPostingKey: k).rawValue)
                    }
                    if !inGroup { break }
                    if id < last { sorted = false }
                    last = id
                    ids.append(id)
                    it.next()
                }
            } else {
                var skip = prefix
                skip.append(contentsOf: valueBytes)
                skip.append(1)
                it.seek(skip)
            }
        }
        try it.checkError()
        if !sorted {
            ids.sort()
            ids = Postings.dedupSorted(ids)
        }
        return ids
    }

    /// Series matching all `matchers` in `block`.
    func postings(block: Int32, matchers: [LabelMatcher]) throws -> [UInt64] {
        var positive: [[UInt64]] = []
        var negative: [[UInt64]] = []
        // Two or more single-value equality matchers (`__name__` and one label, as in most
        // rules and dashboards) are joined by seeking, not by reading every posting of each:
        // `m{k="v"}` then costs about one seek per series of the smallest list, not a read of
        // all series named m.
        let equalities = matchers.filter { $0.kind == .equal && !$0.matchesEmpty }
        if equalities.count >= 2 {
            let joined = try joinEqualities(block: block, equalities)
            if joined.isEmpty { return [] }
            positive.append(joined)
        }
        for m in matchers {
            if m.kind == .regexMatch, m.value == ".*" { continue }  // matches everything
            if equalities.count >= 2, m.kind == .equal, !m.matchesEmpty { continue }  // joined above
            if m.matchesEmpty {
                // Series without the label qualify; drop those whose value m rejects.
                switch m.kind {
                case .notEqual:
                    negative.append(try postings(block: block, name: m.name, value: m.value))
                case .regexNoMatch:
                    if let literals = m.pattern?.literalAlternatives {
                        negative.append(Postings.union(try literals.filter { !$0.isEmpty }.map {
                            try postings(block: block, name: m.name, value: $0)
                        }))
                    } else {
                        negative.append(try postings(block: block, name: m.name) { !m.matches($0) })
                    }
                case .equal, .regexMatch:
                    negative.append(try postings(block: block, name: m.name) { !m.matches($0) })
                }
            } else {
                if let set = m.setMatches {
                    let lists = try set.filter { !$0.isEmpty }.map { try postings(block: block, name: m.name, value: $0) }
                    positive.append(Postings.union(lists))
                } else {
                    positive.append(try postings(block: block, name: m.name) { m.matches($0) })
                }
                if positive.last!.isEmpty { return [] }
            }
        }
        var result = positive.isEmpty ? try allPostings(block: block) : Postings.intersect(positive)
        for n in negative where !result.isEmpty {
            result = Postings.subtract(result, n)
        }
        return result
    }

    /// Joins `name="value"` lists: in memory when every list is cached or short enough to read
    /// whole (and cache), else by leapfrog over store iterators.
    private func joinEqualities(block: Int32, _ matchers: [LabelMatcher]) throws -> [UInt64] {
        guard let cache, cache.isEnabled else { return try leapfrog(block: block, matchers) }
        guard matchers.allSatisfy({ Self.isStorable($0.name) && Self.isStorable($0.value) }) else { return [] }
        var lists: [[UInt64]] = []
        for m in matchers {
            guard let ids = try shortPostings(block: block, name: m.name, value: m.value, cache: cache) else {
                return try leapfrog(block: block, matchers)
            }
            if ids.isEmpty { return [] }
            lists.append(ids)
        }
        return Postings.intersect(lists)
    }

    /// Steps an iterator takes with `next` before it seeks instead, when it trails the join's
    /// target. A step within a data block costs tens of nanoseconds, a seek a few microseconds
    /// (a binary search in every level and the memtable): lists of similar length, whose IDs
    /// interleave, advance by steps; a short list against a long one still jumps by seeks.
    static let leapfrogStepsBeforeSeek = 8

    /// The series in every one of the `name="value"` postings lists of `matchers`, by leapfrog
    /// join: each list's iterator advances (by a few steps, then by a seek) to the largest ID
    /// any list is at, until they agree.
    private func leapfrog(block: Int32, _ matchers: [LabelMatcher]) throws -> [UInt64] {
        guard matchers.allSatisfy({ Self.isStorable($0.name) && Self.isStorable($0.value) }) else { return [] }
        let prefixes = matchers.map { Keyspace.postingsPrefix(block: block, name: $0.name, value: $0.value) }
        let its = try prefixes.map { try store.makeIterator(lowerBound: $0, upperBound: Keyspace.prefixEnd($0)) }
        func current(_ i: Int) -> UInt64 { its[i].withKey { Keyspace.seriesID(fromPostingKey: $0).rawValue } }
        func check() throws { for it in its { try it.checkError() } }
        // Seek targets, `prefix | ID`, rewritten in place for each seek.
        var seekKeys = prefixes.map { $0 + [UInt8](repeating: 0, count: 8) }
        /// Moves list `i` (standing before `target`) to its first ID ≥ `target`; false when the
        /// list has none. Its iterator's bounds keep it inside the list's prefix, whose keys
        /// differ only in their trailing series ID: steps compare IDs, not keys.
        func advance(_ i: Int, to target: UInt64) -> Bool {
            let it = its[i]
            for _ in 0..<Self.leapfrogStepsBeforeSeek {
                it.next()
                guard it.isValid else { return false }
                if current(i) >= target { return true }
            }
            let base = seekKeys[i].count - 8
            seekKeys[i].withUnsafeMutableBytes { k in
                for b in 0..<8 { k[base + b] = UInt8(truncatingIfNeeded: target >> UInt64(56 - 8 * b)) }
            }
            it.seek(seekKeys[i])
            return it.isValid
        }
        var target: UInt64 = 0
        for (i, it) in its.enumerated() {
            it.seekToFirst()
            guard it.isValid else { try check(); return [] }
            target = max(target, current(i))
        }
        var out: [UInt64] = []
        while true {
            var agreed = true
            for i in its.indices {
                if current(i) < target {
                    guard advance(i, to: target) else { try check(); return out }
                }
                let id = current(i)
                if id > target {
                    target = id
                    agreed = false
                    break
                }
            }
            if agreed {
                out.append(target)
                its[0].next()
                guard its[0].isValid else { try check(); return out }
                target = current(0)
            }
        }
    }

    /// Distinct label names indexed in `block` (skip-scan: one seek per name).
    func labelNames(block: Int32) throws -> [String] {
        let prefix = Keyspace.postingsBlockPrefix(block: block)
        let it = try store.makeIterator(lowerBound: prefix, upperBound: Keyspace.prefixEnd(prefix))
        it.seekToFirst()
        var names: [String] = []
        while it.isValid {
            let nameBytes: [UInt8] = it.withKey { k in
                var end = prefix.count
                while end < k.count && k[end] != 0 { end += 1 }
                return Array(k[prefix.count..<end])
            }
            if !nameBytes.isEmpty { names.append(String(decoding: nameBytes, as: UTF8.self)) }
            var skip = prefix
            skip.append(contentsOf: nameBytes)
            skip.append(1)
            it.seek(skip)
        }
        try it.checkError()
        return names
    }

    /// Distinct values of label `name` in `block` (skip-scan: one seek per value).
    func labelValues(block: Int32, name: String) throws -> [String] {
        var values: [String] = []
        _ = try postings(block: block, name: name) { v in
            values.append(v)
            return false
        }
        return values
    }
}
