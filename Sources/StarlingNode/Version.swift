import Foundation

/// What `starling version` and `starling_build_info` report.
public enum StarlingVersion {
    /// Release version of this source tree.
    public static let version = "0.1.0-dev"

    /// The Swift compiler that built the binary.
    public static let swift: String = {
        #if compiler(>=6.4)
        return "6.4+"
        #elseif compiler(>=6.3)
        return "6.3"
        #elseif compiler(>=6.2)
        return "6.2"
        #else
        return "<6.2"
        #endif
    }()

    /// The git commit of the source checkout the binary was built in, when the binary still sits
    /// in that checkout's `.build` directory (read from `.git` without running git); nil otherwise
    /// (installed binaries, Docker images built without `.git`).
    public static let commit: String? = {
        var dir = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            let git = dir.appendingPathComponent(".git")
            if let c = readHead(gitDir: git) { return String(c.prefix(12)) }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }()

    private static func readHead(gitDir: URL) -> String? {
        var gitDir = gitDir
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: gitDir.path, isDirectory: &isDir) else { return nil }
        if !isDir.boolValue {
            // A worktree: `.git` is a file "gitdir: <path>".
            guard let text = try? String(contentsOf: gitDir, encoding: .utf8), text.hasPrefix("gitdir:") else { return nil }
            gitDir = URL(fileURLWithPath: text.dropFirst(7).trimmingCharacters(in: .whitespacesAndNewlines))
        }
        guard let head = try? String(contentsOf: gitDir.appendingPathComponent("HEAD"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) else { return nil }
        guard head.hasPrefix("ref: ") else { return head.count >= 12 ? head : nil }
        let ref = String(head.dropFirst(5))
        var common = gitDir
        if let c = try? String(contentsOf: gitDir.appendingPathComponent("commondir"), encoding: .utf8) {
            common = URL(fileURLWithPath: c.trimmingCharacters(in: .whitespacesAndNewlines), relativeTo: gitDir).standardizedFileURL
        }
        for base in [gitDir, common] {
            if let v = try? String(contentsOf: base.appendingPathComponent(ref), encoding: .utf8) {
                return v.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            if let packed = try? String(contentsOf: base.appendingPathComponent("packed-refs"), encoding: .utf8) {
                for line in packed.split(separator: "\n") where line.hasSuffix(" " + ref) {
                    return String(line.prefix(while: { $0 != " " }))
                }
            }
        }
        return nil
    }
}
