import Foundation
import StarlingCore
import Yams

/// A 5-field cron expression (`minute hour day-of-month month day-of-week`), as in crontab(5):
/// `*`, values, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b`; month names `jan`–`dec`
/// and weekday names `sun`–`sat`; weekday 0 and 7 are Sunday. When both day-of-month and
/// day-of-week are restricted (neither starts with `*`), a day matches if either does.
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    public let source: String
    let minutes: Set<Int>
    let hours: Set<Int>
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    let weekdays: Set<Int>  // 0 = Sunday
    let domRestricted: Bool
    let dowRestricted: Bool

    public var description: String { source }

    public init(_ text: String) throws(CronError) {
        source = text
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else { throw CronError(field: "expression", text: text, message: "expected 5 fields, found \(fields.count)") }
        minutes = try Self.field(fields[0], "minute", 0...59, names: [:])
        hours = try Self.field(fields[1], "hour", 0...23, names: [:])
        daysOfMonth = try Self.field(fields[2], "day of month", 1...31, names: [:])
        let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        months = try Self.field(
            fields[3], "month", 1...12, names: Dictionary(uniqueKeysWithValues: monthNames.enumerated().map { ($1, $0 + 1) }))
        let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
        let dow = try Self.field(
            fields[4], "day of week", 0...7, names: Dictionary(uniqueKeysWithValues: dayNames.enumerated().map { ($1, $0) }))
        weekdays = Set(dow.map { $0 == 7 ? 0 : $0 })
        domRestricted = !fields[2].hasPrefix("*")
        dowRestricted = !fields[4].hasPrefix("*")
    }

    static func field(_ text: String, _ name: String, _ range: ClosedRange<Int>, names: [String: Int]) throws(CronError) -> Set<Int> {
        var out: Set<Int> = []
        func value(_ s: Substring) throws(CronError) -> Int {
            if let v = Int(s), range.contains(v) { return v }
            if let v = names[s.lowercased()] { return v }
            throw CronError(field: name, text: text, message: "\(quoteLabelValue(String(s))) is not in \(range.lowerBound)-\(range.upperBound)")
        }
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            var base = part
            var step = 1
            if let slash = part.firstIndex(of: "/") {
                base = part[..<slash]
                guard let s = Int(part[part.index(after: slash)...]), s > 0 else {
                    throw CronError(field: name, text: text, message: "invalid step in \(quoteLabelValue(String(part)))")
                }
                step = s
            }
            let lo: Int
            let hi: Int
            if base == "*" {
                lo = range.lowerBound
                hi = range.upperBound
            } else if let dash = base.firstIndex(of: "-") {
                lo = try value(base[..<dash])
                hi = try value(base[base.index(after: dash)...])
                if hi < lo { throw CronError(field: name, text: text, message: "range \(quoteLabelValue(String(base))) is reversed") }
            } else if base.isEmpty {
                throw CronError(field: name, text: text, message: "empty list element")
            } else {
                lo = try value(base)
                hi = step > 1 ? range.upperBound : lo  // `5/15` means from 5 every 15
            }
            for v in stride(from: lo, through: hi, by: step) { out.insert(v) }
        }
        return out
    }

    func matchesDay(dayOfMonth: Int, month: Int, weekday: Int) -> Bool {
        guard months.contains(month) else { return false }
        let dom = daysOfMonth.contains(dayOfMonth)
        let dow = weekdays.contains(weekday)
        if domRestricted && dowRestricted { return dom || dow }
        return dom && dow
    }
}

public struct CronError: Error, Sendable, Equatable, CustomStringConvertible {
    public let field: String
    public let text: String
    public let message: String
    public var description: String { "cron \(field) \(quoteLabelValue(text)): \(message)" }
}

/// A recurring maintenance window: alerts matching `matchers` are muted while the window is
/// open. The schedule is evaluated in an IANA time zone (Foundation's `TimeZone`), so a window
/// "Sundays 02:00–04:00 Europe/Paris" follows daylight-saving changes.
public struct MaintenanceWindow: Sendable, Equatable {
    public enum Schedule: Sendable, Equatable {
        /// Opens on each of `weekdays` (0 = Sunday … 6 = Saturday) at `startMinute` (minutes
        /// after local midnight, 0..<1440) for `durationMs`; a range past midnight belongs to
        /// the day it starts on.
        case weekly(weekdays: Set<Int>, startMinute: Int, durationMs: Int64)
        /// Opens at every time the cron expression fires, for `durationMs`.
        case cron(CronExpression, durationMs: Int64)
    }

    public var id: String
    public var name: String
    public var matchers: [LabelMatcher]
    public var schedule: Schedule
    public let timeZone: TimeZone

    /// Longest window duration accepted: bounds the backward search for the last opening.
    public static let maxDurationMs: Int64 = 7 * 86_400_000

    public init(id: String, name: String, matchers: [LabelMatcher], schedule: Schedule, timeZoneID: String) throws(MaintenanceWindowError) {
        guard let tz = TimeZone(identifier: timeZoneID) else { throw .unknownTimeZone(timeZoneID) }
        if matchers.isEmpty { throw .noMatchers }
        let d: Int64
        switch schedule {
        case .weekly(let days, let start, let dur):
            if days.isEmpty || !days.allSatisfy({ (0...6).contains($0) }) { throw .invalidWeekdays }
            if !(0..<1440).contains(start) { throw .invalidStartMinute(start) }
            d = dur
        case .cron(_, let dur): d = dur
        }
        if d <= 0 || d > Self.maxDurationMs { throw .invalidDuration(d) }
        self.id = id
        self.name = name
        self.matchers = matchers
        self.schedule = schedule
        self.timeZone = tz
    }

    /// The weekly form from `HH:MM` start and end times; an end at or before the start means
    /// the window runs past midnight (`22:00`–`02:00` is four hours).
    public static func weekly(
        id: String, name: String, matchers: [LabelMatcher], weekdays: Set<Int>, start: String, end: String, timeZoneID: String
    ) throws(MaintenanceWindowError) -> MaintenanceWindow {
        guard let s = parseClock(start) else { throw .invalidTime(start) }
        guard let e = parseClock(end) else { throw .invalidTime(end) }
        let minutes = e > s ? e - s : e + 1440 - s
        return try MaintenanceWindow(
            id: id, name: name, matchers: matchers,
            schedule: .weekly(weekdays: weekdays, startMinute: s, durationMs: Int64(minutes) * 60_000), timeZoneID: timeZoneID)
    }

    static func parseClock(_ t: String) -> Int? {
        let p = t.split(separator: ":")
        guard p.count == 2, p[0].count == 2, p[1].count == 2, let h = Int(p[0]), let m = Int(p[1]), (0...23).contains(h), (0...59).contains(m)
        else { return nil }
        return h * 60 + m
    }

    var durationMs: Int64 {
        switch schedule {
        case .weekly(_, _, let d), .cron(_, let d): return d
        }
    }

    /// The most recent opening at or before `nowMs` that is less than the window's duration
    /// ago, i.e. the start of the currently open occurrence; nil when the window is closed.
    public func openedAtMs(atMs nowMs: Int64) -> Int64? {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = timeZone
        let now = Date(timeIntervalSince1970: Double(nowMs) / 1000)
        let dur = durationMs
        let days = Int(dur / 86_400_000) + 1
        for back in 0...days {
            guard let day = cal.date(byAdding: .day, value: -back, to: now) else { continue }
            let c = cal.dateComponents([.year, .month, .day, .weekday], from: day)
            guard let y = c.year, let mo = c.month, let d = c.day, let wd = c.weekday else { continue }
            // Candidate opening times of this local day, latest first.
            var times: [(Int, Int)] = []
            switch schedule {
            case .weekly(let wds, let start, _):
                if wds.contains(wd - 1) { times = [(start / 60, start % 60)] }
            case .cron(let cron, _):
                if cron.matchesDay(dayOfMonth: d, month: mo, weekday: wd - 1) {
                    for h in cron.hours.sorted(by: >) { for m in cron.minutes.sorted(by: >) { times.append((h, m)) } }
                }
            }
            for (h, m) in times {
                let dc = DateComponents(year: y, month: mo, day: d, hour: h, minute: m)
                // A time skipped by a DST jump does not occur: no opening that day.
                guard let t = cal.date(from: dc), cal.component(.hour, from: t) == h else { continue }
                let tMs = Int64((t.timeIntervalSince1970 * 1000).rounded())
                if tMs > nowMs { continue }
                return nowMs - tMs < dur ? tMs : nil  // latest opening found; older ones end sooner or equal
            }
        }
        return nil
    }

    public func isOpen(atMs nowMs: Int64) -> Bool { openedAtMs(atMs: nowMs) != nil }

    public func mutes(_ labels: Labels, atMs nowMs: Int64) -> Bool { matchers.matches(labels) && isOpen(atMs: nowMs) }
}

public enum MaintenanceWindowError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownTimeZone(String)
    case noMatchers
    case invalidWeekdays
    case invalidStartMinute(Int)
    case invalidDuration(Int64)
    case invalidTime(String)

    public var description: String {
        switch self {
        case .unknownTimeZone(let z): return "unknown time zone \(quoteLabelValue(z)) (expected an IANA name such as Europe/Paris)"
        case .noMatchers: return "maintenance window has no matchers"
        case .invalidWeekdays: return "weekdays must be a non-empty set of 0 (Sunday) to 6 (Saturday)"
        case .invalidStartMinute(let m): return "start minute \(m) is not in 0..<1440"
        case .invalidDuration(let d): return "duration \(d) ms is not in (0, \(MaintenanceWindow.maxDurationMs)] ms"
        case .invalidTime(let t): return "invalid time \(quoteLabelValue(t)) (expected HH:MM)"
        }
    }
}

/// A maintenance-windows file (`alerting.maintenance_windows_file`):
///
/// ```yaml
/// windows:
///   - name: database patching
///     matchers: ['service="db"']          # Alertmanager matcher syntax, all must match
///     time_zone: Europe/Oslo              # IANA zone; default UTC
///     weekly: {days: [sat, sun], start: "22:00", end: "02:00"}   # end ≤ start: past midnight
///   - name: nightly batch
///     matchers: ['job="batch"']
///     cron: "0 2 * * 1-5"                 # minute hour day-of-month month day-of-week
///     duration: 90m
/// ```
public enum MaintenanceWindows {
    static let dayNames = ["sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
                           "sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6]

    public static func parse(yaml text: String) throws(ConfigError) -> [MaintenanceWindow] {
        guard let root = try ConfigParser.compose(text, maxBytes: 4 << 20, what: "maintenance windows file") else { return [] }
        let p = ConfigParser(limits: .init())
        var out: [MaintenanceWindow] = []
        for (key, v) in try p.mapping(root, "", allowed: ["windows"]) where key == "windows" {
            for (i, w) in try p.sequence(v, "windows").enumerated() {
                let path = "windows[\(i)]"
                var name: String?
                var matchers: [LabelMatcher] = []
                var tz = "UTC"
                var weekly: Node?
                var cron: (String, Node)?
                var durationMs: Int64?
                for (k, f) in try p.mapping(w, path, allowed: ["name", "matchers", "time_zone", "weekly", "cron", "duration"]) {
                    switch k {
                    case "name": name = try p.string(f, "\(path).name")
                    case "matchers": matchers = try p.matchers(f, "\(path).matchers")
                    case "time_zone": tz = try p.string(f, "\(path).time_zone")
                    case "weekly": weekly = f
                    case "cron": cron = (try p.string(f, "\(path).cron"), f)
                    case "duration": durationMs = try p.duration(f, "\(path).duration")
                    default: break
                    }
                }
                guard let name, !name.isEmpty else { throw ConfigParser.fail("\(path).name", w, "missing: every window needs a name") }
                if out.contains(where: { $0.name == name }) { throw ConfigParser.fail("\(path).name", w, "duplicate window name \(quoteLabelValue(name))") }
                do {
                    switch (weekly, cron) {
                    case (let wk?, nil):
                        if durationMs != nil { throw ConfigParser.fail("\(path).duration", w, "a weekly window takes start and end, not duration") }
                        var days: Set<Int> = []
                        var start: String?
                        var end: String?
                        for (k, f) in try p.mapping(wk, "\(path).weekly", allowed: ["days", "start", "end"]) {
                            switch k {
                            case "days":
                                for (j, d) in try p.sequence(f, "\(path).weekly.days").enumerated() {
                                    let t = try p.string(d, "\(path).weekly.days[\(j)]").lowercased()
                                    guard let n = dayNames[t] ?? Int(t).flatMap({ (0...6).contains($0) ? $0 : nil }) else {
                                        throw ConfigParser.fail("\(path).weekly.days[\(j)]", d, "unknown day \(quoteLabelValue(t)) (sun … sat or 0 … 6)")
                                    }
                                    days.insert(n)
                                }
                            case "start": start = try p.string(f, "\(path).weekly.start")
                            case "end": end = try p.string(f, "\(path).weekly.end")
                            default: break
                            }
                        }
                        guard let start, let end else { throw ConfigParser.fail("\(path).weekly", wk, "start and end (HH:MM) are required") }
                        out.append(try MaintenanceWindow.weekly(id: name, name: name, matchers: matchers, weekdays: days, start: start, end: end, timeZoneID: tz))
                    case (nil, let (expr, node)?):
                        guard let durationMs else { throw ConfigParser.fail("\(path).duration", w, "a cron window needs a duration") }
                        let c: CronExpression
                        do {
                            c = try CronExpression(expr)
                        } catch {
                            throw ConfigParser.fail("\(path).cron", node, "\(error)")
                        }
                        out.append(try MaintenanceWindow(id: name, name: name, matchers: matchers, schedule: .cron(c, durationMs: durationMs), timeZoneID: tz))
                    default:
                        throw ConfigParser.fail(path, w, "exactly one of weekly or cron is required")
                    }
                } catch let e as ConfigError {
                    throw e
                } catch {
                    throw ConfigParser.fail(path, w, "\(error)")
                }
            }
        }
        return out
    }
}
