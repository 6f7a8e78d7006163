/// Cumulative counters kept by the instance. The shell exports them as metrics (differences
/// between two reads become counter increments); the simulator reads them for its figures.
public struct SWIMStats: Sendable, Equatable {
    // Probing
    public var probesSent: UInt64 = 0
    /// Probes with neither a direct nor an indirect ack by the end of the probe interval.
    public var probesFailed: UInt64 = 0
    public var pingReqsSent: UInt64 = 0
    public var acksReceived: UInt64 = 0
    public var nacksReceived: UInt64 = 0
    public var nacksSent: UInt64 = 0
    /// Ping-reqs refused because `Limits.maxRelayedProbes` relays were already in flight.
    public var relaysDroppedAtLimit: UInt64 = 0
    /// Pings addressed to another node ID (a new node on a reused address); not answered.
    public var pingsForOtherNode: UInt64 = 0

    // Failure detection
    /// Members that became suspect in this node's view (from its own probes or from gossip).
    public var suspicionsRaised: UInt64 = 0
    /// Suspicions this node started itself after a failed probe.
    public var suspicionsStartedLocally: UInt64 = 0
    /// Suspect members seen coming back alive with a higher incarnation: false suspicions refuted.
    public var suspicionsRefuted: UInt64 = 0
    /// Times this node refuted a suspicion or death claim about itself.
    public var selfRefutations: UInt64 = 0
    /// Members that became dead in this node's view.
    public var membersDeclaredDead: UInt64 = 0
    /// Members declared dead by this node's own suspicion timeout.
    public var deathsDeclaredLocally: UInt64 = 0

    // Traffic
    public var datagramsSent: UInt64 = 0
    public var bytesSent: UInt64 = 0
    public var largestDatagramSent: Int = 0
    public var datagramsReceived: UInt64 = 0
    public var bytesReceived: UInt64 = 0
    /// Gossip updates piggybacked on sent datagrams.
    public var updatesSent: UInt64 = 0
    public var updatesReceived: UInt64 = 0

    // Rejections (nothing rejected is parsed further or applied)
    /// Envelopes no key authenticates, plaintext refused, or encrypted without keys.
    public var authenticationFailures: UInt64 = 0
    public var malformed: UInt64 = 0
    public var wrongCluster: UInt64 = 0
    public var unsupportedVersion: UInt64 = 0
    /// Datagrams carrying this node's own ID from another address: two nodes share an ID.
    public var duplicateNodeID: UInt64 = 0

    // Push-pull and join
    public var pushPullsStarted: UInt64 = 0
    public var pushPullsCompleted: UInt64 = 0
    public var pushPullsFailed: UInt64 = 0
    public var pushPullsServed: UInt64 = 0
    public var pushPullsRejected: UInt64 = 0
    public var joinAttempts: UInt64 = 0
    /// Joins that ended with every seed being this node or unreachable: the node started a
    /// cluster of its own (first node of a Compose file or StatefulSet).
    public var joinsEndedAlone: UInt64 = 0

    public init() {}
}
