import StarlingCore

/// One node of the routing tree, with every inheritable setting already resolved from its
/// ancestors (Alertmanager resolves `receiver`, `group_by`, `group_wait`, `group_interval` and
/// `repeat_interval` the same way; `matchers` and `continue` are never inherited).
public struct Route: Sendable, Equatable {
    /// Position in `RoutingTree.routes` (pre-order); the root is 0. Unique within one config.
    public let index: Int
    public let parent: Int?
    public let depth: Int
    /// Where the route is in the file (`route.routes[2].routes[0]`), for errors and the API.
    public let configPath: String
    public let receiver: String
    /// The route's own matchers (legacy `match`/`match_re` first, then `matchers`).
    public let matchers: [LabelMatcher]
    public let groupBy: GroupBy
    public let groupWaitMs: Int64
    public let groupIntervalMs: Int64
    public let repeatIntervalMs: Int64
    /// `continue`: keep matching later siblings after this route matched.
    public let continueMatching: Bool
    public internal(set) var children: [Int]
    /// Alertmanager's route key: the parent's key, `/`, and this route's matchers sorted and
    /// printed as `{a="b",c=~"d"}`. The root's key is `{}`. It is the first half of a group
    /// key (`<route key>:<group labels>`), which receivers see in the webhook payload.
    /// Siblings with equal matchers share a key (as in Alertmanager); `index` tells them apart.
    public let key: String
}

/// The routing tree of an `AlertingConfig`, stored flat in pre-order.
public struct RoutingTree: Sendable, Equatable {
    public let routes: [Route]

    public var root: Route { routes[0] }

    /// The routes an alert with `labels` is dispatched to, in tree order, exactly as
    /// Alertmanager's `Route.Match`: a route matches when all its matchers do; its children are
    /// tried in order, and the first matching child stops the search among its siblings unless
    /// that child has `continue: true`; a matching route none of whose children match is
    /// itself the result. The root always matches, so the result is never empty.
    public func match(_ labels: Labels) -> [Route] {
        var out: [Route] = []
        _ = collect(0, labels, into: &out)
        return out
    }

    /// Appends the matches below `index`; returns whether `index` matched at all.
    private func collect(_ index: Int, _ labels: Labels, into out: inout [Route]) -> Bool {
        let r = routes[index]
        guard r.matchers.matches(labels) else { return false }
        let before = out.count
        for c in r.children {
            let matched = collect(c, labels, into: &out)
            if matched && !routes[c].continueMatching { break }
        }
        if out.count == before { out.append(r) }
        return true
    }
}
