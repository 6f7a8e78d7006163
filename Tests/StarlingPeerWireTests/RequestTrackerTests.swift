import StarlingCore
import Testing
@testable import StarlingPeerWire

@Suite struct RequestTrackerTests {
    typealias T = PeerRequestTracker

    static func response(_ type: PeerMessageType, _ id: UInt64, end: Bool = false) -> PeerFrame {
        PeerFrame(type: type, flags: end ? [.response, .endOfStream] : [.response], requestID: id, placementVersion: 0, payload: [])
    }

    @Test func pipelinedAnswersInAnyOrder() {
        var t = T()
        var ids: [UInt64] = []
        for _ in 0..<3 {
            guard case let .send(id, deadline) = t.begin(.write, timeoutMs: 500, nowMs: 1000) else { Issue.record("refused"); return }
            #expect(deadline == 1500)
            ids.append(id)
        }
        #expect(ids == [1, 2, 3])
        #expect(t.inFlight == 3)
        #expect(t.onFrame(Self.response(.writeAck, 3)) == .deliver(requestID: 3, finished: true))
        #expect(t.onFrame(Self.response(.error, 1)) == .deliver(requestID: 1, finished: true))
        #expect(t.onFrame(Self.response(.writeAck, 2)) == .deliver(requestID: 2, finished: true))
        #expect(t.inFlight == 0)
        // A duplicate answer is late, not a crash.
        #expect(t.onFrame(Self.response(.writeAck, 2)) == .late(requestID: 2))
    }

    @Test func streamsEndOnlyWithStreamEnd() {
        var t = T()
        guard case let .send(id, nil) = t.begin(.select, timeoutMs: 0, nowMs: 0) else { Issue.record("refused"); return }
        #expect(t.onFrame(Self.response(.seriesFrame, id)) == .deliver(requestID: id, finished: false))
        #expect(t.onFrame(Self.response(.seriesFrame, id)) == .deliver(requestID: id, finished: false))
        #expect(t.inFlight == 1)
        #expect(t.onFrame(Self.response(.streamEnd, id, end: true)) == .deliver(requestID: id, finished: true))
        #expect(t.inFlight == 0)

        guard case let .send(id2, _) = t.begin(.fetchShard, timeoutMs: 0, nowMs: 0) else { return }
        if case .violation = t.onFrame(Self.response(.streamEnd, id2)) {} else { Issue.record("stream_end without end flag accepted") }
        if case .violation = t.onFrame(Self.response(.seriesFrame, id2, end: true)) {} else { Issue.record("series_frame ending a stream accepted") }
        // An error ends a stream.
        #expect(t.onFrame(Self.response(.error, id2)) == .deliver(requestID: id2, finished: true))
    }

    @Test func protocolViolations() {
        var t = T()
        guard case let .send(id, _) = t.begin(.ping, timeoutMs: 0, nowMs: 0) else { return }
        var notResponse = Self.response(.ping, id)
        notResponse.flags = []
        for (frame, fragment) in [
            (notResponse, "without the response flag"),
            (Self.response(.writeAck, id), "does not answer ping"),
            (Self.response(.ping, 99), "never issued"),
            (Self.response(.ping, 0), "never issued"),
        ] {
            guard case let .violation(reason) = t.onFrame(frame) else { Issue.record("\(frame) accepted"); continue }
            #expect(reason.contains(fragment), "\(reason)")
        }
        #expect(t.inFlight == 1)
    }

    @Test func boundedInFlight() {
        var t = T(settings: .init(maxInFlight: 2))
        _ = t.begin(.write, timeoutMs: 0, nowMs: 0)
        _ = t.begin(.write, timeoutMs: 0, nowMs: 0)
        #expect(t.begin(.write, timeoutMs: 0, nowMs: 0) == .overloaded(inFlight: 2, limit: 2))
        _ = t.onFrame(Self.response(.writeAck, 1))
        #expect(t.begin(.write, timeoutMs: 0, nowMs: 0) == .send(requestID: 3, deadlineMs: nil))
    }

    @Test func deadlinesExpireAndLateAnswersAreRecognised() {
        var t = T()
        _ = t.begin(.write, timeoutMs: 100, nowMs: 1000)  // 1: 1100
        _ = t.begin(.select, timeoutMs: 50, nowMs: 1010)  // 2: 1060
        _ = t.begin(.ping, timeoutMs: 0, nowMs: 1010)  // 3: none
        #expect(t.nextDeadlineMs == 1060)
        #expect(t.onTick(nowMs: 1059).isEmpty)
        #expect(t.onTick(nowMs: 1060) == [2])
        #expect(t.nextDeadlineMs == 1100)
        #expect(t.onFrame(Self.response(.seriesFrame, 2)) == .late(requestID: 2))
        #expect(t.onTick(nowMs: 10_000) == [1])
        #expect(t.nextDeadlineMs == nil)
        t.cancel(3)
        #expect(t.onFrame(Self.response(.ping, 3)) == .late(requestID: 3))
        _ = t.begin(.blockDigests, timeoutMs: 0, nowMs: 0)
        _ = t.begin(.seriesDigests, timeoutMs: 0, nowMs: 0)
        #expect(t.onClosed() == [4, 5])
        #expect(t.inFlight == 0)
    }

    @Test func everyRequestTypeHasResponsesAndOnlyRequestsDo() {
        let requests: Set<PeerMessageType> = [.ping, .write, .hintDelivery, .select, .fetchShard, .blockDigests, .seriesDigests, .labelQuery,
                                               .shardState, .pushChunks, .ruleGroups, .postAlerts,
                                               .alertmanagerOp, .rulesOp]
        for type in PeerMessageType.allCases {
            #expect(T.responseTypes(for: type).isEmpty == !requests.contains(type), "\(type)")
        }
    }
}
