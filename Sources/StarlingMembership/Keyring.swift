import Crypto

/// Shared symmetric keys that authenticate and encrypt gossip datagrams and push-pull frames.
///
/// The first key is the *primary*: everything is sealed with it. Opening tries every key, so a
/// key can be rotated with no downtime:
/// 1. add the new key as a secondary on every node (restart or reload each in turn);
/// 2. make it primary on every node (nodes still open messages sealed with the old one);
/// 3. remove the old key everywhere.
///
/// An empty keyring means plaintext (envelope kind 0). A node with keys refuses plaintext
/// envelopes, so one unconfigured node cannot inject membership into a protected cluster.
public struct Keyring: Sendable {
    public private(set) var keys: [SymmetricKey]

    public enum KeyError: Error, Equatable, CustomStringConvertible {
        case badLength(index: Int, bytes: Int)
        case badBase64(index: Int)

        public var description: String {
            switch self {
            case .badLength(let i, let n): "gossip key \(i): \(n) bytes, must be 16, 24 or 32 (AES-128/192/256)"
            case .badBase64(let i): "gossip key \(i): not valid base64"
            }
        }
    }

    public init() { keys = [] }

    /// Keys as raw bytes, primary first; each must be 16, 24 or 32 bytes.
    public init(rawKeys: [[UInt8]]) throws(KeyError) {
        var ks: [SymmetricKey] = []
        for (i, k) in rawKeys.enumerated() {
            guard [16, 24, 32].contains(k.count) else { throw .badLength(index: i, bytes: k.count) }
            ks.append(SymmetricKey(data: k))
        }
        keys = ks
    }

    /// Keys in standard base64 (as given in config, flags and env), primary first.
    public init(base64Keys: [String]) throws(KeyError) {
        var raw: [[UInt8]] = []
        for (i, s) in base64Keys.enumerated() {
            guard let b = Base64.decode(s) else { throw .badBase64(index: i) }
            raw.append(b)
        }
        try self.init(rawKeys: raw)
    }

    public var isEncrypting: Bool { !keys.isEmpty }
}

/// The envelope around every datagram and push-pull payload:
///
///     kind u8 = 0 : plaintext follows
///     kind u8 = 1 : nonce (12 bytes) ‖ AES-GCM ciphertext ‖ tag (16 bytes); additional data = kind byte
///
/// Authentication is checked before a single byte of the plaintext is parsed.
public enum Envelope {
    public static let plaintextKind: UInt8 = 0
    public static let aesGCMKind: UInt8 = 1
    public static let nonceBytes = 12
    public static let tagBytes = 16
    /// Worst-case bytes the envelope adds; the datagram budget always reserves them.
    public static let maxOverheadBytes = 1 + nonceBytes + tagBytes

    public enum OpenError: Error, Equatable, Sendable, CustomStringConvertible {
        case empty
        case unknownKind(UInt8)
        /// Plaintext arrived but this node requires encryption.
        case plaintextRefused
        /// Encrypted arrived but this node has no keys.
        case encryptedWithoutKeys
        case tooShort(Int)
        /// No key in the keyring authenticates the message.
        case authenticationFailed

        public var description: String {
            switch self {
            case .empty: "empty envelope"
            case .unknownKind(let k): "unknown envelope kind \(k)"
            case .plaintextRefused: "plaintext envelope refused: gossip encryption is enabled"
            case .encryptedWithoutKeys: "encrypted envelope but no gossip keys configured"
            case .tooShort(let n): "encrypted envelope of \(n) bytes is shorter than nonce and tag"
            case .authenticationFailed: "no key in the keyring authenticates the message"
            }
        }
    }

    /// Seals `plaintext` with the primary key, or wraps it as plaintext if the keyring is empty.
    /// The nonce is drawn from `random` (the instance's generator: a 96-bit nonce collides with
    /// probability ~n²/2⁹⁷ over n messages, negligible; GCM needs uniqueness, not secrecy).
    public static func seal<R: RandomNumberGenerator>(_ plaintext: [UInt8], keyring: Keyring, random: inout R) -> [UInt8] {
        guard let key = keyring.keys.first else {
            var out: [UInt8] = [plaintextKind]
            out.append(contentsOf: plaintext)
            return out
        }
        var nonceBytes = [UInt8](repeating: 0, count: nonceBytes)
        var a = random.next(), b = random.next()
        for i in 0..<8 { nonceBytes[i] = UInt8(truncatingIfNeeded: a); a >>= 8 }
        for i in 8..<12 { nonceBytes[i] = UInt8(truncatingIfNeeded: b); b >>= 8 }
        do {
            let nonce = try AES.GCM.Nonce(data: nonceBytes)
            let box = try AES.GCM.seal(plaintext, using: key, nonce: nonce, authenticating: [aesGCMKind])
            var out: [UInt8] = [aesGCMKind]
            out.reserveCapacity(1 + nonceBytes.count + plaintext.count + tagBytes)
            out.append(contentsOf: nonceBytes)
            out.append(contentsOf: box.ciphertext)
            out.append(contentsOf: box.tag)
            return out
        } catch {
            // Only possible with a malformed nonce or key, both constructed above with valid sizes.
            preconditionFailure("AES-GCM seal failed with a valid key and nonce: \(error)")
        }
    }

    /// Opens an envelope, trying every key. Returns the plaintext.
    public static func open(_ bytes: [UInt8], keyring: Keyring) throws(OpenError) -> [UInt8] {
        guard let kind = bytes.first else { throw .empty }
        switch kind {
        case plaintextKind:
            guard !keyring.isEncrypting else { throw .plaintextRefused }
            return Array(bytes[1...])
        case aesGCMKind:
            guard keyring.isEncrypting else { throw .encryptedWithoutKeys }
            guard bytes.count >= 1 + nonceBytes + tagBytes else { throw .tooShort(bytes.count) }
            let nonceEnd = 1 + nonceBytes
            let tagStart = bytes.count - tagBytes
            guard let nonce = try? AES.GCM.Nonce(data: bytes[1..<nonceEnd]),
                  let box = try? AES.GCM.SealedBox(nonce: nonce, ciphertext: bytes[nonceEnd..<tagStart], tag: bytes[tagStart...])
            else { throw .authenticationFailed }
            for key in keyring.keys {
                if let plain = try? AES.GCM.open(box, using: key, authenticating: [aesGCMKind]) {
                    return Array(plain)
                }
            }
            throw .authenticationFailed
        default:
            throw .unknownKind(kind)
        }
    }
}

/// Minimal standard base64 (RFC 4648) for keys in configuration; the pure target links no
/// Foundation.
public enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var i = 0
        while i + 3 <= bytes.count {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            for s in [18, 12, 6, 0] { out.append(alphabet[Int((v >> UInt32(s)) & 63)]) }
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let v = UInt32(bytes[i]) << 16
            out.append(alphabet[Int((v >> 18) & 63)]); out.append(alphabet[Int((v >> 12) & 63)])
            out.append(UInt8(ascii: "=")); out.append(UInt8(ascii: "="))
        } else if rest == 2 {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out.append(alphabet[Int((v >> 18) & 63)]); out.append(alphabet[Int((v >> 12) & 63)])
            out.append(alphabet[Int((v >> 6) & 63)]); out.append(UInt8(ascii: "="))
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ text: String) -> [UInt8]? {
        var values: [UInt8] = []
        var padding = 0
        for c in text.utf8 {
            if c == UInt8(ascii: "=") { padding += 1; continue }
            if padding > 0 { return nil }
            guard let idx = alphabet.firstIndex(of: c) else { return nil }
            values.append(UInt8(idx))
        }
        guard (values.count + padding) % 4 == 0, padding <= 2 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < values.count {
            let chunk = values[i..<min(i + 4, values.count)]
            var v: UInt32 = 0
            for (j, x) in chunk.enumerated() { v |= UInt32(x) << UInt32(18 - 6 * j) }
            let produced = chunk.count - 1
            for j in 0..<produced { out.append(UInt8(truncatingIfNeeded: v >> UInt32(16 - 8 * j))) }
            i += 4
        }
        return out
    }
}
