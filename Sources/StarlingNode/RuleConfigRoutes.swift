import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import StarlingAlerting
import StarlingCore
import StarlingHTTP

/// The rules API (docs/api.md, "Rules configuration API"): rule groups managed at run time, in
/// the shape of Mimir's ruler configuration API. Reads answer from this node's copy of the
/// catalog; changes go to the coordinator, which versions them and copies them to every node.
struct RuleConfigRoutes: Sendable {
    let catalog: RuleCatalogService
    /// Namespaces taken by rule files (`rules.files`): not writable through the API.
    let fileSources: Set<String>
    let metrics: StarlingMetrics

    func routes() -> RouteCollection<StarlingRequestContext> {
        let r = RouteCollection(context: StarlingRequestContext.self)
            .add(middleware: OffEventLoopMiddleware())
        let read = r.group("config/v1/rules").add(middleware: RequirePermission(.read, metrics: metrics))
        let admin = r.group("config/v1/rules").add(middleware: RequirePermission(.admin, metrics: metrics))
        read.get { _, _ in
            Self.yaml(catalog.current.yaml(), version: catalog.current.version)
        }
        read.get(":namespace") { _, context in
            let ns = try Self.name(context, "namespace")
            let c = catalog.current
            guard c.namespaces.contains(ns) else { throw APIError(.notFound, "no rule groups in namespace \(quoteLabelValue(ns))") }
            return Self.yaml(c.yaml(namespace: ns), version: c.version)
        }
        read.get(":namespace/:group") { _, context in
            let ns = try Self.name(context, "namespace"), name = try Self.name(context, "group")
            let c = catalog.current
            guard let g = c.group(ns, name) else {
                throw APIError(.notFound, "no rule group \(quoteLabelValue(name)) in namespace \(quoteLabelValue(ns))")
            }
            return Self.yaml(g.yaml, version: c.version)
        }
        admin.post(":namespace") { request, context in
            let ns = try Self.name(context, "namespace")
            if fileSources.contains(ns) {
                throw APIError.badData("namespace \(quoteLabelValue(ns)) is a rule file of this node's configuration (rules.files); edit the file instead")
            }
            let buffer = try await request.body.collect(upTo: RuleFileLimits().maxDocumentBytes + 1)
            let text = String(decoding: buffer.readableBytesView, as: UTF8.self)
            let spec: RuleGroupSpec, normalised: String
            do {
                (spec, normalised) = try RuleFiles.parseGroupDocument(yaml: text, namespace: ns)
                try RuleCatalog.validateName(spec.name, what: "group name")
            } catch {
                throw APIError.badData("rule group: \(error)")
            }
            let result = await catalog.change(.init(kind: .set, namespace: ns, name: spec.name, yaml: normalised, by: Self.who(context)))
            return try Self.respond(result)
        }
        admin.delete(":namespace/:group") { _, context in
            let ns = try Self.name(context, "namespace"), name = try Self.name(context, "group")
            return try Self.respond(await catalog.change(.init(kind: .delete, namespace: ns, name: name, yaml: nil, by: Self.who(context))))
        }
        admin.delete(":namespace") { _, context in
            let ns = try Self.name(context, "namespace")
            return try Self.respond(await catalog.change(.init(kind: .delete, namespace: ns, name: nil, yaml: nil, by: Self.who(context))))
        }
        // The catalog's version, its groups' versions and the latest changes.
        r.group("api/v1/rules/catalog").add(middleware: RequirePermission(.read, metrics: metrics)).get { _, _ in
            let c = catalog.current
            let iso = ISO8601DateFormatter()
            iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            func time(_ ms: Int64) -> String { iso.string(from: Date(timeIntervalSince1970: Double(ms) / 1000)) }
            let data: [String: Any] = [
                "version": NSNumber(value: c.version),
                "digest": String(c.digest, radix: 16),
                "coordinator": catalog.coordinator() ?? NSNull(),
                "groups": c.groups.map { g -> [String: Any] in
                    ["namespace": g.namespace, "name": g.name, "version": NSNumber(value: g.version), "updatedAt": time(g.updatedAtMs), "updatedBy": g.updatedBy]
                },
                "changes": c.history.reversed().map { h -> [String: Any] in
                    ["version": NSNumber(value: h.version), "at": time(h.atMs), "by": h.by, "action": h.action.rawValue, "namespace": h.namespace, "group": h.group]
                },
            ]
            return RuleRoutes.json(["status": "success", "data": data])
        }
        return r
    }

    /// A path parameter, percent-decoded and checked.
    static func name(_ context: StarlingRequestContext, _ key: String) throws -> String {
        let raw = context.parameters.get(key) ?? ""
        let s = raw.removingPercentEncoding ?? raw
        do {
            try RuleCatalog.validateName(s, what: key == "group" ? "group name" : "namespace")
        } catch {
            throw APIError.badData("\(error)")
        }
        return s
    }

    static func who(_ context: StarlingRequestContext) -> String {
        context.principal.map { "\($0.name) (\($0.tokenID))" } ?? "unknown"
    }

    static func yaml(_ text: String, version: UInt64) -> Response {
        Response(status: .ok, headers: [.contentType: "application/yaml", HTTPField.Name("X-Starling-Rules-Version")!: "\(version)"],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func respond(_ result: RuleCatalogService.ChangeResult) throws -> Response {
        switch result.status {
        case 200..<300: break
        case 400: throw APIError.badData(result.error ?? "bad request")
        case 404: throw APIError(.notFound, result.error ?? "not found")
        default: throw APIError.unavailable(result.error ?? "unavailable")
        }
        let data = (try? JSONSerialization.data(withJSONObject: result.json, options: [.sortedKeys])) ?? Data()
        return Response(status: .accepted, headers: [.contentType: "application/json", HTTPField.Name("X-Starling-Rules-Version")!: "\(result.version)"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
