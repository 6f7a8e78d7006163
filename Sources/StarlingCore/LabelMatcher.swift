/// A label matcher as in PromQL selectors: `name="v"`, `name!="v"`, `name=~"re"`, `name!~"re"`.
/// Regular expressions are fully anchored, as in Prometheus. An absent label matches as the
/// empty string.
public struct LabelMatcher: Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case equal = "="
        case notEqual = "!="
        case regexMatch = "=~"
        case regexNoMatch = "!~"
    }

    public let kind: Kind
    public let name: String
    public let value: String
    /// The compiled pattern for the regex kinds.
    public let pattern: AnchoredPattern?

    public init(_ kind: Kind, _ name: String, _ value: String) throws(MatcherError) {
        self.kind = kind
        self.name = name
        self.value = value
        switch kind {
        case .equal, .notEqual: pattern = nil
        case .regexMatch, .regexNoMatch: pattern = try AnchoredPattern(value)
        }
    }

    /// Convenience for tests and code with known-good literals.
    public static func eq(_ name: String, _ value: String) -> LabelMatcher {
        try! LabelMatcher(.equal, name, value)
    }

    /// Whether a label value (empty for an absent label) satisfies this matcher.
    public func matches(_ v: String) -> Bool {
        switch kind {
        case .equal: return v.utf8.elementsEqual(value.utf8)
        case .notEqual: return !v.utf8.elementsEqual(value.utf8)
        case .regexMatch: return pattern!.matches(v)
        case .regexNoMatch: return !pattern!.matches(v)
        }
    }

    /// Whether a series without this label is selected.
    public var matchesEmpty: Bool { matches("") }

    /// The finite set of values this matcher accepts, when it is an `=` or an `=~` of literal
    /// alternatives (`a|b|c`), so the index can look the values up instead of scanning.
    public var setMatches: [String]? {
        switch kind {
        case .equal: return [value]
        case .regexMatch: return pattern!.literalAlternatives
        default: return nil
        }
    }

    public var description: String { "\(name)\(kind.rawValue)\(quoteLabelValue(value))" }

    /// Whether `labels` satisfies this matcher. Equality compares the stored bytes in place.
    public func matches(_ labels: Labels) -> Bool {
        switch kind {
        case .equal, .notEqual:
            var want = value
            let equal = want.withUTF8 { w in
                labels.withRawValue(of: name) { v in compareBytes(v ?? UnsafeRawBufferPointer(start: nil, count: 0), UnsafeRawBufferPointer(w)) == 0 }
            }
            return equal == (kind == .equal)
        case .regexMatch, .regexNoMatch:
            return matches(labels.get(name) ?? "")
        }
    }
}

extension LabelMatcher: Hashable {
    public static func == (a: LabelMatcher, b: LabelMatcher) -> Bool {
        a.kind == b.kind && a.name == b.name && a.value.utf8.elementsEqual(b.value.utf8)
    }
    public func hash(into h: inout Hasher) {
        h.combine(kind)
        h.combine(name)
        for b in value.utf8 { h.combine(b) }
    }
}

extension Array where Element == LabelMatcher {
    /// Whether `labels` satisfies every matcher.
    public func matches(_ labels: Labels) -> Bool { allSatisfy { $0.matches(labels) } }
}

public enum MatcherError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidRegex(pattern: String, reason: String)
    public var description: String {
        switch self {
        case .invalidRegex(let p, let r): return "invalid regular expression \(quoteLabelValue(p)): \(r)"
        }
    }
}

/// A fully anchored regular expression with fast paths for the shapes that dominate real
/// selectors (`.*`, `.+`, literals, literal alternations, literal prefixes), so that most
/// matchers never run the regex engine. Matching is over Unicode scalars with `.` matching
/// newlines, as RE2 does under Prometheus's `^(?s:…)$` anchoring.
public final class AnchoredPattern: @unchecked Sendable {
    // `Regex` is immutable after construction and safe to use from several threads; it is not
    // declared Sendable by the standard library, hence the unchecked conformance on this wrapper.
    private enum Shape {
        case any                 // .*
        case nonEmpty            // .+
        case literals(Set<[UInt8]>)
        case prefix([UInt8])     // literal.*
        case general
    }

    public let source: String
    private let shape: Shape
    private let regex: Regex<AnyRegexOutput>?
    /// For `=~"a|b|c"`: the alternatives, which the index looks up directly.
    public let literalAlternatives: [String]?

    public init(_ source: String) throws(MatcherError) {
        self.source = source
        do {
            let r = try Regex("(?s:" + source + ")").matchingSemantics(.unicodeScalar)
            regex = r
        } catch {
            throw .invalidRegex(pattern: source, reason: "\(error)")
        }
        if source == ".*" {
            shape = .any
            literalAlternatives = nil
        } else if source == ".+" {
            shape = .nonEmpty
            literalAlternatives = nil
        } else if let alts = Self.literalAlternatives(of: source) {
            shape = .literals(Set(alts.map { Array($0.utf8) }))
            literalAlternatives = alts
        } else if source.hasSuffix(".*"), let alts = Self.literalAlternatives(of: String(source.dropLast(2))), alts.count == 1 {
            shape = .prefix(Array(alts[0].utf8))
            literalAlternatives = nil
        } else {
            shape = .general
            literalAlternatives = nil
        }
    }

    public func matches(_ s: String) -> Bool {
        switch shape {
        case .any: return true
        case .nonEmpty: return !s.isEmpty
        case .literals(let set): return set.contains(Array(s.utf8))
        case .prefix(let p): return s.utf8.starts(with: p)
        case .general: return (try? regex!.wholeMatch(in: s)) != nil
        }
    }

    /// Splits `a|b|c` into literals when the pattern has no other metacharacters; handles
    /// backslash-escaped metacharacters.
    static func literalAlternatives(of s: String) -> [String]? {
        var out: [String] = []
        var cur = ""
        var escaped = false
        for ch in s.unicodeScalars {
            if escaped {
                if "\\.+*?()|[]{}^$-/".unicodeScalars.contains(ch) { cur.unicodeScalars.append(ch); escaped = false; continue }
                return nil  // \d, \w, ... are classes, not literals
            }
            switch ch {
            case "\\": escaped = true
            case "|": out.append(cur); cur = ""
            case ".", "+", "*", "?", "(", ")", "[", "]", "{", "}", "^", "$": return nil
            default: cur.unicodeScalars.append(ch)
            }
        }
        if escaped { return nil }
        out.append(cur)
        return out
    }
}
