import StarlingCore

/// Label-set operations on the canonical bytes, for the per-series hot paths of the engine
/// (dropping the metric name, grouping keys, matching signatures): no `String` is decoded or
/// allocated per label.

/// A small set of label names, compared as bytes.
struct LabelNameSet: Sendable {
    let names: [[UInt8]]

    init(_ names: some Sequence<String>) {
        var seen = Set<[UInt8]>()
        var out: [[UInt8]] = []
        for n in names {
            let b = Array(n.utf8)
            if seen.insert(b).inserted { out.append(b) }
        }
        self.names = out
    }

    var isEmpty: Bool { names.isEmpty }

    @inline(__always)
    func contains(_ raw: UnsafeRawBufferPointer) -> Bool {
        for n in names where n.count == raw.count {
            if n.withUnsafeBytes({ $0.elementsEqual(raw) }) { return true }
        }
        return false
    }
}


extension Labels {
    /// The labels for which `keep(name)` holds, in order.
    @inline(__always)
    func filteredByName(_ keep: (UnsafeRawBufferPointer) -> Bool) -> Labels {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var dropped = false
        forEachRaw { n, v in
            if keep(n) {
                out.appendLengthPrefixed(n)
                out.appendLengthPrefixed(v)
            } else {
                dropped = true
            }
        }
        return dropped ? Labels(canonicalBytes: out) : self
    }

    /// Without `__name__` (Prometheus's `dropMetricName`).
    var withoutMetricName: Labels {
        removingLabel(named: metricNameLabel)
    }

    func keeping(_ names: LabelNameSet) -> Labels {
        filteredByName { names.contains($0) }
    }

    func removing(_ names: LabelNameSet) -> Labels {
        filteredByName { !names.contains($0) }
    }
}
