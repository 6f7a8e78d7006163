import AsyncHTTPClient
import Foundation
import NIOCore
import StarlingNode
import StarlingTestKit
import Testing
import Yams

/// Keeps `Docker/` (Dockerfile, docker-compose.yml, prometheus.yml, kubernetes/) and `Cluster/cluster`
/// true to the binary: no container engine runs here, so these tests are what notices when a
/// setting is renamed, a port or data directory moves, or a health path disappears.
///
/// Every environment a deployment file gives a node is loaded with the node's own
/// `ConfigLoader` (so a variable that is no setting, or a value the node would refuse, fails
/// here as it would fail at start), and ports, volumes, probes and join addresses are compared
/// with the configuration that results.
@Suite struct DeploymentFilesTests {
    // MARK: docker-compose.yml

    @Test func composePeersLoadTheirEnvironmentAndAgreeOnPortsVolumesAndJoin() throws {
        let compose = try Compose.load(environment: Compose.testEnvironment)
        let image = try Dockerfile.load()
        let peers = try compose.starlingServices()
        #expect(peers.count == 5, "the issue asks for 5 peers, found \(peers.map(\.name))")

        var hostPorts: [String: String] = [:]
        var volumesUsed: [String: String] = [:]
        var nodeNames: Set<String> = []
        var zones: Set<String> = []
        for peer in peers {
            // The image's ENV, then the service's environment, as Docker combines them.
            var env = image.env
            for (k, v) in peer.environment { env[k] = v }
            let config = try loadConfig(env, "service \(peer.name)")

            #expect(nodeNames.insert(config.nodeName).inserted, "node name \(config.nodeName) used twice (service \(peer.name))")
            zones.insert(config.zone)

            // HTTP is the only port published to the host; its container side is http.listen's.
            let published = try peer.publishedPorts()
            #expect(!published.isEmpty, "service \(peer.name) publishes no port")
            for p in published {
                #expect(p.container == config.httpListen.port, "service \(peer.name) publishes container port \(p.container), but http.listen is \(config.httpListen)")
                if let other = hostPorts.updateValue(peer.name, forKey: p.host) {
                    Issue.record("host port \(p.host) published by both \(other) and \(peer.name)")
                }
            }

            // The data directory is a named volume of its own.
            let mounts = try peer.volumeMounts()
            let data = mounts.filter { $0.target == config.dataDir }
            #expect(data.count == 1, "service \(peer.name) must mount one volume at node.data_dir \(config.dataDir); mounts: \(mounts)")
            for m in data {
                #expect(compose.volumes.contains(m.source), "service \(peer.name) mounts \(m.source), which is not under top-level volumes")
                if let other = volumesUsed.updateValue(peer.name, forKey: m.source) {
                    Issue.record("volume \(m.source) is the data directory of both \(other) and \(peer.name): two nodes on one data directory")
                }
            }

            // Join: every seed is a Starling service name or alias reaching another peer, on the gossip port.
            #expect(!config.join.isEmpty, "service \(peer.name) has no STARLING_JOIN")
            for seed in config.join {
                #expect(seed.port == config.gossipListen.port, "service \(peer.name) joins \(seed), but cluster.gossip listens on \(config.gossipListen.port)")
                let reached = peers.filter { $0.name == seed.host || $0.aliases.contains(seed.host) }
                #expect(reached.contains { $0.name != peer.name }, "seed \(seed.host) of \(peer.name) names no other Starling service (services: \(peers.map(\.name)))")
            }

            // The health check asks this node's HTTP port for an open path.
            let check = try #require(try peer.healthcheckURL(), "service \(peer.name) has no HTTP health check")
            #expect(check.port == config.httpListen.port, "health check of \(peer.name) asks port \(check.port), http.listen is \(config.httpListen)")
            #expect(HealthPaths.known.contains(check.path), "health check path \(check.path) of \(peer.name) is not /healthz or /readyz")

            // Docker's SIGKILL must not cut a graceful leave (shutdown.timeout) short.
            let grace = try #require(peer.stopGracePeriodSeconds, "service \(peer.name) has no stop_grace_period (Docker's default is 10 s)")
            #expect(Double(grace) >= Double(config.shutdownTimeout.components.seconds), "stop_grace_period \(grace)s < shutdown.timeout \(config.shutdownTimeout)")
        }
        #expect(zones.count >= 3, "peers should spread over at least 3 zones, got \(zones.sorted())")
    }

    @Test func composeRefusesToStartWithoutTheSecrets() throws {
        for missing in ["STARLING_ADMIN_TOKEN", "STARLING_CLUSTER_KEYS"] {
            var env = Compose.testEnvironment
            env[missing] = nil
            #expect(throws: Compose.InterpolationError.self, "compose must require \(missing)") {
                _ = try Compose.load(environment: env)
            }
        }
        let compose = try Compose.load(environment: Compose.testEnvironment)
        for peer in try compose.starlingServices() {
            #expect(peer.environment["STARLING_ADMIN_TOKEN"] == Compose.testEnvironment["STARLING_ADMIN_TOKEN"], "service \(peer.name) does not take STARLING_ADMIN_TOKEN")
            #expect(peer.environment["STARLING_CLUSTER_KEYS"] == Compose.testEnvironment["STARLING_CLUSTER_KEYS"], "service \(peer.name) does not take STARLING_CLUSTER_KEYS")
        }
    }

    @Test func everyStarlingVariableInComposeIsASetting() throws {
        let compose = try Compose.load(environment: Compose.testEnvironment)
        for service in compose.services {
            for name in service.environment.keys where name.hasPrefix("STARLING_") {
                #expect(Settings.isKnown(name), "service \(service.name) sets \(name), which is no Starling setting (docs/configuration.md)")
            }
        }
    }

    @Test func prometheusDemoScrapesAndRemoteWritesToStarling() throws {
        let compose = try Compose.load(environment: Compose.testEnvironment)
        let peers = try compose.starlingServices()
        let image = try Dockerfile.load()
        var env = image.env
        for (k, v) in peers[0].environment { env[k] = v }
        let httpPort = try loadConfig(env, "service \(peers[0].name)").httpListen.port

        let prometheus = try #require(compose.services.first { $0.name == "prometheus" }, "no prometheus service")
        #expect(compose.services.contains { $0.name == "node-exporter" }, "no node-exporter service")
        // prometheus.yml is mounted from Docker/ where Prometheus reads its config.
        let mounts = try prometheus.volumeMounts()
        let configMount = try #require(mounts.first { $0.target == "/etc/prometheus/prometheus.yml" }, "prometheus.yml not mounted; mounts: \(mounts)")
        #expect(configMount.source == "./prometheus.yml")
        let promConfig = try yamlMap(try text("Docker/prometheus.yml"), "Docker/prometheus.yml")

        let writes = try list(promConfig["remote_write"], "remote_write")
        #expect(writes.count == 1)
        let tmpfs = try stringList(prometheus.raw["tmpfs"])
        for w in writes {
            let w = try map(w, "remote_write entry")
            let url = try #require(URLComponents(string: str(w["url"]) ?? ""), "remote_write url")
            #expect(url.path == "/api/v1/write")
            #expect(url.port == httpPort, "remote_write port \(url.port ?? -1) is not http.listen's \(httpPort)")
            let host = url.host ?? ""
            #expect(peers.contains { $0.name == host || $0.aliases.contains(host) }, "remote_write host \(host) is no Starling service or alias")
            // The token comes from a file in the tmpfs the entrypoint fills (Prometheus does not expand env vars).
            let auth = try map(w["authorization"], "remote_write authorization")
            let file = try #require(str(auth["credentials_file"]), "remote_write needs authorization.credentials_file")
            #expect(tmpfs.contains { file.hasPrefix($0 + "/") }, "credentials_file \(file) is not in the prometheus service's tmpfs \(tmpfs)")
            let entrypoint = try stringList(prometheus.raw["entrypoint"]).joined(separator: " ")
            #expect(entrypoint.contains("> \(file)"), "the prometheus entrypoint does not write \(file)")
        }

        // Scrape jobs: Prometheus itself, the node-exporter, and every Starling peer on its HTTP port.
        var targets: Set<String> = []
        for job in try list(promConfig["scrape_configs"], "scrape_configs") {
            for sc in try list(try map(job, "scrape config")["static_configs"], "static_configs") {
                targets.formUnion(try stringList(try map(sc, "static config")["targets"]))
            }
        }
        #expect(targets.contains("node-exporter:9100"))
        #expect(targets.contains("localhost:9090"))
        for peer in peers {
            #expect(targets.contains("\(peer.name):\(httpPort)"), "Prometheus does not scrape \(peer.name):\(httpPort)")
        }
    }

    /// `docker-compose config -q` (the Debian package, 1.29) validates the file against the
    /// Compose schema offline; skipped where it is not installed.
    @Test(.enabled(if: which("docker-compose") != nil, "docker-compose is not installed"))
    func dockerComposeConfigAcceptsTheFile() async throws {
        let file = repoRoot.appendingPathComponent("Docker/docker-compose.yml").path
        let ok = try await runTool(which("docker-compose")!, ["-f", file, "config", "-q"], environment: Compose.testEnvironment)
        #expect(ok.status == 0, "docker-compose config -q failed:\n\(ok.output)")
        let refused = try await runTool(which("docker-compose")!, ["-f", file, "config", "-q"], environment: [:])
        #expect(refused.status != 0, "docker-compose accepted the file without STARLING_ADMIN_TOKEN")
        #expect(refused.output.contains("STARLING_ADMIN_TOKEN"), "the refusal should name the variable:\n\(refused.output)")
    }

    // MARK: Dockerfile

    @Test func dockerfileMatchesTheCLI() throws {
        let image = try Dockerfile.load()
        #expect(image.stages >= 2, "the Dockerfile should be multi-stage (build, runtime)")
        let config = try loadConfig(image.env, "Docker/Dockerfile ENV")
        #expect(image.volumes == [config.dataDir], "VOLUME \(image.volumes) should be node.data_dir \(config.dataDir)")
        let exposed = Set(image.exposed)
        for port in ["\(config.httpListen.port)/tcp", "\(config.gossipListen.port)/udp", "\(config.gossipListen.port)/tcp", "\(config.peerListen.port)/tcp"] {
            #expect(exposed.contains(port), "EXPOSE lacks \(port) (has \(image.exposed))")
        }
        let check = try #require(image.healthcheckURL, "no HEALTHCHECK with an http:// URL")
        #expect(check.port == config.httpListen.port)
        #expect(HealthPaths.known.contains(check.path))
        #expect(image.user != nil && image.user != "root" && image.user != "0", "the runtime stage must not run as root (USER \(image.user ?? "unset"))")
        #expect(image.entrypoint.contains("starling"), "ENTRYPOINT \(image.entrypoint) does not run starling")
    }

    // MARK: Kubernetes

    @Test func kubernetesManifestsMatchTheCLI() throws {
        let k8s = try Kubernetes.load()
        let sts = try #require(k8s.objects(kind: "StatefulSet").first, "no StatefulSet")
        let spec = try map(sts["spec"], "StatefulSet.spec")
        #expect(str(spec["replicas"]) == "5")
        let template = try map(spec["template"], "spec.template")
        let podLabels = try stringMap(try map(template["metadata"], "template.metadata")["labels"])
        let selector = try stringMap(try map(spec["selector"], "spec.selector")["matchLabels"])
        #expect(!selector.isEmpty && selector.allSatisfy { podLabels[$0.key] == $0.value }, "selector \(selector) does not match pod labels \(podLabels)")
        let namespace = str(try map(sts["metadata"], "metadata")["namespace"]) ?? "default"

        // Services: a headless one named by serviceName, listing pods before they are ready.
        let serviceName = try #require(str(spec["serviceName"]))
        let services = k8s.objects(kind: "Service")
        let headless = try #require(services.first { (try? name(of: $0)) == serviceName }, "serviceName \(serviceName) has no Service")
        let headlessSpec = try map(headless["spec"], "headless spec")
        #expect(str(headlessSpec["clusterIP"]) == "None", "Service \(serviceName) must be headless")
        #expect(str(headlessSpec["publishNotReadyAddresses"]) == "true", "the headless Service must publish not-ready pods, or the first pods never find each other")
        #expect(services.count >= 2, "a client Service beside the headless one")

        let podSpec = try map(template["spec"], "pod spec")
        let container = try map(try list(podSpec["containers"], "containers").first, "container")
        let secretExample = try #require(k8s.objects(kind: "Secret").first, "no Secret example")
        let secretName = try name(of: secretExample)
        let secretData = try stringMap(secretExample["stringData"])

        // The environment, as the kubelet builds it: $(VAR) expands earlier entries; field refs
        // and secret refs take example values (which must exist in the Secret example).
        var env: [String: String] = [:]
        for item in try list(container["env"], "env") {
            let item = try map(item, "env entry")
            let n = try #require(str(item["name"]))
            if let v = str(item["value"]) {
                env[n] = expandKubernetes(v, env)
            } else if let from = item["valueFrom"] as? [String: Any] {
                if let field = from["fieldRef"] as? [String: Any] {
                    switch str(field["fieldPath"]) {
                    case "status.podIP": env[n] = "10.1.2.3"
                    case "metadata.name": env[n] = "starling-0"
                    case let other: Issue.record("unexpected fieldRef \(other ?? "nil") for \(n)")
                    }
                } else if let ref = from["secretKeyRef"] as? [String: Any] {
                    #expect(str(ref["name"]) == secretName, "\(n) reads Secret \(str(ref["name"]) ?? "nil"), the example is \(secretName)")
                    let key = try #require(str(ref["key"]))
                    #expect(secretData[key] != nil, "\(n) reads key \(key), which the Secret example lacks")
                    // The example's placeholders are invalid on purpose; a real secret's value:
                    env[n] = "k8s-test-secret-value-0123456789"
                } else {
                    Issue.record("unsupported valueFrom for \(n)")
                }
            }
        }
        for n in env.keys where n.hasPrefix("STARLING_") {
            #expect(Settings.isKnown(n), "the StatefulSet sets \(n), which is no Starling setting")
        }
        let config = try loadConfig(env, "StatefulSet env")
        #expect(config.gossipAdvertise?.host == "10.1.2.3", "cluster.advertise should be the pod IP, is \(String(describing: config.gossipAdvertise))")

        // Join through the headless Service's DNS name on the gossip port.
        #expect(config.join.count == 1)
        for seed in config.join {
            #expect(seed.port == config.gossipListen.port)
            #expect(seed.host == "\(serviceName).\(namespace).svc.cluster.local" || seed.host == "\(serviceName).\(namespace).svc" || seed.host == serviceName,
                    "join host \(seed.host) is not the headless Service \(serviceName)")
        }

        // Ports: named container ports match the listeners; Services target existing names.
        var named: [String: (Int, String)] = [:]
        for p in try list(container["ports"], "ports") {
            let p = try map(p, "port")
            named[str(p["name"]) ?? ""] = (Int(str(p["containerPort"]) ?? "") ?? -1, str(p["protocol"]) ?? "TCP")
        }
        let expected: [(Int, String)] = [(config.httpListen.port, "TCP"), (config.gossipListen.port, "UDP"), (config.gossipListen.port, "TCP"), (config.peerListen.port, "TCP")]
        for e in expected {
            #expect(named.values.contains { $0 == e }, "no container port \(e.0)/\(e.1); ports: \(named)")
        }
        for svc in services {
            let svcName = try name(of: svc)
            let sel = try stringMap(try map(svc["spec"], "service spec")["selector"])
            #expect(sel.allSatisfy { podLabels[$0.key] == $0.value }, "Service \(svcName) selects \(sel), not the pods")
            for p in try list(try map(svc["spec"], "service spec")["ports"], "service ports") {
                let p = try map(p, "service port")
                let target = str(p["targetPort"]) ?? str(p["port"]) ?? ""
                let resolved = named[target] ?? Int(target).flatMap { t in named.values.first { $0.0 == t } }
                #expect(resolved != nil, "Service \(svcName) targets port \(target), which the container does not declare")
                if let r = resolved { #expect(r.1 == (str(p["protocol"]) ?? "TCP"), "Service \(svcName) port \(target): protocol mismatch") }
            }
        }

        // Probes: readiness on /readyz, liveness on /healthz, both on the HTTP port.
        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
            let get = try map(try map(container[probe], probe)["httpGet"], "\(probe).httpGet")
            #expect(str(get["path"]) == path, "\(probe) should ask \(path)")
            let port = str(get["port"]) ?? ""
            #expect((named[port]?.0 ?? Int(port)) == config.httpListen.port, "\(probe) port \(port) is not http.listen's \(config.httpListen.port)")
        }

        // Data directory on the claim template; the keys file on the mounted Secret.
        let mounts = try list(container["volumeMounts"], "volumeMounts").map { try map($0, "volumeMount") }
        let claims = try list(spec["volumeClaimTemplates"], "volumeClaimTemplates").map { try name(of: try map($0, "claim")) }
        let dataMount = mounts.first { str($0["mountPath"]) == config.dataDir }
        #expect(dataMount.map { claims.contains(str($0["name"]) ?? "") } == true, "node.data_dir \(config.dataDir) is not mounted from a volumeClaimTemplate (\(claims))")
        if let keysFile = config.clusterKeysFile {
            let volumes = try list(podSpec["volumes"], "volumes").map { try map($0, "volume") }
            let mount = mounts.first { keysFile.hasPrefix((str($0["mountPath"]) ?? "\u{0}") + "/") }
            let volume = volumes.first { str($0["name"]) == mount.flatMap { str($0["name"]) } }
            let secret = volume.flatMap { $0["secret"] as? [String: Any] }
            #expect(secret.flatMap { str($0["secretName"]) } == secretName, "cluster.keys_file \(keysFile) is not on a volume of Secret \(secretName)")
            let file = String(keysFile.split(separator: "/").last ?? "")
            let items = (secret?["items"] as? [Any] ?? []).compactMap { $0 as? [String: Any] }
            let key = items.first { str($0["path"]) == file }.flatMap { str($0["key"]) } ?? file
            #expect(secretData[key] != nil, "cluster.keys_file reads Secret key \(key), which the example lacks")
        } else {
            #expect(!config.clusterKeys.isEmpty, "gossip is not encrypted on Kubernetes (no cluster.keys or cluster.keys_file)")
        }

        // Graceful leave fits in the termination grace period, after preStop.
        let grace = Int(str(podSpec["terminationGracePeriodSeconds"]) ?? "") ?? 30
        var preStop = 0
        if let cmd = ((container["lifecycle"] as? [String: Any])?["preStop"] as? [String: Any])?["exec"] as? [String: Any],
           let argv = cmd["command"] as? [Any], argv.count == 2, str(argv[0]) == "sleep" {
            preStop = Int(str(argv[1]) ?? "") ?? 0
        }
        #expect(grace >= preStop + Int(config.shutdownTimeout.components.seconds), "terminationGracePeriodSeconds \(grace) < preStop \(preStop) + shutdown.timeout \(config.shutdownTimeout)")

        // The pod runs as the image's user.
        let security = try map(podSpec["securityContext"], "securityContext")
        let image = try Dockerfile.load()
        #expect(image.user?.split(separator: ":").first.map(String.init) == str(security["runAsUser"]), "runAsUser \(str(security["runAsUser"]) ?? "nil") is not the image's USER \(image.user ?? "nil")")
        #expect(str(security["fsGroup"]) != nil, "fsGroup makes the claim writable by the non-root user")
    }

    // MARK: health paths, against a real node

    /// Health checks send no token: every path the deployment files probe must answer 200 open.
    @Test func healthCheckPathsAnswerWithoutAToken() async throws {
        var paths: Set<String> = []
        let compose = try Compose.load(environment: Compose.testEnvironment)
        for peer in try compose.starlingServices() { if let u = try peer.healthcheckURL() { paths.insert(u.path) } }
        if let u = try Dockerfile.load().healthcheckURL { paths.insert(u.path) }
        paths.formUnion(["/readyz", "/healthz"])  // the Kubernetes probes, checked above
        let node = TestNode(name: "deploy-health")
        defer { node.stop() }
        try await withLogsOnFailure([node.process]) {
            try await node.start()
            for path in paths.sorted() {
                let r = try await node.request(.GET, path, token: nil)
                #expect(r.status == 200, "GET \(path) without a token answered \(r.status)")
            }
        }
    }

    // MARK: Cluster/cluster runs the compose topology

    /// `Cluster/cluster up 5` gives the same five peers as the compose file (names by index,
    /// zones in the same order) in one cluster; `add` brings a sixth; with root and nftables,
    /// `partition`/`heal` take a node out of the others' view and back.
    @Test func clusterScriptRunsTheComposeTopology() async throws {
        let compose = try Compose.load(environment: Compose.testEnvironment)
        let image = try Dockerfile.load()
        let composeZones = try compose.starlingServices().map { peer in
            var env = image.env
            for (k, v) in peer.environment { env[k] = v }
            return try loadConfig(env, peer.name).zone
        }

        let script = ClusterScript()
        defer { script.clean() }
        let up = try await script.run(["up", "5", "--", "--set", "cluster.profile=local-test"])
        try #require(up.status == 0, "Cluster/cluster up failed:\n\(up.output)\n\(script.logs())")

        var members = try await script.waitMembers(seenBy: 1, "5 alive members") { $0.filter { $0.status == "alive" }.count == 5 }
        let zoneOf = Dictionary(members.map { ($0.name, $0.zone) }, uniquingKeysWith: { a, _ in a })
        for (i, zone) in composeZones.enumerated() {
            #expect(zoneOf["node\(i + 1)"] == zone, "node\(i + 1) is in zone \(zoneOf["node\(i + 1)"] ?? "nil"), compose's starling-\(i + 1) in \(zone)")
        }

        let add = try await script.run(["add"])
        try #require(add.status == 0, "Cluster/cluster add failed:\n\(add.output)\n\(script.logs())")
        members = try await script.waitMembers(seenBy: 1, "node6 alive") { $0.contains { $0.name == "node6" && $0.status == "alive" } }

        let status = try await script.run(["status"])
        #expect(status.status == 0)
        #expect(status.output.contains("members as seen by node 6:") && status.output.contains("node6"), "status shows no members:\n\(status.output)")

        guard ClusterScript.canPartition else { return }
        let cut = try await script.run(["partition", "2"])
        try #require(cut.status == 0, "partition failed:\n\(cut.output)")
        _ = try await script.waitMembers(seenBy: 1, "node2 not alive") { !$0.contains { $0.name == "node2" && $0.status == "alive" } }
        let heal = try await script.run(["heal", "2"])
        try #require(heal.status == 0, "heal failed:\n\(heal.output)")
        _ = try await script.waitMembers(seenBy: 1, "node2 alive again") { $0.contains { $0.name == "node2" && $0.status == "alive" } }
    }
}

// MARK: - configuration

/// Loads `env` with the node's loader; fails the test naming `source` when the node would refuse it.
private func loadConfig(_ env: [String: String], _ source: String) throws -> NodeConfig {
    let loaded: ConfigLoader.Result
    do {
        loaded = try ConfigLoader.load(configFile: nil, environment: env, flags: [])
    } catch {
        Issue.record("\(source): the node would refuse this configuration: \(error)")
        throw error
    }
    #expect(loaded.unknownEnvironment.isEmpty, "\(source) sets variables that are no setting: \(loaded.unknownEnvironment)")
    return loaded.config
}

private enum Settings {
    static let env: Set<String> = Set(ConfigKey.all.map(\.env)).union(ConfigLoader.nonSettingEnv)
    static func isKnown(_ name: String) -> Bool { env.contains(name) }
}

private enum HealthPaths {
    static let known: Set<String> = ["/healthz", "/readyz"]
}

// MARK: - files and YAML

private let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

private func text(_ relative: String) throws -> String {
    try String(contentsOf: repoRoot.appendingPathComponent(relative), encoding: .utf8)
}

struct ShapeError: Error, CustomStringConvertible {
    var description: String
}

private func map(_ v: Any?, _ what: String) throws -> [String: Any] {
    guard let m = v as? [String: Any] else { throw ShapeError(description: "\(what): expected a mapping, got \(String(describing: v))") }
    return m
}

private func list(_ v: Any?, _ what: String) throws -> [Any] {
    guard let l = v as? [Any] else { throw ShapeError(description: "\(what): expected a list, got \(String(describing: v))") }
    return l
}

/// A scalar as text (YAML gives Int, Bool, Double for unquoted scalars).
private func str(_ v: Any?) -> String? {
    switch v {
    case let s as String: return s
    case let b as Bool: return b ? "true" : "false"
    case let i as Int: return String(i)
    case let d as Double: return String(d)
    default: return nil
    }
}

private func stringList(_ v: Any?) throws -> [String] {
    guard let v else { return [] }
    if let s = str(v) { return [s] }
    return try list(v, "list").map { try #require(str($0), "expected a scalar in \(v)") }
}

private func stringMap(_ v: Any?) throws -> [String: String] {
    guard let v else { return [:] }
    return try map(v, "map").mapValues { try #require(str($0), "expected a scalar in \(v)") }
}

private func yamlMap(_ text: String, _ file: String) throws -> [String: Any] {
    try map(try Yams.load(yaml: text), file)
}

private func name(of object: [String: Any]) throws -> String {
    try #require(str(try map(object["metadata"], "metadata")["name"]), "object without metadata.name")
}

/// Kubernetes expands `$(VAR)` in env values from entries defined before it.
private func expandKubernetes(_ value: String, _ env: [String: String]) -> String {
    var out = value
    for (k, v) in env { out = out.replacingOccurrences(of: "$(\(k))", with: v) }
    return out
}

private struct HTTPCheck { var port: Int; var path: String }

private func httpCheck(in words: [String]) -> HTTPCheck? {
    for w in words where w.hasPrefix("http://") {
        if let u = URLComponents(string: w), let port = u.port { return HTTPCheck(port: port, path: u.path) }
    }
    return nil
}

// MARK: - docker-compose.yml

private struct Compose {
    /// What a user exports before `docker compose up` (valid values: the token is long enough,
    /// the key is base64 of 32 bytes).
    static let testEnvironment = [
        "STARLING_ADMIN_TOKEN": "compose-test-admin-token-0123456789",
        "STARLING_CLUSTER_KEYS": Data(repeating: 7, count: 32).base64EncodedString(),
    ]

    struct InterpolationError: Error, CustomStringConvertible { var description: String }

    struct Service {
        var name: String
        var raw: [String: Any]
        var environment: [String: String]
        var aliases: [String]

        struct Port: CustomStringConvertible { var host: String; var container: Int; var description: String { "\(host):\(container)" } }
        struct Mount: CustomStringConvertible { var source: String; var target: String; var description: String { "\(source):\(target)" } }

        func publishedPorts() throws -> [Port] {
            try stringList(raw["ports"]).map { spec in
                // [ip:]host:container[/proto]
                let parts = spec.split(separator: "/").first.map { $0.split(separator: ":").map(String.init) } ?? []
                guard parts.count >= 2, let c = Int(parts[parts.count - 1]) else {
                    throw ShapeError(description: "service \(name): port \(spec) is not host:container")
                }
                return Port(host: parts[parts.count - 2], container: c)
            }
        }

        func volumeMounts() throws -> [Mount] {
            try list(raw["volumes"] ?? [Any](), "volumes of \(name)").map { v in
                if let s = v as? String {
                    let p = s.split(separator: ":").map(String.init)
                    guard p.count >= 2 else { throw ShapeError(description: "service \(name): volume \(s) has no target") }
                    return Mount(source: p[0], target: p[1])
                }
                let m = try map(v, "volume of \(name)")
                return Mount(source: str(m["source"]) ?? "", target: str(m["target"]) ?? "")
            }
        }

        func healthcheckURL() throws -> HTTPCheck? {
            guard let hc = raw["healthcheck"] as? [String: Any] else { return nil }
            return httpCheck(in: try stringList(hc["test"]).flatMap { $0.split(separator: " ").map(String.init) })
        }

        var stopGracePeriodSeconds: Int? {
            guard let s = str(raw["stop_grace_period"]) else { return nil }
            var total = 0, number = 0
            for ch in s {
                if let d = ch.wholeNumberValue { number = number * 10 + d; continue }
                switch ch {
                case "s": total += number
                case "m": total += number * 60
                case "h": total += number * 3600
                default: return nil
                }
                number = 0
            }
            return total + number
        }
    }

    var services: [Service]
    var volumes: Set<String>

    static func load(environment: [String: String]) throws -> Compose {
        let root = try yamlMap(try text("Docker/docker-compose.yml"), "Docker/docker-compose.yml")
        let resolved = try map(try interpolate(root, environment), "compose file")
        var services: [Service] = []
        for (n, v) in try map(resolved["services"], "services").sorted(by: { $0.key < $1.key }) {
            let raw = try map(v, "service \(n)")
            var env: [String: String] = [:]
            if let m = raw["environment"] as? [String: Any] {
                for (k, v) in m { env[k] = str(v) ?? "" }
            } else if let l = raw["environment"] as? [Any] {
                for item in l {
                    let s = str(item) ?? ""
                    if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
                }
            }
            var aliases: [String] = []
            if let nets = raw["networks"] as? [String: Any] {
                for (_, net) in nets { aliases += try stringList((net as? [String: Any])?["aliases"]) }
            }
            services.append(Service(name: n, raw: raw, environment: env, aliases: aliases))
        }
        let volumes = Set((resolved["volumes"] as? [String: Any] ?? [:]).keys)
        return Compose(services: services, volumes: volumes)
    }

    /// Services built from Docker/Dockerfile (or running its image): the Starling peers.
    func starlingServices() throws -> [Service] {
        let peers = services.filter { s in
            let build = s.raw["build"] as? [String: Any]
            return str(build?["dockerfile"]) == "Docker/Dockerfile" || str(s.raw["image"])?.hasPrefix("starling") == true
        }
        return peers.sorted { $0.name.localizedStandardCompare($1.name) == .orderedAscending }
    }

    /// Compose's variable substitution on every string: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`,
    /// `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`.
    static func interpolate(_ v: Any, _ env: [String: String]) throws -> Any {
        switch v {
        case let s as String: return try interpolate(string: s, env)
        case let m as [String: Any]: return try m.mapValues { try interpolate($0, env) }
        case let l as [Any]: return try l.map { try interpolate($0, env) }
        default: return v
        }
    }

    static func interpolate(string s: String, _ env: [String: String]) throws -> String {
        var out = ""
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            guard c == "$" else { out.append(c); i = s.index(after: i); continue }
            let next = s.index(after: i)
            if next < s.endIndex, s[next] == "$" { out.append("$"); i = s.index(after: next); continue }
            if next < s.endIndex, s[next] == "{" {
                guard let close = s[next...].firstIndex(of: "}") else { throw InterpolationError(description: "unclosed ${ in \(s)") }
                let body = String(s[s.index(after: next)..<close])
                out += try substitute(body, env)
                i = s.index(after: close)
                continue
            }
            var j = next
            while j < s.endIndex, s[j].isLetter || s[j].isNumber || s[j] == "_" { j = s.index(after: j) }
            out += env[String(s[next..<j])] ?? ""
            i = j
        }
        return out
    }

    private static func substitute(_ body: String, _ env: [String: String]) throws -> String {
        for op in [":?", "?", ":-", "-"] {
            guard let r = body.range(of: op) else { continue }
            let name = String(body[..<r.lowerBound]), arg = String(body[r.upperBound...])
            let value = env[name]
            let unset = op.hasPrefix(":") ? (value ?? "").isEmpty : value == nil
            if op.hasSuffix("?") {
                if unset { throw InterpolationError(description: "required variable \(name) is missing: \(arg)") }
                return value!
            }
            return unset ? arg : value!
        }
        return env[body] ?? ""
    }
}

// MARK: - Dockerfile

private struct Dockerfile {
    var stages = 0
    /// ENV, EXPOSE, VOLUME, USER, HEALTHCHECK and ENTRYPOINT of the last (runtime) stage.
    var env: [String: String] = [:]
    var exposed: [String] = []
    var volumes: [String] = []
    var user: String?
    var healthcheckURL: HTTPCheck?
    var entrypoint: String = ""

    static func load() throws -> Dockerfile {
        // Join continuation lines, drop comments.
        var logical: [String] = []
        var current = ""
        for line in try text("Docker/Dockerfile").split(separator: "\n", omittingEmptySubsequences: false) {
            let t = line.trimmingCharacters(in: .whitespaces)
            if current.isEmpty && (t.hasPrefix("#") || t.isEmpty) { continue }
            if t.hasPrefix("#") { continue }
            if t.hasSuffix("\\") { current += t.dropLast() + " "; continue }
            logical.append(current + t)
            current = ""
        }
        var d = Dockerfile()
        for line in logical {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let instruction = words.first?.uppercased() else { continue }
            let args = Array(words.dropFirst())
            switch instruction {
            case "FROM":
                d.stages += 1
                d = Dockerfile(stages: d.stages)  // only the runtime stage's settings count
            case "ENV":
                for a in args {
                    guard let eq = a.firstIndex(of: "=") else { throw ShapeError(description: "ENV \(a): use KEY=VALUE") }
                    d.env[String(a[..<eq])] = String(a[a.index(after: eq)...]).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                }
            case "EXPOSE": d.exposed += args.map { $0.contains("/") ? $0 : $0 + "/tcp" }
            case "VOLUME": d.volumes += args.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "[]\",")) }
            case "USER": d.user = args.first
            case "HEALTHCHECK": d.healthcheckURL = httpCheck(in: args)
            case "ENTRYPOINT": d.entrypoint = args.joined(separator: " ")
            default: break
            }
        }
        return d
    }
}

// MARK: - Kubernetes

private struct Kubernetes {
    var documents: [[String: Any]]

    static func load() throws -> Kubernetes {
        let dir = repoRoot.appendingPathComponent("Docker/kubernetes")
        var docs: [[String: Any]] = []
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(!files.isEmpty, "no manifests in Docker/kubernetes")
        for f in files {
            for doc in try Yams.load_all(yaml: try String(contentsOf: dir.appendingPathComponent(f), encoding: .utf8)) {
                let m = try map(doc, "Docker/kubernetes/\(f)")
                #expect(str(m["apiVersion"]) != nil && str(m["kind"]) != nil, "Docker/kubernetes/\(f): a document without apiVersion/kind")
                docs.append(m)
            }
            // kustomization.yaml must list every manifest but the Secret example.
        }
        let kustomization = docs.first { str($0["kind"]) == "Kustomization" }
        let listed = Set(try stringList(kustomization?["resources"]))
        for f in files where f != "kustomization.yaml" && !f.contains("example") {
            #expect(listed.contains(f), "kustomization.yaml does not list \(f)")
        }
        return Kubernetes(documents: docs)
    }

    func objects(kind: String) -> [[String: Any]] { documents.filter { str($0["kind"]) == kind } }
}

// MARK: - processes

private func which(_ tool: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let p = "\(dir)/\(tool)"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return nil
}

private struct RunResult { var status: Int32; var output: String }

/// Runs a tool to completion with `environment` added to a minimal one (PATH, HOME).
/// Waits by polling, never blocking a thread of the cooperative pool (on 2 cores that would stall
/// every other test for as long as the tool runs).
private func runTool(_ executable: String, _ arguments: [String], environment: [String: String]) async throws -> RunResult {
    let r = try await ChildProcess.run(executable, arguments, environment: minimalEnvironment(environment), timeout: .seconds(900))
    return RunResult(status: r.status, output: r.output)
}

/// Blocks the calling thread: only for commands that return at once.
private func runToolBlocking(_ executable: String, _ arguments: [String], environment: [String: String]) throws -> RunResult {
    let r = try ChildProcess.runBlocking(executable, arguments, environment: minimalEnvironment(environment))
    return RunResult(status: r.status, output: r.output)
}

private func minimalEnvironment(_ extra: [String: String]) -> [String: String] {
    var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "HOME": NSTemporaryDirectory()]
    for (k, v) in extra { env[k] = v }
    return env
}

/// `Cluster/cluster` on its own run directory, port range and nftables table.
private final class ClusterScript: @unchecked Sendable {
    let dir = NodeProcess.temporaryDirectory("starling-cluster-script")
    /// A port block per test run (HTTP, gossip and peer ranges 100 apart), away from the
    /// script's defaults and from port-0 allocations (Linux picks those from 32768 up).
    let base = 20_000 + Int.random(in: 0..<40) * 300
    let table = "starling_test_\(UInt32.random(in: 0...UInt32.max))"

    var environment: [String: String] {
        ["STARLING_BIN": NodeProcess.starlingBinary(), "CLUSTER_DIR": dir, "HTTP_BASE": "\(base)", "GOSSIP_BASE": "\(base + 100)",
         "PEER_BASE": "\(base + 200)", "NFT_TABLE": table]
    }

    /// Root with a working `nft`: the partition commands can run.
    static let canPartition: Bool = {
        guard getuid() == 0, let nft = which("nft") else { return false }
        return (try? runToolBlocking(nft, ["list", "tables"], environment: [:]).status) == 0
    }()

    func run(_ args: [String]) async throws -> RunResult {
        try await runTool("/bin/bash", [repoRoot.appendingPathComponent("Cluster/cluster").path] + args, environment: environment)
    }

    func logs() -> String {
        let nodes = (try? FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("node") }.sorted()) ?? []
        return nodes.map { n in "--- \(n)/log:\n" + ((try? String(contentsOfFile: "\(dir)/\(n)/log", encoding: .utf8)) ?? "") }.joined(separator: "\n")
    }

    func clean() {
        _ = try? runToolBlocking("/bin/bash", [repoRoot.appendingPathComponent("Cluster/cluster").path, "clean"], environment: environment)
        try? FileManager.default.removeItem(atPath: dir)
    }

    struct Member { var name: String; var status: String; var zone: String }

    /// Polls node K's member list until `done` holds (60 s at most), printing the logs on timeout.
    func waitMembers(seenBy k: Int, _ what: String, _ done: ([Member]) -> Bool) async throws -> [Member] {
        let token = try String(contentsOfFile: "\(dir)/admin-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let deadline = ContinuousClock.now + .seconds(60)
        var last: [Member] = []
        while ContinuousClock.now < deadline {
            var req = HTTPClientRequest(url: "http://127.0.0.1:\(base + k)/api/v1/cluster/members")
            req.headers.add(name: "Authorization", value: "Bearer \(token)")
            if let resp = try? await HTTPClient.shared.execute(req, timeout: .seconds(2)), resp.status.code == 200,
               let body = try? await resp.body.collect(upTo: 1 << 20),
               let json = try? JSONSerialization.jsonObject(with: Data(String(buffer: body).utf8)) as? [String: Any],
               let members = (json["data"] as? [String: Any])?["members"] as? [[String: Any]] {
                last = members.map { Member(name: str($0["name"]) ?? "", status: str($0["status"]) ?? "", zone: str($0["zone"]) ?? "") }
                if done(last) { return last }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        Issue.record("timed out waiting for \(what) as seen by node \(k); last view: \(last)\n\(logs())")
        throw ShapeError(description: "timed out waiting for \(what)")
    }
}
