import Testing

@testable import StarlingMembership

/// Direct state-machine tests: two or three instances wired by hand, a manual clock, no network.
@Suite struct InstanceTests {
    typealias Instance = SWIMInstance<Xoshiro256>

    static func make(_ i: Int, settings: SWIMSettings = .lan, cluster: ClusterID = .default,
                     keyring: Keyring = Keyring(), nowMs: Int64 = 0) -> Instance {
        Instance(id: NodeID(high: UInt64(i), low: UInt64(i)), name: "n\(i)", address: GossipAddress(host: "h\(i)", port: 7946),
                 metadata: NodeMetadata(httpAddress: "h\(i):9090", state: .active), settings: settings, cluster: cluster,
                 keyring: keyring, seed: UInt64(i), nowMs: nowMs)
    }

    static func record(_ x: Instance, status: MemberStatus = .alive) -> MemberRecord {
        var r = MemberRecord(x.myself)
        r.status = status
        return r
    }

    static func sends(_ d: [SWIMDirective]) -> [(GossipAddress, [UInt8], SWIMPacket)] {
        d.compactMap { if case .send(let to, let b, let p) = $0 { return (to, b, p) } else { return nil } }
    }

    static func changes(_ d: [SWIMDirective]) -> [MembershipChange] {
        d.compactMap { if case .memberChanged(let c) = $0 { return c } else { return nil } }
    }

    static func nextTick(_ d: [SWIMDirective]) -> Int64 {
        guard case .scheduleTick(let at) = d.last else { Issue.record("last directive is not scheduleTick"); return .max }
        return at
    }

    @Test func everyBatchEndsWithOneScheduleTick() {
        var a = Self.make(1)
        for d in [a.onTick(nowMs: 0), a.onDatagram([9, 9], from: GossipAddress(host: "x", port: 1), nowMs: 1),
                  a.join(seeds: [GossipAddress(host: "s", port: 1)], nowMs: 2)] {
            #expect(d.filter { if case .scheduleTick = $0 { true } else { false } }.count == 1)
            #expect(Self.nextTick(d) >= 0)
        }
    }

    @Test func pingIsAckedAndProbeSucceeds() throws {
        var a = Self.make(1), b = Self.make(2)
        _ = a.seedView([Self.record(b)], from: b.myself.id, nowMs: 0)
        _ = b.seedView([Self.record(a)], from: a.myself.id, nowMs: 0)
        let d = a.onTick(nowMs: 1_000)
        let pings = Self.sends(d).filter { if case .ping = $0.2.message { true } else { false } }
        try #require(pings.count == 1)
        guard case .ping(_, let target) = pings[0].2.message else { Issue.record("expected ping"); return }
        #expect(target == b.myself.id)
        let reply = Self.sends(b.onDatagram(pings[0].1, from: a.myself.address, nowMs: 1_001))
        try #require(reply.count == 1)
        guard case .ack = reply[0].2.message else { Issue.record("expected ack"); return }
        _ = a.onDatagram(reply[0].1, from: b.myself.address, nowMs: 1_002)
        #expect(a.probe == nil)
        #expect(a.stats.acksReceived == 1)
        #expect(a.member(b.myself.id)?.status == .alive)
    }

    /// ping times out → ping-req to peers → nobody answers → suspect → dead after the Lifeguard
    /// timeout (no confirmations: the maximum), with the exact formula values.
    @Test func unansweredProbeLeadsToSuspectThenDead() throws {
        var a = Self.make(1), b = Self.make(2), c = Self.make(3)
        let records = [Self.record(a), Self.record(b), Self.record(c)]
        _ = a.seedView(records, from: b.myself.id, nowMs: 0)
        var now: Int64 = 0
        var suspectAt: Int64?
        var deadAt: Int64?
        var pingReqs = 0
        while now < 120_000 && deadAt == nil {
            let d = a.onTick(nowMs: now)
            for (_, _, p) in Self.sends(d) { if case .pingReq = p.message { pingReqs += 1 } }
            for ch in Self.changes(d) where ch.member.id == b.myself.id {
                if ch.kind == .suspect { suspectAt = now }
                if ch.kind == .dead { deadAt = now }
            }
            now = Self.nextTick(d)
        }
        // Both b and c never answer: each gets suspected; check b.
        let s = try #require(suspectAt), dd = try #require(deadAt)
        #expect(pingReqs > 0)
        let settings = SWIMSettings.lan
        // n = 3: min = 4 × max(1, log10 3) × 1 s = 4 s; k = 2 but n − 2 = 1 < 2 → k = 0 → min.
        #expect(settings.suspicionMinTimeoutMs(memberCount: 3) == 4_000)
        #expect(settings.expectedConfirmations(memberCount: 3) == 0)
        #expect(dd - s >= 4_000)
        #expect(a.health > 0, "failed probes with no nacks raise local health multiplier")
    }

    @Test func lifeguardTimeoutFormula() {
        let s = SWIMSettings.lan
        #expect(s.suspicionMinTimeoutMs(memberCount: 5) == 4_000)
        #expect(s.suspicionMinTimeoutMs(memberCount: 100) == 8_000)
        #expect(s.suspicionMinTimeoutMs(memberCount: 1_000) == 12_000)
        #expect(s.suspicionMaxTimeoutMs(memberCount: 5) == 24_000)
        #expect(s.expectedConfirmations(memberCount: 5) == 2)
        let t0 = SWIMSettings.suspicionTimeoutMs(confirmations: 0, expected: 2, minMs: 4_000, maxMs: 24_000)
        let t1 = SWIMSettings.suspicionTimeoutMs(confirmations: 1, expected: 2, minMs: 4_000, maxMs: 24_000)
        let t2 = SWIMSettings.suspicionTimeoutMs(confirmations: 2, expected: 2, minMs: 4_000, maxMs: 24_000)
        #expect(t0 == 24_000)
        #expect(t1 == 11_381)  // 24 − 20 × ln 2 / ln 3
        #expect(t2 == 4_000)
        #expect(s.retransmitLimit(memberCount: 5) == 4)
        #expect(s.retransmitLimit(memberCount: 10) == 8)
        #expect(s.retransmitLimit(memberCount: 1_000) == 16)
        #expect(s.scaledPushPullIntervalMs(memberCount: 32) == 30_000)
        #expect(s.scaledPushPullIntervalMs(memberCount: 64) == 60_000)
        #expect(abs(log(8) - 2.0794415416798357) < 1e-12)
        #expect(abs(log10(1000) - 3) < 1e-12)
    }

    @Test func confirmationsShortenSuspicion() {
        var a = Self.make(1)
        let others = (2...6).map { Self.make($0) }
        _ = a.seedView([Self.record(a)] + others.map { Self.record($0) }, from: others[0].myself.id, nowMs: 0)
        let victim = others[0].myself.id
        var d = a.onDatagram(Self.gossip(from: others[1], [.suspect(id: victim, incarnation: 0, from: others[1].myself.id)]),
                             from: others[1].myself.address, nowMs: 100)
        #expect(Self.changes(d).map(\.kind) == [.suspect])
        #expect(a.suspicions[victim].map(\.deadlineMs) == Int64(24_100))
        d = a.onDatagram(Self.gossip(from: others[2], [.suspect(id: victim, incarnation: 0, from: others[2].myself.id)]),
                         from: others[2].myself.address, nowMs: 200)
        #expect(a.suspicions[victim].map(\.deadlineMs) == Int64(11_481))
        // A repeated confirmation from the same node does not count twice.
        d = a.onDatagram(Self.gossip(from: others[2], [.suspect(id: victim, incarnation: 0, from: others[2].myself.id)]),
                         from: others[2].myself.address, nowMs: 300)
        #expect(a.suspicions[victim].map(\.deadlineMs) == Int64(11_481))
        d = a.onDatagram(Self.gossip(from: others[3], [.suspect(id: victim, incarnation: 0, from: others[3].myself.id)]),
                         from: others[3].myself.address, nowMs: 400)
        #expect(a.suspicions[victim].map(\.deadlineMs) == Int64(4_100))
        d = a.onTick(nowMs: 4_100)
        #expect(Self.changes(d).contains { $0.kind == .dead && $0.member.id == victim })
    }

    static func gossip(from x: Instance, _ updates: [GossipUpdate], cluster: ClusterID = .default) -> [UInt8] {
        var r = Xoshiro256(seed: 99)
        return Envelope.seal(SWIMCodec.encode(SWIMPacket(sender: x.myself.id, message: .gossip, updates: updates), cluster: cluster),
                             keyring: Keyring(), random: &r)
    }

    @Test func suspicionAboutSelfIsRefutedWithHigherIncarnation() {
        var a = Self.make(1)
        let b = Self.make(2)
        _ = a.seedView([Self.record(b)], from: b.myself.id, nowMs: 0)
        _ = a.onDatagram(Self.gossip(from: b, [.suspect(id: a.myself.id, incarnation: 0, from: b.myself.id)]), from: b.myself.address, nowMs: 10)
        #expect(a.myself.incarnation == 1)
        #expect(a.stats.selfRefutations == 1)
        #expect(a.health == 1)
        // The refutation goes out on the next datagram.
        let out = Self.sends(a.onTick(nowMs: 2_000)).flatMap { $0.2.updates }
        #expect(out.contains { if case .alive(let u) = $0 { u.id == a.myself.id && u.incarnation == 1 } else { false } })
        // A stale suspicion (old incarnation) is ignored.
        _ = a.onDatagram(Self.gossip(from: b, [.dead(id: a.myself.id, incarnation: 0, from: b.myself.id)]), from: b.myself.address, nowMs: 20)
        #expect(a.myself.incarnation == 2, "dead about self is always refuted")
        _ = a.onDatagram(Self.gossip(from: b, [.suspect(id: a.myself.id, incarnation: 0, from: b.myself.id)]), from: b.myself.address, nowMs: 30)
        #expect(a.myself.incarnation == 2)
    }

    @Test func refutationBringsSuspectBackAlive() {
        var a = Self.make(1)
        var b = Self.make(2)
        _ = a.seedView([Self.record(b)], from: b.myself.id, nowMs: 0)
        _ = a.onDatagram(Self.gossip(from: b, [.suspect(id: b.myself.id, incarnation: 0, from: NodeID(high: 9, low: 9))]),
                         from: b.myself.address, nowMs: 1)
        #expect(a.member(b.myself.id)?.status == .suspect)
        _ = b.onDatagram(Self.gossip(from: a, [.suspect(id: b.myself.id, incarnation: 0, from: a.myself.id)]), from: a.myself.address, nowMs: 2)
        let refutation = GossipUpdate.alive(b.aliveUpdate(b.myself))
        let d = a.onDatagram(Self.gossip(from: b, [refutation]), from: b.myself.address, nowMs: 3)
        #expect(Self.changes(d).map(\.kind) == [.alive])
        #expect(a.member(b.myself.id)?.status == .alive)
        #expect(a.stats.suspicionsRefuted == 1)
        #expect(a.suspicions.isEmpty)
    }

    /// A new node reusing a dead node's address must not answer pings meant for the old one.
    @Test func pingForAnotherNodeIDIsNotAnswered() {
        var newcomer = Self.make(2)
        let old = NodeID(high: 77, low: 77)
        var r = Xoshiro256(seed: 1)
        let ping = Envelope.seal(SWIMCodec.encode(SWIMPacket(sender: NodeID(high: 1, low: 1), message: .ping(seq: 5, target: old)),
                                                  cluster: .default), keyring: Keyring(), random: &r)
        let d = newcomer.onDatagram(ping, from: GossipAddress(host: "h1", port: 7946), nowMs: 0)
        #expect(Self.sends(d).isEmpty)
        #expect(newcomer.stats.pingsForOtherNode == 1)
    }

    @Test func ownIDFromAnotherAddressIsCountedNotApplied() {
        var a = Self.make(1)
        let twin = Self.make(1)
        _ = a.onDatagram(Self.gossip(from: twin, [.suspect(id: a.myself.id, incarnation: 5, from: a.myself.id)]),
                         from: GossipAddress(host: "elsewhere", port: 7946), nowMs: 1)
        #expect(a.stats.duplicateNodeID == 1)
        #expect(a.myself.incarnation == 0)
    }

    @Test func addressChangeWithHigherIncarnationUpdatesSameMember() {
        var a = Self.make(1)
        let b = Self.make(2)
        _ = a.seedView([Self.record(b)], from: b.myself.id, nowMs: 0)
        var moved = b.aliveUpdate(b.myself)
        moved.address = GossipAddress(host: "10.9.9.9", port: 7946)
        moved.incarnation = 1
        let d = a.onDatagram(Self.gossip(from: b, [.alive(moved)]), from: moved.address, nowMs: 5)
        #expect(Self.changes(d).map(\.kind) == [.metadataChanged])
        #expect(a.member(b.myself.id)?.address.host == "10.9.9.9")
        #expect(a.allMembers.count == 2)
        _ = b
    }

    @Test func foreignClusterVersionAndGarbageAreCountedNotApplied() {
        var a = Self.make(1)
        let b = Self.make(2)
        _ = a.onDatagram(Self.gossip(from: b, [.alive(b.aliveUpdate(b.myself))], cluster: ClusterID("other")), from: b.myself.address, nowMs: 1)
        #expect(a.stats.wrongCluster == 1)
        #expect(a.allMembers.count == 1)
        _ = a.onDatagram([0, 7, 7, 7], from: b.myself.address, nowMs: 2)
        #expect(a.stats.unsupportedVersion == 1)
        _ = a.onDatagram([0, 1, 2], from: b.myself.address, nowMs: 3)
        #expect(a.stats.malformed == 1)
        _ = a.onDatagram([], from: b.myself.address, nowMs: 4)
        #expect(a.stats.authenticationFailures == 1)
        #expect(a.allMembers.count == 1)
    }

    @Test func encryptedClusterDropsUnauthenticated() throws {
        let ring = try Keyring(rawKeys: [[UInt8](repeating: 3, count: 32)])
        var a = Self.make(1, keyring: ring)
        let b = Self.make(2)
        _ = a.onDatagram(Self.gossip(from: b, [.alive(b.aliveUpdate(b.myself))]), from: b.myself.address, nowMs: 1)
        #expect(a.stats.authenticationFailures == 1)
        #expect(a.allMembers.count == 1)
        var rng = Xoshiro256(seed: 5)
        let wrongKey = try Keyring(rawKeys: [[UInt8](repeating: 4, count: 32)])
        let sealed = Envelope.seal(SWIMCodec.encode(SWIMPacket(sender: b.myself.id, message: .gossip, updates: [.alive(b.aliveUpdate(b.myself))]),
                                                    cluster: .default), keyring: wrongKey, random: &rng)
        _ = a.onDatagram(sealed, from: b.myself.address, nowMs: 2)
        #expect(a.stats.authenticationFailures == 2)
        let good = Envelope.seal(SWIMCodec.encode(SWIMPacket(sender: b.myself.id, message: .gossip, updates: [.alive(b.aliveUpdate(b.myself))]),
                                                  cluster: .default), keyring: ring, random: &rng)
        let d = a.onDatagram(good, from: b.myself.address, nowMs: 3)
        #expect(Self.changes(d).map(\.kind) == [.joined])
    }

    @Test func datagramsStayWithinPayloadBudget() {
        var a = Self.make(1)
        // 300 members with long metadata: far more updates than fit in one datagram.
        let records = (2..<302).map { i in
            MemberRecord(id: NodeID(high: UInt64(i), low: 0), name: String(repeating: "n", count: 100),
                         address: GossipAddress(host: String(repeating: "h", count: 200), port: 1), incarnation: 0, status: .alive,
                         metadata: NodeMetadata(httpAddress: String(repeating: "x", count: 120), zone: "z", state: .active))
        }
        for r in records {
            _ = a.onDatagram(Self.gossip(from: Self.make(2), [.alive(AliveUpdate(id: r.id, incarnation: 0, name: r.name, address: r.address, metadata: r.metadata))]),
                             from: GossipAddress(host: "h2", port: 7946), nowMs: 0)
        }
        #expect(a.pendingBroadcasts == 300)
        var now: Int64 = 0
        var sent = 0
        for _ in 0..<200 {
            let d = a.onTick(nowMs: now)
            for (_, bytes, p) in Self.sends(d) {
                sent += 1
                #expect(bytes.count <= SWIMSettings.lan.maxPayloadBytes)
                #expect(!p.updates.isEmpty || p.message != .gossip)
            }
            now = Self.nextTick(d)
        }
        #expect(sent > 0)
        #expect(a.stats.largestDatagramSent <= 1_400)
        #expect(a.stats.largestDatagramSent > 1_000, "packets are filled")
    }

    /// Compose and Kubernetes give every node the same seed list, the first node included: a
    /// node whose seeds answer only with its own ID starts a cluster of its own (it must not
    /// stay `joining` forever), keeps polling the seeds with backoff while alone, and merges
    /// with a peer that comes up later behind the same seed name.
    @Test func seedListOfOnlyItselfStartsAClusterThenMergesLater() throws {
        var a = Self.make(1, settings: .localTest)
        var b = Self.make(2, settings: .localTest)
        let service = GossipAddress(host: "starling", port: 7946)  // resolves to a (and later b)
        var d = a.join(seeds: [service], nowMs: 0)
        #expect(a.isJoining)
        var frames = d.compactMap { if case .pushPull(_, true, let f) = $0 { f } else { nil } }
        try #require(frames.count == 1)
        // The seed name resolved to a itself: a answers its own push-pull.
        var (reply, _) = a.onPushPullRequest(frames[0], from: a.myself.address, nowMs: 1)
        d = a.onPushPullResponse(reply!, from: service, join: true, nowMs: 2)
        #expect(!a.isJoining, "a cluster of one, not joining forever")
        #expect(a.stats.joinsEndedAlone == 1)

        // Alone, it goes back to the seed, with backoff rather than every tick.
        var now: Int64 = 2
        var retries: [Int64] = []
        for _ in 0..<5_000 where retries.count < 2 {
            now = Self.nextTick(d)
            d = a.onTick(nowMs: now)
            frames = d.compactMap { if case .pushPull(_, true, let f) = $0 { f } else { nil } }
            if let f = frames.first {
                retries.append(now)
                if retries.count == 1 {
                    // Still only itself behind the name.
                    (reply, _) = a.onPushPullRequest(f, from: a.myself.address, nowMs: now)
                    d = a.onPushPullResponse(reply!, from: service, join: true, nowMs: now + 1)
                    #expect(!a.isJoining)
                } else {
                    // b is up now and the name resolves to it.
                    let (r, _) = b.onPushPullRequest(f, from: a.myself.address, nowMs: now)
                    d = a.onPushPullResponse(r!, from: service, join: true, nowMs: now + 1)
                }
            }
        }
        try #require(retries.count == 2)
        #expect(retries[1] - retries[0] >= 320, "backoff continues from the first join's attempts")
        #expect(a.allMembers.map(\.id) == [a.myself.id, b.myself.id])
        #expect(b.allMembers.map(\.id) == [a.myself.id, b.myself.id])
    }

    /// The first node's seeds reach only itself, but a peer joined through it in the meantime:
    /// its join ends (it is in a cluster), without counting as starting alone.
    @Test func seedListOfItselfEndsTheJoinWhenOthersJoinedThroughIt() throws {
        var a = Self.make(1, settings: .localTest)
        var b = Self.make(2, settings: .localTest)
        let service = GossipAddress(host: "starling", port: 7946)
        let d = a.join(seeds: [service], nowMs: 0)
        let frames = d.compactMap { if case .pushPull(_, true, let f) = $0 { f } else { nil } }
        try #require(frames.count == 1)
        // b joins through a before a's own push-pull comes back.
        let bFrames = b.join(seeds: [a.myself.address], nowMs: 1).compactMap { if case .pushPull(_, true, let f) = $0 { f } else { nil } }
        let (bReply, _) = a.onPushPullRequest(try #require(bFrames.first), from: b.myself.address, nowMs: 2)
        _ = b.onPushPullResponse(bReply!, from: a.myself.address, join: true, nowMs: 3)
        #expect(a.isJoining)
        _ = a.onPushPullReachedSelf(to: service, join: true, nowMs: 4)
        #expect(!a.isJoining)
        #expect(a.stats.joinsEndedAlone == 0)
        #expect(a.liveCount == 2 && !b.isJoining)
    }

    @Test func joinRetriesWithBackoffThenSucceeds() throws {
        var a = Self.make(1, settings: .localTest)
        var b = Self.make(2, settings: .localTest)
        let seed = b.myself.address
        var d = a.join(seeds: [seed], nowMs: 0)
        var frames = d.compactMap { if case .pushPull(_, true, let f) = $0 { f } else { nil } }
        #expect(frames.count == 1)
        var attempts: [Int64] = [0]
        var now: Int64 = 0
        for _ in 0..<4 {
            d = a.onPushPullFailed(to: seed, join: true, nowMs: now)
            frames = []
            // Tick through probe/gossip deadlines until the retry fires.
            for _ in 0..<1_000 where frames.isEmpty {
                now = Self.nextTick(d)
                d = a.onTick(nowMs: now)
                frames = d.compactMap { if case .pushPull(_, true, let f) = $0 { f } else { nil } }
            }
            try #require(frames.count == 1)
            attempts.append(now)
        }
        let gaps = zip(attempts.dropFirst(), attempts).map { $0 - $1 }
        #expect(gaps[0] >= 160 && gaps[0] <= 240)  // 200 ms ± 20%
        #expect(gaps[1] >= 320 && gaps[1] <= 480)
        #expect(gaps[3] >= 1_280 && gaps[3] <= 1_920)
        #expect(a.isJoining)
        let (reply, bd) = b.onPushPullRequest(frames[0], from: a.myself.address, nowMs: now + 1)
        #expect(Self.changes(bd).map(\.kind) == [.joined])
        d = a.onPushPullResponse(reply!, from: seed, join: true, nowMs: now + 2)
        #expect(Self.changes(d).map(\.kind) == [.joined])
        #expect(!a.isJoining)
        #expect(a.allMembers.map(\.id) == [a.myself.id, b.myself.id])
    }

    @Test func restartedNodeRejoinsAboveItsOldIncarnation() {
        var seedNode = Self.make(2)
        var old = Self.make(1)
        // The cluster knows node 1 at incarnation 5, now dead.
        var rec = Self.record(old)
        rec.incarnation = 5
        rec.status = .dead
        _ = seedNode.seedView([rec], from: NodeID(high: 3, low: 3), nowMs: 0)
        #expect(seedNode.member(old.myself.id)?.status == nil, "unknown members are not added from a death")
        rec.status = .alive
        _ = seedNode.seedView([rec], from: NodeID(high: 3, low: 3), nowMs: 0)
        _ = seedNode.onDatagram(Self.gossip(from: Self.make(3), [.dead(id: old.myself.id, incarnation: 5, from: NodeID(high: 3, low: 3))]),
                                from: GossipAddress(host: "h3", port: 1), nowMs: 1)
        #expect(seedNode.member(old.myself.id)?.status == .dead)
        old = Self.make(1)  // restarted: incarnation 0
        let joinFrame = old.join(seeds: [seedNode.myself.address], nowMs: 10).compactMap {
            if case .pushPull(_, _, let f) = $0 { f } else { nil }
        }[0]
        let (reply, _) = seedNode.onPushPullRequest(joinFrame, from: old.myself.address, nowMs: 11)
        #expect(seedNode.member(old.myself.id)?.status == .dead, "incarnation 0 does not override a death at 5")
        _ = old.onPushPullResponse(reply!, from: seedNode.myself.address, join: true, nowMs: 12)
        #expect(old.myself.incarnation == 6)
        let out = Self.sends(old.onTick(nowMs: 2_000))
        for (_, bytes, _) in out where true {
            let d = seedNode.onDatagram(bytes, from: old.myself.address, nowMs: 2_001)
            if Self.changes(d).contains(where: { $0.kind == .alive }) { break }
        }
        #expect(seedNode.member(old.myself.id)?.status == .alive)
        #expect(seedNode.member(old.myself.id)?.incarnation == 6)
    }

    @Test func tombstonesAreReclaimed() {
        var a = Self.make(1, settings: .localTest)
        let b = Self.make(2)
        _ = a.seedView([Self.record(b)], from: b.myself.id, nowMs: 0)
        var d = a.onDatagram(Self.gossip(from: Self.make(3), [.left(id: b.myself.id, incarnation: 1)]), from: GossipAddress(host: "h3", port: 1), nowMs: 100)
        #expect(Self.changes(d).map(\.kind) == [.left])
        d = a.onTick(nowMs: 100 + 29_999)
        #expect(!Self.changes(d).contains { $0.kind == .removed })
        d = a.onTick(nowMs: 100 + 30_000)
        #expect(Self.changes(d).map(\.kind) == [.removed])
        #expect(a.member(b.myself.id) == nil)
    }

    @Test func leaveIsAnnouncedAndProbingStops() {
        var a = Self.make(1)
        let others = (2...4).map { Self.make($0) }
        _ = a.seedView(others.map { Self.record($0) }, from: others[0].myself.id, nowMs: 0)
        let d = a.leave(nowMs: 10)
        #expect(Self.changes(d).map(\.kind) == [.left])
        let immediate = Self.sends(d)
        #expect(immediate.count == 3)
        #expect(immediate.allSatisfy { $0.2.updates.contains(.left(id: a.myself.id, incarnation: 1)) })
        #expect(!a.isLeaveComplete)
        var now: Int64 = 10
        for _ in 0..<100 {
            let t = a.onTick(nowMs: now)
            #expect(!Self.sends(t).contains { if case .ping = $0.2.message { true } else { false } })
            now = Self.nextTick(t)
        }
        #expect(a.isLeaveComplete)
    }

    @Test func leaveInATwoNodeClusterWaitsForTheAnnouncement() {
        var a = Self.make(1)
        let b = Self.make(2)
        _ = a.seedView([Self.record(b)], from: b.myself.id, nowMs: 0, disseminate: false)
        let d = a.leave(nowMs: 0)
        #expect(Self.sends(d).count == 1)
        #expect(!a.isLeaveComplete, "one other member still has to hear it")
        var alone = Self.make(3)
        _ = alone.leave(nowMs: 0)
        #expect(alone.isLeaveComplete, "nobody to tell")
    }

    @Test func suspicionOfALeftMemberReassertsTheLeave() {
        var a = Self.make(1)
        let b = Self.make(2), c = Self.make(3)
        _ = a.seedView([Self.record(b), Self.record(c)], from: b.myself.id, nowMs: 0, disseminate: false)
        _ = a.onDatagram(Self.gossip(from: b, [.left(id: b.myself.id, incarnation: 1)]), from: b.myself.address, nowMs: 1)
        _ = a.onTick(nowMs: 10_000)  // let the left update run out of retransmissions
        for t in stride(from: Int64(10_000), to: 20_000, by: 200) { _ = a.onTick(nowMs: t) }
        #expect(!a.broadcasts.contains(subject: b.myself.id))
        _ = a.onDatagram(Self.gossip(from: c, [.suspect(id: b.myself.id, incarnation: 1, from: c.myself.id)]), from: c.myself.address, nowMs: 20_001)
        #expect(a.member(b.myself.id)?.status == .left)
        #expect(a.broadcasts.contains(subject: b.myself.id), "the leave is gossiped again to whoever missed it")
    }

    @Test func metadataUpdateRaisesIncarnation() {
        var a = Self.make(1)
        var m = a.myself.metadata
        m.state = .leaving
        let d = a.updateMetadata(m, nowMs: 5)
        #expect(a.myself.incarnation == 1)
        #expect(Self.changes(d).map(\.kind) == [.metadataChanged])
        #expect(a.pendingBroadcasts == 1)
    }

    @Test func sameSeedSameOutput() {
        func run() -> [[UInt8]] {
            var a = Self.make(1)
            _ = a.seedView((2...20).map { Self.record(Self.make($0)) }, from: NodeID(high: 2, low: 2), nowMs: 0)
            var out: [[UInt8]] = []
            var now: Int64 = 0
            for _ in 0..<300 {
                let d = a.onTick(nowMs: now)
                out += Self.sends(d).map(\.1)
                now = Self.nextTick(d)
            }
            return out
        }
        #expect(run() == run())
    }
}
