import Foundation
import StarlingMembership

/// The node's stable identity, kept in `<data_dir>/node-id`.
///
/// Membership is keyed by node ID, not by address or name, so the ID must live exactly as long as
/// the data it describes: a fresh data directory gets a new ID (a new node, even if it reuses an
/// old node's address or name), and a restart with the same directory keeps it (the same node,
/// even if it comes back on a new IP, as a rescheduled container does). Copying a data directory
/// copies the ID; peers then see two nodes with one ID, which the gossip layer detects and logs
/// (`starling_gossip_dropped_total{reason="duplicate_node_id"}`).
///
/// File format: the 32 lowercase hex digits of the ID, then a newline. Anything else is an
/// operational error naming the file, never a silent regeneration: a new ID would make the
/// cluster see this node's data under a stranger's name.
public enum NodeIdentity {
    public static let fileName = "node-id"

    public enum Origin: Sendable, Equatable {
        case existing
        case generated
    }

    /// Reads the ID from `dataDir`, or draws a new one from `random` and writes it (atomically:
    /// a crash leaves either no file or a complete one) when the file does not exist yet.
    public static func loadOrCreate<R: RandomNumberGenerator>(dataDir: String, using random: inout R) throws -> (NodeID, Origin) {
        let path = (dataDir as NSString).appendingPathComponent(fileName)
        if FileManager.default.fileExists(atPath: path) {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw NodeError.startup("cannot read node ID file \(path): \((error as NSError).localizedDescription)")
            }
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard let id = NodeID(hex: trimmed.lowercased()) else {
                throw NodeError.startup(
                    "node ID file \(path) is corrupt: expected 32 hex digits, found \(trimmed.utf8.count) bytes; restore it from a backup, or delete it to make this data directory a new node")
            }
            return (id, .existing)
        }
        let id = NodeID.random(using: &random)
        do {
            try Data((id.description + "\n").utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw NodeError.startup("cannot write node ID file \(path): \((error as NSError).localizedDescription)")
        }
        return (id, .generated)
    }
}
