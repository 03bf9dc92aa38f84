/// A node's identity: its configured name plus a per-boot incarnation, so a restarted node
/// is a new peer even when its name is the same.
public struct NodeIdentity: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let name: String
    public let incarnation: String

    public init(name: String, incarnation: String) {
        self.name = name
        self.incarnation = incarnation
    }

    /// A fresh identity for this boot of `name`.
    public static func booting(name: String) -> NodeIdentity {
        var generator = SystemRandomNumberGenerator()
        let random = (0..<4).map { _ in String(generator.next() as UInt16, radix: 16) }.joined()
        return NodeIdentity(name: name, incarnation: random)
    }

    /// `name/incarnation`, the form stored in leases and envelopes.
    public var description: String { "\(name)/\(incarnation)" }

    /// Parses `name/incarnation`.
    public init?(_ text: String) {
        guard let slash = text.lastIndex(of: "/"), slash != text.startIndex, text.index(after: slash) != text.endIndex else {
            return nil
        }
        self.init(name: String(text[..<slash]), incarnation: String(text[text.index(after: slash)...]))
    }

    public static func < (lhs: NodeIdentity, rhs: NodeIdentity) -> Bool {
        (lhs.name, lhs.incarnation) < (rhs.name, rhs.incarnation)
    }
}

/// A stable 64-bit hash (FNV-1a, then the murmur3 finalizer for avalanche): the same on every
/// node and every run, unlike Swift's seeded `Hasher`.
public func stableHash(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash &*= 0x0000_0100_0000_01b3
    }
    hash ^= hash >> 33
    hash &*= 0xff51_afd7_ed55_8ccd
    hash ^= hash >> 33
    hash &*= 0xc4ce_b9fe_1a85_ec53
    hash ^= hash >> 33
    return hash
}
