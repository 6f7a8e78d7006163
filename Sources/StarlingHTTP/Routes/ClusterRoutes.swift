import Foundation
import Hummingbird
import NIOCore
import StarlingCore
import StarlingMembership

/// What the cluster routes need from the membership layer. The node implements it over the
/// gossip shell; route tests implement it over a fixed list. Keeping it a protocol here keeps
/// NIO's gossip shell out of the HTTP target.
public protocol ClusterMembershipSource: Sendable {
    func clusterMembers() async -> ClusterMembersSnapshot
}

/// One consistent snapshot of this node's membership view.
public struct ClusterMembersSnapshot: Sendable {
    public var clusterID: String
    /// The node answering.
    public var localID: NodeID
    /// Every member this node knows, including itself and tombstones (dead/left members not yet
    /// reclaimed), sorted by node ID.
    public var members: [Member]
    /// Added to a member's `lastChangeMs` (the membership layer's monotonic clock) gives Unix
    /// milliseconds.
    public var wallOffsetMs: Int64

    public init(clusterID: String, localID: NodeID, members: [Member], wallOffsetMs: Int64) {
        self.clusterID = clusterID
        self.localID = localID
        self.members = members
        self.wallOffsetMs = wallOffsetMs
    }
}

/// `GET /api/v1/cluster/members` (role reader or admin): this node's view of the cluster, as
/// documented in docs/api.md. Each node answers from its own view; views converge within a few
/// gossip rounds, so two nodes may briefly disagree about a member that just changed.
public struct ClusterRoutes: Sendable {
    let source: any ClusterMembershipSource
    let metrics: StarlingMetrics

    public init(source: any ClusterMembershipSource, metrics: StarlingMetrics) {
        self.source = source
        self.metrics = metrics
    }

    public func routes() -> RouteCollection<StarlingRequestContext> {
        let r = RouteCollection(context: StarlingRequestContext.self)
            .add(middleware: RequirePermission(.read, metrics: metrics))
        r.get("api/v1/cluster/members") { _, _ in
            let snapshot = await source.clusterMembers()
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(bytes: Self.render(snapshot))))
        }
        return r
    }

    /// The response body: `{"status":"success","data":{"cluster":…,"local":…,"members":[…]}}`.
    public static func render(_ s: ClusterMembersSnapshot) -> [UInt8] {
        var w = JSONWriter(reserving: 128 + 384 * s.members.count)
        w.beginObject()
        w.field("status", "success")
        w.key("data")
        w.beginObject()
        w.field("cluster", s.clusterID)
        w.field("local", s.localID.description)
        w.key("members")
        w.beginArray()
        for m in s.members {
            let changedMs = m.lastChangeMs + s.wallOffsetMs
            w.object { w in
                w.field("id", m.id.description)
                w.field("name", m.name)
                w.field("local", m.id == s.localID)
                w.field("status", m.status.description)
                w.field("state", m.metadata.state.description)
                w.field("incarnation", Int64(clamping: m.incarnation))
                w.field("gossip_address", m.address.description)
                w.field("http_address", m.metadata.httpAddress)
                w.field("peer_address", m.metadata.peerAddress)
                w.field("zone", m.metadata.zone)
                w.field("version", m.metadata.version)
                w.field("last_change", rfc3339(ms: changedMs, fraction: .milliseconds))
                w.field("last_change_ms", changedMs)
            }
        }
        w.endArray()
        w.endObject()
        w.endObject()
        return w.bytes
    }
}
