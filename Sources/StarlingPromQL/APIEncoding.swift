import StarlingCore

/// JSON of the Prometheus HTTP API, byte-compatible with Prometheus 2.42 (jsoniter configured
/// like `encoding/json`): timestamps as seconds with up to three decimals, sample values as
/// strings in Go's shortest `'f'` format, HTML-safe string escaping, `warnings` only when any.
public enum PrometheusJSON {
    /// `{"status":"success","data":{"resultType":…,"result":…}[,"warnings":[…]]}`.
    public static func queryResponse(_ value: PromValue, warnings: [String] = []) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        out.append(contentsOf: #"{"status":"success","data":{"resultType":""#.utf8)
        out.append(contentsOf: value.resultType.utf8)
        out.append(contentsOf: #"","result":"#.utf8)
        appendResult(value, to: &out)
        out.append(contentsOf: "}".utf8)
        appendWarnings(warnings, to: &out)
        out.append(contentsOf: "}".utf8)
        return out
    }

    /// `{"status":"success","data":<raw JSON>[,"warnings":[…]]}` for other endpoints.
    public static func success(rawData: [UInt8], warnings: [String] = []) -> [UInt8] {
        var out: [UInt8] = Array(#"{"status":"success","data":"#.utf8)
        out.append(contentsOf: rawData)
        appendWarnings(warnings, to: &out)
        out.append(contentsOf: "}".utf8)
        return out
    }

    /// `{"status":"error","errorType":…,"error":…[,"warnings":[…]]}`.
    public static func errorResponse(type: String, message: String, warnings: [String] = []) -> [UInt8] {
        var out: [UInt8] = Array(#"{"status":"error","errorType":"#.utf8)
        appendString(type, to: &out)
        out.append(contentsOf: #","error":"#.utf8)
        appendString(message, to: &out)
        appendWarnings(warnings, to: &out)
        out.append(contentsOf: "}".utf8)
        return out
    }

    public static func appendResult(_ value: PromValue, to out: inout [UInt8]) {
        switch value {
        case .scalar(let t, let v):
            appendPoint(t, v, to: &out)
        case .string(let t, let s):
            out.append(UInt8(ascii: "["))
            appendTimestamp(t, to: &out)
            out.append(UInt8(ascii: ","))
            appendString(s, to: &out)
            out.append(UInt8(ascii: "]"))
        case .vector(let samples):
            out.append(UInt8(ascii: "["))
            for (i, s) in samples.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: #"{"metric":"#.utf8)
                appendLabels(s.labels, to: &out)
                out.append(contentsOf: #","value":"#.utf8)
                appendPoint(s.timestampMs, s.value, to: &out)
                out.append(UInt8(ascii: "}"))
            }
            out.append(UInt8(ascii: "]"))
        case .matrix(let series):
            out.append(UInt8(ascii: "["))
            for (i, s) in series.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: #"{"metric":"#.utf8)
                appendLabels(s.labels, to: &out)
                out.append(contentsOf: #","values":["#.utf8)
                for (k, p) in s.samples.enumerated() {
                    if k > 0 { out.append(UInt8(ascii: ",")) }
                    appendPoint(p.timestampMs, p.value, to: &out)
                }
                out.append(contentsOf: "]}".utf8)
            }
            out.append(UInt8(ascii: "]"))
        }
    }

    static func appendWarnings(_ warnings: [String], to out: inout [UInt8]) {
        guard !warnings.isEmpty else { return }
        out.append(contentsOf: #","warnings":["#.utf8)
        for (i, w) in warnings.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            appendString(w, to: &out)
        }
        out.append(UInt8(ascii: "]"))
    }

    /// `{"name":"value",…}` in label order.
    public static func appendLabels(_ labels: Labels, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        var first = true
        labels.forEachRaw { n, v in
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            appendStringBytes(n, to: &out)
            out.append(UInt8(ascii: ":"))
            appendStringBytes(v, to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// `[<seconds>,"<value>"]`.
    static func appendPoint(_ t: Int64, _ v: Double, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        appendTimestamp(t, to: &out)
        out.append(contentsOf: #",""#.utf8)
        appendSampleValue(v, to: &out)
        out.append(contentsOf: #""]"#.utf8)
    }

    /// Seconds with the millisecond fraction written only when non-zero, always three digits.
    public static func appendTimestamp(_ ms: Int64, to out: inout [UInt8]) {
        if ms < 0 { out.append(UInt8(ascii: "-")) }
        let t = ms.magnitude
        out.appendDecimal(Int64(t / 1000))
        let fraction = t % 1000
        if fraction != 0 {
            out.append(UInt8(ascii: "."))
            if fraction < 100 { out.append(UInt8(ascii: "0")) }
            if fraction < 10 { out.append(UInt8(ascii: "0")) }
            out.appendDecimal(Int64(fraction))
        }
    }

    public static func appendString(_ s: String, to out: inout [UInt8]) {
        var copy = s
        copy.withUTF8 { appendStringBytes(UnsafeRawBufferPointer($0), to: &out) }
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// Go's `encoding/json` string escaping with HTML escaping on.
    static func appendStringBytes(_ b: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var i = 0
        while i < b.count {
            let c = b[i]
            switch c {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "&"):
                out.append(contentsOf: Array("\\u00".utf8))
                out.append(hex[Int(c >> 4)])
                out.append(hex[Int(c & 0xF)])
            case _ where c < 0x20:
                out.append(contentsOf: Array("\\u00".utf8))
                out.append(hex[Int(c >> 4)])
                out.append(hex[Int(c & 0xF)])
            case 0xE2 where i + 2 < b.count && b[i + 1] == 0x80 && (b[i + 2] == 0xA8 || b[i + 2] == 0xA9):
                // U+2028 and U+2029, escaped for JavaScript.
                out.append(contentsOf: Array("\\u202".utf8))
                out.append(b[i + 2] == 0xA8 ? UInt8(ascii: "8") : UInt8(ascii: "9"))
                i += 3
                continue
            default:
                out.append(c)
            }
            i += 1
        }
        out.append(UInt8(ascii: "\""))
    }
}
