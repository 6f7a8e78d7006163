import Foundation
import StarlingCore
import StarlingPromQL

/// The Go `text/template` subset Prometheus rule labels and annotations use, with Prometheus's
/// data and functions, so rule files written for Prometheus render the same text here.
///
/// Supported: text and `{{ … }}` actions with `{{-`/`-}}` trimming; comments `{{/* … */}}`;
/// pipelines with `|`; `if` / `else if` / `else` / `end`; variables `$labels`, `$value`,
/// `$externalLabels`, `$externalURL` (and `$` assignments `{{ $x := … }}`); fields `.Labels`,
/// `.Value`, `.ExternalLabels`, `.ExternalURL` and `.name` on a label map (a missing label is the
/// empty string, Prometheus's `missingkey=zero`); string, raw-string, number and boolean
/// literals; the functions `printf`, `print`, `humanize`, `humanize1024`, `humanizeDuration`,
/// `humanizePercentage`, `humanizeTimestamp`, `toUpper`, `toLower`, `title`, `index`, `len`,
/// `reReplaceAll`, `match`, `stripPort`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `and`, `or`, `not`.
///
/// Not supported (a parse error names the construct): `range`, `with`, `define`, `template`,
/// `block`, and `query` (templates do not run PromQL here).
public struct AlertTemplate: Sendable, Equatable {
    public let source: String
    let nodes: [TemplateNode]

    /// The data a template renders against.
    public struct Data: Sendable {
        public var labels: [String: String]
        public var value: Double
        public var externalLabels: [String: String]
        public var externalURL: String

        public init(labels: [String: String], value: Double, externalLabels: [String: String] = [:], externalURL: String = "") {
            self.labels = labels
            self.value = value
            self.externalLabels = externalLabels
            self.externalURL = externalURL
        }
    }

    /// Parses `source`; throws `TemplateError` with the byte offset of the problem.
    public init(_ source: String) throws(TemplateError) {
        self.source = source
        var p = TemplateParser(Array(source.utf8))
        nodes = try p.parseAll()
    }

    /// Renders the template. Errors (a function given the wrong arguments, a failing regex)
    /// are thrown; Prometheus then uses the error text as the value, which the caller decides.
    public func render(_ data: Data) throws(TemplateError) -> String {
        var scope: [String: TemplateValue] = [
            "labels": .map(data.labels), "value": .number(data.value),
            "externalLabels": .map(data.externalLabels), "externalURL": .string(data.externalURL),
        ]
        var out = ""
        try TemplateRenderer(data: data).render(nodes, scope: &scope, into: &out)
        return out
    }

    public static func == (a: AlertTemplate, b: AlertTemplate) -> Bool { a.source == b.source }
}

public struct TemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var message: String
    public var description: String { "template: at byte \(offset): \(message)" }
}

indirect enum TemplateNode: Sendable {
    case text(String)
    case output(Pipeline)
    case assign(String, Pipeline)
    /// `if` branches in order (the condition of an `else` branch is nil).
    case conditional([(Pipeline?, [TemplateNode])])
}

struct Pipeline: Sendable {
    var commands: [[Operand]]
    var offset: Int
}

indirect enum Operand: Sendable {
    case variable(String, [String])      // $name.field.field
    case field([String])                  // .Field.field ; [] is `.`
    case string(String)
    case number(Double)
    case bool(Bool)
    case function(String)
    case sub(Pipeline)
}

enum TemplateValue: Sendable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case map([String: String])
    case null

    var truthy: Bool {
        switch self {
        case .string(let s): return !s.isEmpty
        case .number(let n): return n != 0
        case .bool(let b): return b
        case .map(let m): return !m.isEmpty
        case .null: return false
        }
    }

    /// Go's `fmt.Sprint` of the value.
    var printed: String {
        switch self {
        case .string(let s): return s
        case .number(let n): return goFormatFloat(n)
        case .bool(let b): return b ? "true" : "false"
        case .map(let m): return "map[" + m.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: " ") + "]"
        case .null: return "<nil>"
        }
    }
}

// MARK: - Parsing

struct TemplateParser {
    let b: [UInt8]
    var i = 0

    init(_ b: [UInt8]) { self.b = b }

    func fail(_ at: Int, _ m: String) -> TemplateError { TemplateError(offset: at, message: m) }

    /// Splits the source into text and actions, then builds the tree of `if` blocks.
    mutating func parseAll() throws(TemplateError) -> [TemplateNode] {
        var items: [(kind: ActionKind, offset: Int)] = []
        var text: [UInt8] = []
        var trimNextText = false
        while i < b.count {
            if b[i] == UInt8(ascii: "{"), i + 1 < b.count, b[i + 1] == UInt8(ascii: "{") {
                let start = i
                i += 2
                var trimLeft = false
                if i + 1 < b.count, b[i] == UInt8(ascii: "-"), b[i + 1] == UInt8(ascii: " ") || b[i + 1] == UInt8(ascii: "\t") || b[i + 1] == UInt8(ascii: "\n") {
                    trimLeft = true
                    i += 1
                }
                if trimLeft { while let last = text.last, last == 0x20 || last == 0x09 || last == 0x0A || last == 0x0D { text.removeLast() } }
                if !text.isEmpty { items.append((.text(String(decoding: text, as: UTF8.self)), start)) }
                text = []
                // Find the closing "}}" outside string literals.
                var j = i
                var inString: UInt8? = nil
                while j + 1 < b.count {
                    let c = b[j]
                    if let q = inString {
                        if c == UInt8(ascii: "\\"), q == UInt8(ascii: "\"") { j += 2; continue }
                        if c == q { inString = nil }
                    } else if c == UInt8(ascii: "\"") || c == UInt8(ascii: "`") {
                        inString = c
                    } else if c == UInt8(ascii: "}"), b[j + 1] == UInt8(ascii: "}") {
                        break
                    }
                    j += 1
                }
                guard j + 1 < b.count, b[j] == UInt8(ascii: "}"), b[j + 1] == UInt8(ascii: "}") else {
                    throw fail(start, "unclosed action (no matching \"}}\")")
                }
                var end = j
                var trimRight = false
                if end - 1 >= i, b[end - 1] == UInt8(ascii: "-"), end - 2 >= i, [0x20, 0x09, 0x0A, 0x0D].contains(b[end - 2]) {
                    trimRight = true
                    end -= 1
                }
                let body = Array(b[i..<end])
                items.append((try classify(body, offset: i), i))
                i = j + 2
                trimNextText = trimRight
                if trimNextText { while i < b.count, [0x20, 0x09, 0x0A, 0x0D].contains(b[i]) { i += 1 } }
            } else {
                text.append(b[i])
                i += 1
            }
        }
        if !text.isEmpty { items.append((.text(String(decoding: text, as: UTF8.self)), b.count)) }
        var k = 0
        let nodes = try block(items, &k, inIf: false)
        if k < items.count { throw fail(items[k].offset, "unexpected {{\(items[k].kind.keyword)}}") }
        return nodes
    }

    enum ActionKind {
        case text(String)
        case comment
        case output(Pipeline)
        case assign(String, Pipeline)
        case ifStart(Pipeline)
        case elseIf(Pipeline)
        case elseBranch
        case end

        var keyword: String {
            switch self {
            case .elseIf, .elseBranch: "else"
            case .end: "end"
            default: "action"
            }
        }
    }

    func classify(_ body: [UInt8], offset: Int) throws(TemplateError) -> ActionKind {
        var lx = TemplateLexer(body, base: offset)
        lx.skipSpace()
        if lx.hasPrefix("/*") {
            guard let r = String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespaces) as String?, r.hasSuffix("*/") else {
                throw fail(offset, "unclosed comment")
            }
            return .comment
        }
        if let word = lx.peekWord() {
            switch word {
            case "if":
                lx.takeWord()
                return .ifStart(try lx.pipeline())
            case "else":
                lx.takeWord()
                lx.skipSpace()
                if lx.peekWord() == "if" {
                    lx.takeWord()
                    return .elseIf(try lx.pipeline())
                }
                guard lx.atEnd else { throw fail(lx.offset, "unexpected text after else") }
                return .elseBranch
            case "end":
                lx.takeWord()
                lx.skipSpace()
                guard lx.atEnd else { throw fail(lx.offset, "unexpected text after end") }
                return .end
            case "range", "with", "define", "template", "block", "break", "continue":
                throw fail(offset, "{{\(word)}} is not supported in Starling templates (supported: if/else/end, variables, pipelines and functions)")
            default: break
            }
        }
        // `$x := pipeline`
        if let name = lx.assignmentTarget() {
            return .assign(name, try lx.pipeline())
        }
        let p = try lx.pipeline()
        return .output(p)
    }

    func block(_ items: [(kind: ActionKind, offset: Int)], _ k: inout Int, inIf: Bool) throws(TemplateError) -> [TemplateNode] {
        var out: [TemplateNode] = []
        while k < items.count {
            switch items[k].kind {
            case .text(let t): out.append(.text(t)); k += 1
            case .comment: k += 1
            case .output(let p): out.append(.output(p)); k += 1
            case .assign(let n, let p): out.append(.assign(n, p)); k += 1
            case .ifStart(let cond):
                let start = items[k].offset
                k += 1
                var branches: [(Pipeline?, [TemplateNode])] = [(cond, try block(items, &k, inIf: true))]
                var sawElse = false
                var closed = false
                while !closed {
                    guard k < items.count else { throw fail(start, "{{if}} without {{end}}") }
                    switch items[k].kind {
                    case .elseIf(let c):
                        if sawElse { throw fail(items[k].offset, "{{else if}} after {{else}}") }
                        k += 1
                        branches.append((c, try block(items, &k, inIf: true)))
                    case .elseBranch:
                        if sawElse { throw fail(items[k].offset, "second {{else}}") }
                        sawElse = true
                        k += 1
                        branches.append((nil, try block(items, &k, inIf: true)))
                    case .end:
                        k += 1
                        out.append(.conditional(branches))
                        closed = true
                    default:
                        throw fail(items[k].offset, "unexpected action in {{if}}")
                    }
                }
            case .elseIf, .elseBranch, .end:
                if inIf { return out }
                throw fail(items[k].offset, "{{\(items[k].kind.keyword)}} without {{if}}")
            }
        }
        return out
    }
}

struct TemplateLexer {
    let b: [UInt8]
    let base: Int
    var i = 0

    init(_ b: [UInt8], base: Int) {
        self.b = b
        self.base = base
    }

    var offset: Int { base + i }
    var atEnd: Bool {
        var j = i
        while j < b.count, [0x20, 0x09, 0x0A, 0x0D].contains(b[j]) { j += 1 }
        return j >= b.count
    }

    func fail(_ m: String) -> TemplateError { TemplateError(offset: offset, message: m) }

    mutating func skipSpace() { while i < b.count, [0x20, 0x09, 0x0A, 0x0D].contains(b[i]) { i += 1 } }

    func hasPrefix(_ s: String) -> Bool {
        let p = Array(s.utf8)
        return i + p.count <= b.count && Array(b[i..<(i + p.count)]) == p
    }

    static func isIdent(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x5F
    }

    func peekWord() -> String? {
        var j = i
        while j < b.count, Self.isIdent(b[j]) { j += 1 }
        return j > i ? String(decoding: b[i..<j], as: UTF8.self) : nil
    }

    mutating func takeWord() {
        while i < b.count, Self.isIdent(b[i]) { i += 1 }
    }

    /// `$name :=` or `$name =` at the current position: consumes it and returns the name.
    mutating func assignmentTarget() -> String? {
        let save = i
        skipSpace()
        guard i < b.count, b[i] == UInt8(ascii: "$") else { i = save; return nil }
        i += 1
        let start = i
        takeWord()
        let name = String(decoding: b[start..<i], as: UTF8.self)
        skipSpace()
        if hasPrefix(":=") { i += 2; return name }
        if hasPrefix("="), !hasPrefix("==") { i += 1; return name }
        i = save
        return nil
    }

    mutating func pipeline() throws(TemplateError) -> Pipeline {
        let start = offset
        var commands: [[Operand]] = []
        var current: [Operand] = []
        while true {
            skipSpace()
            if i >= b.count || b[i] == UInt8(ascii: ")") { break }
            if b[i] == UInt8(ascii: "|") {
                guard !current.isEmpty else { throw fail("missing command before |") }
                commands.append(current)
                current = []
                i += 1
                continue
            }
            current.append(try operand())
        }
        guard !current.isEmpty else { throw fail(commands.isEmpty ? "empty action" : "missing command after |") }
        commands.append(current)
        return Pipeline(commands: commands, offset: start)
    }

    mutating func operand() throws(TemplateError) -> Operand {
        let c = b[i]
        switch c {
        case UInt8(ascii: "$"):
            i += 1
            let start = i
            takeWord()
            let name = String(decoding: b[start..<i], as: UTF8.self)
            return .variable(name, try fields())
        case UInt8(ascii: "."):
            return .field(try fields())
        case UInt8(ascii: "\""):
            return .string(try quoted())
        case UInt8(ascii: "`"):
            i += 1
            let start = i
            while i < b.count, b[i] != UInt8(ascii: "`") { i += 1 }
            guard i < b.count else { throw fail("unterminated raw string") }
            defer { i += 1 }
            return .string(String(decoding: b[start..<i], as: UTF8.self))
        case UInt8(ascii: "("):
            i += 1
            let p = try pipeline()
            guard i < b.count, b[i] == UInt8(ascii: ")") else { throw fail("missing )") }
            i += 1
            return .sub(p)
        case UInt8(ascii: "-"), UInt8(ascii: "+"), 0x30...0x39:
            let start = i
            i += 1
            while i < b.count, Self.isIdent(b[i]) || b[i] == UInt8(ascii: ".") || ((b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: "+")) && (b[i - 1] == UInt8(ascii: "e") || b[i - 1] == UInt8(ascii: "E"))) { i += 1 }
            let text = String(decoding: b[start..<i], as: UTF8.self)
            guard let v = Double(text) ?? Int64(text, radix: 10).map(Double.init) else { throw fail("bad number \(text)") }
            return .number(v)
        default:
            guard Self.isIdent(c) else { throw fail("unexpected \(goQuote(String(decoding: [c], as: UTF8.self))) in action") }
            let start = i
            takeWord()
            let word = String(decoding: b[start..<i], as: UTF8.self)
            switch word {
            case "true": return .bool(true)
            case "false": return .bool(false)
            case "nil": throw fail("nil is not a command")
            default:
                guard TemplateRenderer.functions.contains(word) else {
                    if word == "query" { throw fail("function \"query\" is not supported in Starling templates") }
                    throw fail("function \(goQuote(word)) not defined")
                }
                return .function(word)
            }
        }
    }

    mutating func fields() throws(TemplateError) -> [String] {
        var out: [String] = []
        while i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            let start = i
            takeWord()
            if i == start {
                if out.isEmpty { return [] }  // a lone `.`
                throw fail("empty field name")
            }
            out.append(String(decoding: b[start..<i], as: UTF8.self))
        }
        return out
    }

    mutating func quoted() throws(TemplateError) -> String {
        i += 1
        var out: [UInt8] = []
        while i < b.count, b[i] != UInt8(ascii: "\"") {
            if b[i] == UInt8(ascii: "\\"), i + 1 < b.count {
                i += 1
                switch b[i] {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "\\"), UInt8(ascii: "\""): out.append(b[i])
                default: throw fail("unsupported escape \\\(String(decoding: [b[i]], as: UTF8.self))")
                }
                i += 1
                continue
            }
            out.append(b[i])
            i += 1
        }
        guard i < b.count else { throw fail("unterminated string") }
        i += 1
        return String(decoding: out, as: UTF8.self)
    }
}

// MARK: - Rendering

struct TemplateRenderer {
    let data: AlertTemplate.Data

    static let functions: Set<String> = [
        "printf", "print", "humanize", "humanize1024", "humanizeDuration", "humanizePercentage", "humanizeTimestamp",
        "toUpper", "toLower", "title", "index", "len", "reReplaceAll", "match", "stripPort",
        "eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not",
    ]

    func render(_ nodes: [TemplateNode], scope: inout [String: TemplateValue], into out: inout String) throws(TemplateError) {
        for n in nodes {
            switch n {
            case .text(let t): out += t
            case .output(let p): out += try eval(p, scope).printed
            case .assign(let name, let p): scope[name] = try eval(p, scope)
            case .conditional(let branches):
                for (cond, body) in branches {
                    if let cond, !(try eval(cond, scope).truthy) { continue }
                    try render(body, scope: &scope, into: &out)
                    break
                }
            }
        }
    }

    func fail(_ p: Pipeline, _ m: String) -> TemplateError { TemplateError(offset: p.offset, message: m) }

    func eval(_ p: Pipeline, _ scope: [String: TemplateValue]) throws(TemplateError) -> TemplateValue {
        var piped: TemplateValue? = nil
        for cmd in p.commands {
            piped = try command(cmd, piped: piped, p, scope)
        }
        return piped ?? .null
    }

    func command(_ cmd: [Operand], piped: TemplateValue?, _ p: Pipeline, _ scope: [String: TemplateValue]) throws(TemplateError) -> TemplateValue {
        if case .function(let name) = cmd[0] {
            var args: [TemplateValue] = []
            for o in cmd.dropFirst() { args.append(try value(o, p, scope)) }
            if let piped { args.append(piped) }
            return try call(name, args, p)
        }
        guard cmd.count == 1, piped == nil else { throw fail(p, "can't give arguments to a non-function") }
        return try value(cmd[0], p, scope)
    }

    func value(_ o: Operand, _ p: Pipeline, _ scope: [String: TemplateValue]) throws(TemplateError) -> TemplateValue {
        switch o {
        case .string(let s): return .string(s)
        case .number(let n): return .number(n)
        case .bool(let b): return .bool(b)
        case .sub(let inner): return try eval(inner, scope)
        case .function(let name): return try call(name, [], p)
        case .variable(let name, let fields):
            guard let v = scope[name] else { throw fail(p, "undefined variable \"$\(name)\"") }
            return try walk(v, fields, p)
        case .field(let fields):
            guard let first = fields.first else { return .null }
            let root: TemplateValue
            switch first {
            case "Labels": root = .map(data.labels)
            case "Value": root = .number(data.value)
            case "ExternalLabels": root = .map(data.externalLabels)
            case "ExternalURL": root = .string(data.externalURL)
            default: throw fail(p, "can't evaluate field \(first)")
            }
            return try walk(root, Array(fields.dropFirst()), p)
        }
    }

    func walk(_ v: TemplateValue, _ fields: [String], _ p: Pipeline) throws(TemplateError) -> TemplateValue {
        var cur = v
        for f in fields {
            guard case .map(let m) = cur else { throw fail(p, "can't evaluate field \(f) in a \(cur.printed)") }
            cur = .string(m[f] ?? "")
        }
        return cur
    }

    func number(_ v: TemplateValue, _ fn: String, _ p: Pipeline) throws(TemplateError) -> Double {
        switch v {
        case .number(let n): return n
        case .string(let s):
            guard let n = Double(s.trimmingCharacters(in: .whitespaces)) else { throw fail(p, "\(fn): cannot convert \(goQuote(s)) to a number") }
            return n
        case .bool(let b): return b ? 1 : 0
        default: throw fail(p, "\(fn): expected a number, got \(v.printed)")
        }
    }

    func string(_ v: TemplateValue) -> String { v.printed }

    func call(_ name: String, _ args: [TemplateValue], _ p: Pipeline) throws(TemplateError) -> TemplateValue {
        func want(_ n: Int) throws(TemplateError) {
            guard args.count == n else { throw fail(p, "wrong number of args for \(name): want \(n) got \(args.count)") }
        }
        switch name {
        case "printf":
            guard let format = args.first else { throw fail(p, "wrong number of args for printf: want at least 1 got 0") }
            return .string(goSprintf(format.printed, Array(args.dropFirst())))
        case "print":
            return .string(args.map(\.printed).joined())
        case "humanize":
            try want(1)
            return .string(Humanize.si(try number(args[0], name, p)))
        case "humanize1024":
            try want(1)
            return .string(Humanize.binary(try number(args[0], name, p)))
        case "humanizeDuration":
            try want(1)
            return .string(Humanize.duration(try number(args[0], name, p)))
        case "humanizePercentage":
            try want(1)
            return .string(goFormatG(try number(args[0], name, p) * 100, 4) + "%")
        case "humanizeTimestamp":
            try want(1)
            return .string(Humanize.timestamp(try number(args[0], name, p)))
        case "toUpper": try want(1); return .string(args[0].printed.uppercased())
        case "toLower": try want(1); return .string(args[0].printed.lowercased())
        case "title":
            try want(1)
            return .string(args[0].printed.split(separator: " ", omittingEmptySubsequences: false)
                .map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined(separator: " "))
        case "index":
            try want(2)
            guard case .map(let m) = args[0] else { throw fail(p, "index of a non-map \(args[0].printed)") }
            return .string(m[args[1].printed] ?? "")
        case "len":
            try want(1)
            switch args[0] {
            case .map(let m): return .number(Double(m.count))
            case .string(let s): return .number(Double(s.utf8.count))
            default: throw fail(p, "len of \(args[0].printed)")
            }
        case "reReplaceAll":
            try want(3)
            do {
                let re = try NSRegularExpression(pattern: args[0].printed)
                let s = args[2].printed
                let template = args[1].printed.replacingOccurrences(of: "${", with: "$").replacingOccurrences(of: "}", with: "")
                return .string(re.stringByReplacingMatches(in: s, range: NSRange(s.startIndex..., in: s), withTemplate: template))
            } catch {
                throw fail(p, "reReplaceAll: invalid regex \(goQuote(args[0].printed))")
            }
        case "match":
            try want(2)
            do {
                let re = try NSRegularExpression(pattern: args[0].printed)
                let s = args[1].printed
                return .bool(re.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil)
            } catch {
                throw fail(p, "match: invalid regex \(goQuote(args[0].printed))")
            }
        case "stripPort":
            try want(1)
            let s = args[0].printed
            if s.hasPrefix("["), let close = s.firstIndex(of: "]") { return .string(String(s[s.index(after: s.startIndex)..<close])) }
            if let colon = s.lastIndex(of: ":"), s.filter({ $0 == ":" }).count == 1 { return .string(String(s[..<colon])) }
            return .string(s)
        case "eq", "ne", "lt", "le", "gt", "ge":
            try want(2)
            let c: Int
            switch (args[0], args[1]) {
            case (.number(let a), .number(let b)): c = a < b ? -1 : (a > b ? 1 : 0)
            case (.bool(let a), .bool(let b)):
                guard name == "eq" || name == "ne" else { throw fail(p, "\(name): booleans are not ordered") }
                c = a == b ? 0 : 1
            default:
                let a = args[0].printed, b = args[1].printed
                c = a < b ? -1 : (a > b ? 1 : 0)
            }
            switch name {
            case "eq": return .bool(c == 0)
            case "ne": return .bool(c != 0)
            case "lt": return .bool(c < 0)
            case "le": return .bool(c <= 0)
            case "gt": return .bool(c > 0)
            default: return .bool(c >= 0)
            }
        case "and":
            guard !args.isEmpty else { throw fail(p, "wrong number of args for and") }
            return args.first { !$0.truthy } ?? args.last!
        case "or":
            guard !args.isEmpty else { throw fail(p, "wrong number of args for or") }
            return args.first { $0.truthy } ?? args.last!
        case "not":
            try want(1)
            return .bool(!args[0].truthy)
        default:
            throw fail(p, "function \(goQuote(name)) not defined")
        }
    }
}

/// Go's `%.Ng` (`strconv.FormatFloat(v, 'g', N, 64)`): N significant digits, exponent form below
/// 1e-4 or at 10^N and above, trailing zeros removed, at least two exponent digits.
func goFormatG(_ v: Double, _ precision: Int) -> String {
    if v.isNaN { return "NaN" }
    if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
    return String(format: "%.\(precision)g", v)
}

/// Prometheus's `humanize*` template functions (template/template.go).
enum Humanize {
    static func si(_ v: Double) -> String {
        if v == 0 || v.isNaN || v.isInfinite { return goFormatG(v, 4) }
        var x = v
        if abs(x) >= 1 {
            var prefix = ""
            for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
                if abs(x) < 1000 { break }
                prefix = p
                x /= 1000
            }
            return goFormatG(x, 4) + prefix
        }
        var prefix = ""
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if abs(x) >= 1 { break }
            prefix = p
            x *= 1000
        }
        return goFormatG(x, 4) + prefix
    }

    static func binary(_ v: Double) -> String {
        if abs(v) <= 1 || v.isNaN || v.isInfinite { return goFormatG(v, 4) }
        var x = v
        var prefix = ""
        for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
            if abs(x) < 1024 { break }
            prefix = p
            x /= 1024
        }
        return goFormatG(x, 4) + prefix
    }

    static func duration(_ v: Double) -> String {
        if v.isNaN || v.isInfinite { return goFormatG(v, 4) }
        if v == 0 { return "0s" }
        if abs(v) >= 1 {
            let sign = v < 0 ? "-" : ""
            let x = abs(v)
            let d = Int64(x)
            let seconds = d % 60, minutes = (d / 60) % 60, hours = (d / 3600) % 24, days = d / 86_400
            if days != 0 { return "\(sign)\(days)d \(hours)h \(minutes)m \(seconds)s" }
            if hours != 0 { return "\(sign)\(hours)h \(minutes)m \(seconds)s" }
            if minutes != 0 { return "\(sign)\(minutes)m \(seconds)s" }
            return sign + goFormatG(x, 4) + "s"
        }
        var x = v
        var prefix = ""
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if abs(x) >= 1 { break }
            prefix = p
            x *= 1000
        }
        return goFormatG(x, 4) + prefix + "s"
    }

    /// Prometheus's `humanizeTimestamp`: the value as Unix seconds, cut to milliseconds
    /// (`model.TimeFromUnixNano(int64(v*1e9))`), printed as Go's `time.Time.String()` in UTC
    /// (`2006-01-02 15:04:05.999999999 +0000 UTC`).
    static func timestamp(_ v: Double) -> String {
        if v.isNaN || v.isInfinite || abs(v) > 9.2e9 { return goFormatG(v, 4) }
        let totalMs = Int64(v * 1e9) / 1_000_000
        var s = totalMs / 1000
        var ms = totalMs % 1000
        if ms < 0 { ms += 1000; s -= 1 }
        let date = Date(timeIntervalSince1970: TimeInterval(s))
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        let c = cal.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        var out = String(format: "%04d-%02d-%02d %02d:%02d:%02d", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
        if ms > 0 {
            var frac = String(format: "%03lld", ms)
            while frac.hasSuffix("0") { frac.removeLast() }
            out += "." + frac
        }
        return out + " +0000 UTC"
    }
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%s %v %d %f %e %g %q %x %%`, with flags
/// (`-+ 0#`), width and precision. Extra or missing arguments render as Go does
/// (`%!v(MISSING)`, `%!(EXTRA …)`).
func goSprintf(_ format: String, _ args: [TemplateValue]) -> String {
    var out = ""
    let f = Array(format.unicodeScalars)
    var i = 0
    var argIndex = 0
    while i < f.count {
        let c = f[i]
        if c != "%" {
            out.unicodeScalars.append(c)
            i += 1
            continue
        }
        i += 1
        guard i < f.count else { out += "%!(NOVERB)"; break }
        var flags = ""
        while i < f.count, "-+ 0#".unicodeScalars.contains(f[i]) { flags.unicodeScalars.append(f[i]); i += 1 }
        var width = ""
        while i < f.count, f[i].properties.numericType != nil, f[i].value >= 0x30, f[i].value <= 0x39 { width.unicodeScalars.append(f[i]); i += 1 }
        var precision: String? = nil
        if i < f.count, f[i] == "." {
            i += 1
            var p = ""
            while i < f.count, f[i].value >= 0x30, f[i].value <= 0x39 { p.unicodeScalars.append(f[i]); i += 1 }
            precision = p.isEmpty ? "0" : p
        }
        guard i < f.count else { out += "%!(NOVERB)"; break }
        let verb = f[i]
        i += 1
        if verb == "%" { out += "%"; continue }
        guard argIndex < args.count else { out += "%!\(verb)(MISSING)"; continue }
        let arg = args[argIndex]
        argIndex += 1
        let spec = "%" + flags + width + (precision.map { "." + $0 } ?? "")
        switch verb {
        case "d":
            // Template numbers are float64 in Go too, and %d of a float64 is a formatting error.
            out += "%!d(\(goTypeName(arg))=\(arg.printed))"
        case "f", "F", "e", "E", "g", "G":
            if case .number(let n) = arg {
                if n.isNaN || n.isInfinite {
                    out += n.isNaN ? "NaN" : (n > 0 ? (flags.contains("+") ? "+Inf" : "+Inf") : "-Inf")
                } else {
                    out += String(format: spec + String(verb), n)
                }
            } else {
                out += "%!\(verb)(\(goTypeName(arg))=\(arg.printed))"
            }
        case "s", "v":
            let text = arg.printed
            out += pad(precision.flatMap(Int.init).map { String(text.prefix($0)) } ?? text, width: Int(width) ?? 0, left: flags.contains("-"))
        case "q":
            out += pad(goQuote(arg.printed), width: Int(width) ?? 0, left: flags.contains("-"))
        case "x", "X":
            if case .number(let n) = arg, n == n.rounded() {
                out += String(format: spec + (verb == "x" ? "llx" : "llX"), Int64(n))
            } else {
                let hex = arg.printed.utf8.map { String(format: verb == "x" ? "%02x" : "%02X", $0) }.joined()
                out += hex
            }
        default:
            out += "%!\(verb)(\(goTypeName(arg))=\(arg.printed))"
        }
    }
    if argIndex < args.count {
        out += "%!(EXTRA " + args[argIndex...].map { "\(goTypeName($0))=\($0.printed)" }.joined(separator: ", ") + ")"
    }
    return out
}

private func goTypeName(_ v: TemplateValue) -> String {
    switch v {
    case .string: "string"
    case .number: "float64"
    case .bool: "bool"
    case .map: "map[string]string"
    case .null: "<nil>"
    }
}

private func pad(_ s: String, width: Int, left: Bool) -> String {
    let n = s.count
    guard width > n else { return s }
    let spaces = String(repeating: " ", count: width - n)
    return left ? s + spaces : spaces + s
}
