import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Options shared by the commands that talk to a running node.
struct ClientOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Node URL (env STARLING_URL). Default http://127.0.0.1:9470.", valueName: "url"))
    var url: String?

    @Option(name: .long, help: ArgumentHelp("Bearer token (env STARLING_TOKEN). Default: the admin token file in --data-dir.", valueName: "token"))
    var token: String?

    @Option(name: .long, help: ArgumentHelp("Data directory whose admin-token file is used when no token is given.", valueName: "dir"))
    var dataDir: String = "./starling-data"

    var baseURL: String {
        let u = url ?? ProcessInfo.processInfo.environment["STARLING_URL"] ?? "http://127.0.0.1:9470"
        return u.hasSuffix("/") ? String(u.dropLast()) : u
    }

    func resolvedToken() throws -> String {
        if let token { return token }
        if let t = ProcessInfo.processInfo.environment["STARLING_TOKEN"], !t.isEmpty { return t }
        let path = (dataDir as NSString).appendingPathComponent("admin-token")
        if let t = try? String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), !t.isEmpty {
            return t
        }
        throw ValidationError("no token: pass --token, set STARLING_TOKEN, or run where \(path) exists")
    }

    /// Sends a request and returns status and body; prints the node's error message and exits
    /// non-zero on a 4xx/5xx.
    func send(_ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, contentType: String? = nil) async throws -> (Int, [UInt8]) {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(try resolvedToken())")
        if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        } catch {
            throw CleanExit.message("starling: cannot reach \(baseURL): \(error)")
        }
        let bytes = Array(buffer: try await response.body.collect(upTo: 1 << 30))
        let status = Int(response.status.code)
        if status >= 400 {
            let text = String(decoding: bytes, as: UTF8.self)
            let message = (try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])?["error"] as? String ?? text
            FileHandle.standardError.write(Data("starling: \(status) \(response.status.reasonPhrase): \(message)\n".utf8))
            throw ExitCode(1)
        }
        return (status, bytes)
    }
}

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Manage API tokens on a running node (admin token required).",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a token; prints the secret once.")
        @OptionGroup var client: ClientOptions
        @Option(name: .long, help: "Human-readable name, e.g. prometheus-eu1.") var name: String
        @Option(name: .long, help: "admin, writer (ingest) or reader (read/query).") var role: String
        @Option(name: .customLong("label"), help: ArgumentHelp("Enrichment label added to every series written with this token (repeatable).", valueName: "name=value"))
        var labels: [String] = []

        func run() async throws {
            var labelMap: [String: String] = [:]
            for l in labels {
                guard let eq = l.firstIndex(of: "=") else { throw ValidationError("--label expects name=value, got \"\(l)\"") }
                labelMap[String(l[..<eq])] = String(l[l.index(after: eq)...])
            }
            let body = try JSONSerialization.data(withJSONObject: ["name": name, "role": role, "labels": labelMap], options: [.sortedKeys])
            let (_, bytes) = try await client.send(.POST, "/api/v1/admin/tokens", body: Array(body), contentType: "application/json")
            guard let obj = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any], let data = obj["data"] as? [String: Any] else {
                throw CleanExit.message("starling: unexpected response: \(String(decoding: bytes, as: UTF8.self))")
            }
            print("id:    \(data["id"] ?? "")")
            print("name:  \(data["name"] ?? "")")
            print("role:  \(data["role"] ?? "")")
            print("token: \(data["token"] ?? "")")
            FileHandle.standardError.write(Data("Store the token now: it is not shown again.\n".utf8))
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens (never their secrets).")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let (_, bytes) = try await client.send(.GET, "/api/v1/admin/tokens")
            guard let obj = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any], let data = obj["data"] as? [[String: Any]] else {
                throw CleanExit.message("starling: unexpected response: \(String(decoding: bytes, as: UTF8.self))")
            }
            print("ID                NAME                      ROLE    CREATED                   REVOKED")
            for t in data {
                func col(_ s: Any?, _ w: Int) -> String {
                    let s = "\(s ?? "")"
                    return s.count >= w ? s + " " : s + String(repeating: " ", count: w - s.count)
                }
                print(col(t["id"], 18) + col(t["name"], 26) + col(t["role"], 8) + col(t["createdAt"], 26) + "\(t["revokedAt"] ?? "-")")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token by id.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Token id (from `starling token list`).") var id: String

        func run() async throws {
            _ = try await client.send(.DELETE, "/api/v1/admin/tokens/\(id)")
            print("revoked \(id)")
        }
    }
}

struct WriteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "write", abstract: "Send Influx line protocol from a file or stdin to /api/v2/write.")
    @OptionGroup var client: ClientOptions
    @Option(name: .long, help: "Timestamp precision of the lines: ns, us, ms, s.") var precision: String = "ns"
    @Argument(help: "File with line protocol; - or absent reads stdin.") var file: String?

    func run() async throws {
        let data: Data
        if let file, file != "-" {
            guard let d = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
            data = d
        } else {
            data = FileHandle.standardInput.readDataToEndOfFile()
        }
        let (status, bytes) = try await client.send(.POST, "/api/v2/write?precision=\(precision)", body: Array(data), contentType: "text/plain")
        print(status == 204 ? "ok" : String(decoding: bytes, as: UTF8.self))
    }
}

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Stream raw samples of a selector as JSON lines (/api/v1/export).")
    @OptionGroup var client: ClientOptions
    @Option(name: .long, help: "Start (RFC 3339 or Unix seconds). Default: retention start.") var start: String?
    @Option(name: .long, help: "End (RFC 3339 or Unix seconds). Default: now.") var end: String?
    @Argument(help: "Series selector, e.g. 'up{job=\"node\"}'.") var selector: String

    func run() async throws {
        var q = "match[]=" + (selector.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? selector)
        if let start { q += "&start=" + (start.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? start) }
        if let end { q += "&end=" + (end.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? end) }
        let (_, bytes) = try await client.send(.GET, "/api/v1/export?" + q)
        FileHandle.standardOutput.write(Data(bytes))
    }
}

struct LeaveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leave",
        abstract: "Remove a node from its cluster for good: it hands its shards to their new owners, then stops.",
        discussion: """
            The node announces `leaving`: writes for its shards go to their new owners as well, which pull the \
            shards' history. Once every new owner holds them complete (or cluster.handover_timeout passes), the \
            node stops and leaves placement at once. Progress is printed until the node has stopped. To stop a \
            node that will come back (a restart), send SIGTERM instead.
            """)
    @OptionGroup var client: ClientOptions
    @Flag(name: .long, help: "Return once the leave has started instead of waiting for the node to stop.")
    var noWait = false

    func run() async throws {
        let (_, bytes) = try await client.send(.POST, "/api/v1/cluster/leave")
        print("\(client.baseURL): leave started (\(Self.detail(bytes) ?? "handing over"))")
        guard !noWait else { return }
        var last = ""
        while true {
            try await Task.sleep(for: .seconds(1))
            var request = HTTPClientRequest(url: client.baseURL + "/api/v1/cluster/leave")
            request.headers.add(name: "Authorization", value: "Bearer \(try client.resolvedToken())")
            guard let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(10)),
                  let body = try? await response.body.collect(upTo: 1 << 20)
            else {
                print("\(client.baseURL): node stopped; it has left the cluster")
                return
            }
            if let d = Self.detail(Array(buffer: body)), d != last {
                last = d
                print(d)
            }
        }
    }

    /// "phase: detail" from a leave status body.
    static func detail(_ bytes: [UInt8]) -> String? {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
              let data = obj["data"] as? [String: Any], let phase = data["phase"] as? String else { return nil }
        let detail = data["detail"] as? String ?? ""
        return detail.isEmpty ? phase : "\(phase): \(detail)"
    }
}
