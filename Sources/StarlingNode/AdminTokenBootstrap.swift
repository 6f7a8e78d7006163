import Foundation
import Logging
import StarlingHTTP

/// Resolves the bootstrap admin token: `auth.admin_token` (`STARLING_ADMIN_TOKEN`) when set;
/// otherwise the token in `auth.admin_token_file`, generated on first start (mode 0600).
public enum AdminTokenBootstrap {
    public enum Origin: Sendable, Equatable {
        case configured
        case existingFile(String)
        case generatedFile(String)
    }

    public struct BootstrapError: Error, CustomStringConvertible {
        public var description: String
    }

    public static func resolve(_ config: NodeConfig) throws -> (token: String, origin: Origin) {
        if let t = config.adminToken { return (t, .configured) }
        let path = config.resolvedAdminTokenFile
        let fm = FileManager.default
        if fm.fileExists(atPath: path) {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw BootstrapError(description: "cannot read admin token file \(path): \((error as NSError).localizedDescription)")
            }
            let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard token.count >= TokenSecret.minimumLength else {
                throw BootstrapError(description: "admin token file \(path) holds no usable token (fewer than \(TokenSecret.minimumLength) characters); delete it to generate a new one")
            }
            return (token, .existingFile(path))
        }
        var rng = SystemRandomNumberGenerator()
        let token = TokenSecret.generate(using: &rng)
        let dir = (path as NSString).deletingLastPathComponent
        do {
            if !dir.isEmpty { try fm.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        } catch {
            throw BootstrapError(description: "cannot create directory \(dir) for the admin token: \((error as NSError).localizedDescription)")
        }
        // Create with 0600 from the start (O_EXCL): the secret is never world-readable, even briefly.
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else {
            throw BootstrapError(description: "cannot create admin token file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let bytes = Array((token + "\n").utf8)
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        guard n == bytes.count, fsync(fd) == 0 else {
            throw BootstrapError(description: "cannot write admin token file \(path): \(String(cString: strerror(errno)))")
        }
        return (token, .generatedFile(path))
    }
}
