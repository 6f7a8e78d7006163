/// The incident lifecycle of one alert (DESIGN.md capability 5, issue 6 item 3), as a pure
/// state machine. See docs/alerting.md for the diagram.
///
///     New (low) ──15 min──▶ Escalated (high) ──5 min──▶ Critical (critical)
///       each of them ── acknowledge ──▶ Acknowledged ── unacknowledge ──▶ back where it came from
///     Acknowledged ── acknowledgement expires ──▶ one level above where it came from
///     any open state ── resolve, or condition cleared (unless manual resolution is required) ──▶ Resolved
///
/// Every transition is appended to `history` with who, when and why. Timeouts come from an
/// `EscalationPolicy` (per rule or policy). Time is an input: `tick(nowMs:)` applies every
/// deadline that has passed, each at its own deadline time, so a late tick yields the same
/// history as timely ones.
public struct AlertLifecycle: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Equatable, CaseIterable, Codable {
        case new, acknowledged, escalated, critical, resolved
    }

    public enum Severity: String, Sendable, Equatable, Comparable, Codable {
        case low, high, critical
        public static func < (a: Severity, b: Severity) -> Bool {
            let order: [Severity] = [.low, .high, .critical]
            return order.firstIndex(of: a)! < order.firstIndex(of: b)!
        }
    }

    public enum Actor: Sendable, Equatable, Codable {
        /// A timer or the alert's condition.
        case system
        case user(String)
    }

    public enum Reason: String, Sendable, Equatable, Codable {
        case opened, escalationTimeout, acknowledged, unacknowledged, acknowledgementExpired, resolvedManually, conditionCleared
    }

    public struct Transition: Sendable, Equatable, Codable {
        public let from: State?
        public let to: State
        public let atMs: Int64
        public let actor: Actor
        public let reason: Reason
        public let comment: String
        public let severity: Severity
    }

    public let id: String
    public let policy: EscalationPolicy
    public private(set) var state: State
    /// Follows the state: New is low, Escalated high, Critical critical. Acknowledged and
    /// Resolved keep the severity reached before them.
    public private(set) var severity: Severity
    /// When the current state was entered.
    public private(set) var sinceMs: Int64
    /// For Acknowledged: the open state it was acknowledged from, and when the
    /// acknowledgement expires (nil: never).
    public private(set) var acknowledgedFrom: State?
    public private(set) var acknowledgementExpiresAtMs: Int64?
    /// Whether the alert's condition currently holds (fed by rule evaluation).
    public private(set) var conditionActive: Bool
    public private(set) var history: [Transition] = []
    /// Transitions dropped from the front of `history` because of `policy.maxHistory`.
    public private(set) var historyDropped = 0

    /// Opens an incident in state New.
    public init(id: String, policy: EscalationPolicy = .init(), nowMs: Int64) {
        self.id = id
        self.policy = policy
        state = .new
        severity = .low
        sinceMs = nowMs
        conditionActive = true
        record(from: nil, to: .new, atMs: nowMs, actor: .system, reason: .opened, comment: "")
    }

    public var isOpen: Bool { state != .resolved }

    /// The next time `tick` has something to do, or nil.
    public var nextDeadlineMs: Int64? {
        switch state {
        case .new: return policy.newToEscalatedMs.map { sinceMs + $0 }
        case .escalated: return policy.escalatedToCriticalMs.map { sinceMs + $0 }
        case .acknowledged: return acknowledgementExpiresAtMs
        case .critical, .resolved: return nil
        }
    }

    /// Applies every timeout due at or before `nowMs`; returns the transitions made.
    @discardableResult
    public mutating func tick(nowMs: Int64) -> [Transition] {
        let before = history.count + historyDropped
        while let d = nextDeadlineMs, d <= nowMs {
            switch state {
            case .new: move(to: .escalated, atMs: d, actor: .system, reason: .escalationTimeout, comment: "")
            case .escalated: move(to: .critical, atMs: d, actor: .system, reason: .escalationTimeout, comment: "")
            case .acknowledged:
                let next = Self.levelAbove(acknowledgedFrom ?? .new)
                acknowledgedFrom = nil
                acknowledgementExpiresAtMs = nil
                move(to: next, atMs: d, actor: .system, reason: .acknowledgementExpired, comment: "")
            case .critical, .resolved: preconditionFailure("no deadline in state \(state)")
            }
        }
        return recent(since: before)
    }

    static func levelAbove(_ s: State) -> State {
        switch s {
        case .new: return .escalated
        default: return .critical
        }
    }

    /// Acknowledges an open, unacknowledged alert. The acknowledgement lasts
    /// `policy.acknowledgementTimeoutMs` (or `expiresAfterMs` when given).
    public mutating func acknowledge(by user: String, comment: String, nowMs: Int64, expiresAfterMs: Int64? = nil) throws(LifecycleError) -> Transition {
        _ = tick(nowMs: nowMs)
        guard [.new, .escalated, .critical].contains(state) else { throw .invalid(action: "acknowledge", state: state) }
        acknowledgedFrom = state
        acknowledgementExpiresAtMs = (expiresAfterMs ?? policy.acknowledgementTimeoutMs).map { nowMs + $0 }
        move(to: .acknowledged, atMs: nowMs, actor: .user(user), reason: .acknowledged, comment: comment)
        return history.last!
    }

    /// Withdraws an acknowledgement: back to the state it was acknowledged from, whose
    /// escalation timer starts again now.
    public mutating func unacknowledge(by user: String, comment: String, nowMs: Int64) throws(LifecycleError) -> Transition {
        _ = tick(nowMs: nowMs)
        guard state == .acknowledged else { throw .invalid(action: "unacknowledge", state: state) }
        let back = acknowledgedFrom ?? .new
        acknowledgedFrom = nil
        acknowledgementExpiresAtMs = nil
        move(to: back, atMs: nowMs, actor: .user(user), reason: .unacknowledged, comment: comment)
        return history.last!
    }

    /// Resolves by hand, from any open state.
    public mutating func resolve(by user: String, comment: String, nowMs: Int64) throws(LifecycleError) -> Transition {
        _ = tick(nowMs: nowMs)
        guard state != .resolved else { throw .invalid(action: "resolve", state: state) }
        acknowledgedFrom = nil
        acknowledgementExpiresAtMs = nil
        move(to: .resolved, atMs: nowMs, actor: .user(user), reason: .resolvedManually, comment: comment)
        return history.last!
    }

    /// The rule's condition stopped holding. Resolves the alert unless the policy requires a
    /// manual resolution, in which case it stays open (and keeps escalating).
    @discardableResult
    public mutating func onConditionCleared(nowMs: Int64) -> [Transition] {
        let before = history.count + historyDropped
        _ = tick(nowMs: nowMs)
        conditionActive = false
        if state != .resolved && !policy.requireManualResolution {
            acknowledgedFrom = nil
            acknowledgementExpiresAtMs = nil
            move(to: .resolved, atMs: nowMs, actor: .system, reason: .conditionCleared, comment: "")
        }
        return recent(since: before)
    }

    /// The condition holds again while the incident is still open (manual resolution
    /// required). A resolved incident is not reopened: the caller opens a new one.
    public mutating func onConditionFiring(nowMs: Int64) {
        _ = tick(nowMs: nowMs)
        if state != .resolved { conditionActive = true }
    }

    private mutating func move(to: State, atMs: Int64, actor: Actor, reason: Reason, comment: String) {
        let from = state
        state = to
        sinceMs = atMs
        switch to {
        case .new: severity = .low
        case .escalated: severity = .high
        case .critical: severity = .critical
        case .acknowledged, .resolved: break
        }
        record(from: from, to: to, atMs: atMs, actor: actor, reason: reason, comment: comment)
    }

    private mutating func record(from: State?, to: State, atMs: Int64, actor: Actor, reason: Reason, comment: String) {
        history.append(Transition(from: from, to: to, atMs: atMs, actor: actor, reason: reason, comment: comment, severity: severity))
        if history.count > max(1, policy.maxHistory) {  // the latest transition is always kept
            history.removeFirst()
            historyDropped += 1
        }
    }

    private func recent(since total: Int) -> [Transition] {
        let made = history.count + historyDropped - total
        return Array(history.suffix(min(made, history.count)))
    }
}

/// Timeouts of the lifecycle, per rule or per policy. nil disables a timer.
public struct EscalationPolicy: Sendable, Equatable, Codable {
    /// New → Escalated when not acknowledged for this long. Default 15 minutes (DESIGN.md).
    public var newToEscalatedMs: Int64? = 15 * 60_000
    /// Escalated → Critical when not acknowledged for this long. Default 5 minutes (DESIGN.md).
    public var escalatedToCriticalMs: Int64? = 5 * 60_000
    /// How long an acknowledgement holds before the alert escalates again; default 1 hour
    /// (long enough to work on a fix, short enough that a forgotten ack pages again).
    public var acknowledgementTimeoutMs: Int64? = 60 * 60_000
    /// When true, a cleared condition does not resolve the alert: a person must.
    public var requireManualResolution = false
    /// Most transitions kept per alert; older ones are dropped (counted in `historyDropped`).
    /// A flapping alert with manual resolution could otherwise grow without bound.
    public var maxHistory = 1_000

    public init() {}
}

public enum LifecycleError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalid(action: String, state: AlertLifecycle.State)

    public var description: String {
        switch self {
        case .invalid(let a, let s): return "cannot \(a) an alert in state \(s.rawValue)"
        }
    }
}
