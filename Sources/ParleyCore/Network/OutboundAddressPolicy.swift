/// An IPv4 (4 bytes) or IPv6 (16 bytes) address, parsed from its text form without the C
/// library (`192.0.2.1`, `2001:db8::1`, `::ffff:192.0.2.1`).
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    public init?(_ text: String) {
        var text = Substring(text)
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        if let v4 = Self.parseIPv4(text) {
            bytes = v4
        } else if let v6 = Self.parseIPv6(text) {
            bytes = v6
        } else {
            return nil
        }
    }

    public var isIPv4: Bool { bytes.count == 4 }

    /// The IPv4 address an IPv6 one carries (`::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4
    /// `2002:AABB:CCDD::`), if it carries one.
    public var embeddedIPv4: IPAddress? {
        guard bytes.count == 16 else { return nil }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff { return IPAddress(bytes: Array(bytes[12...])) }
        if bytes[0..<12] == [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0] { return IPAddress(bytes: Array(bytes[12...])) }
        if bytes[0] == 0x20 && bytes[1] == 0x02 { return IPAddress(bytes: Array(bytes[2..<6])) }
        return nil
    }

    public var description: String {
        if isIPv4 { return bytes.map(String.init).joined(separator: ".") }
        let groups = stride(from: 0, to: 16, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
        return groups.map { String($0, radix: 16) }.joined(separator: ":")
    }

    private static func parseIPv4(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            // Decimal only, no leading zeros (`010` is octal to some parsers: refuse it).
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCIIDigit), part == "0" || !part.hasPrefix("0"),
                  let value = UInt8(part) else { return nil }
            bytes.append(value)
        }
        return bytes
    }

    private static func parseIPv6(_ text: Substring) -> [UInt8]? {
        guard text.contains(":"), text.count <= 45 else { return nil }
        let halves = text.split(separator: "::", omittingEmptySubsequences: false)
        guard halves.count <= 2 else { return nil }
        func groups(_ part: Substring, last: Bool) -> [UInt8]? {
            guard !part.isEmpty else { return [] }
            var bytes: [UInt8] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, piece) in pieces.enumerated() {
                if last && index == pieces.count - 1 && piece.contains(".") {
                    guard let v4 = parseIPv4(piece) else { return nil }
                    bytes += v4
                } else {
                    guard (1...4).contains(piece.count), piece.allSatisfy(\.isHexDigit), let value = UInt16(piece, radix: 16) else { return nil }
                    bytes += [UInt8(value >> 8), UInt8(value & 0xff)]
                }
            }
            return bytes
        }
        if halves.count == 1 {
            guard let all = groups(halves[0], last: true), all.count == 16 else { return nil }
            return all
        }
        guard let head = groups(halves[0], last: false), let tail = groups(halves[1], last: true), head.count + tail.count <= 14 else {
            return nil
        }
        return head + Array(repeating: 0, count: 16 - head.count - tail.count) + tail
    }
}

private extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

/// A network in CIDR form (`10.0.0.0/8`, `fd00::/8`; a bare address is the one address).
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    public init?(_ text: String) {
        var trimmed = Substring(text).drop { $0.isWhitespace }
        while trimmed.last?.isWhitespace == true { trimmed = trimmed.dropLast() }
        let parts = trimmed.split(separator: "/", maxSplits: 1)
        guard let first = parts.first, let address = IPAddress(String(first)) else { return nil }
        let bits = address.bytes.count * 8
        if parts.count == 2 {
            guard let length = Int(parts[1]), (0...bits).contains(length) else { return nil }
            prefixLength = length
        } else {
            prefixLength = bits
        }
        self.address = address
    }

    public func contains(_ candidate: IPAddress) -> Bool {
        guard candidate.bytes.count == address.bytes.count else { return false }
        var remaining = prefixLength
        for (mine, theirs) in zip(address.bytes, candidate.bytes) where remaining > 0 {
            let mask: UInt8 = remaining >= 8 ? 0xff : ~(0xff >> UInt8(remaining))
            guard mine & mask == theirs & mask else { return false }
            remaining -= 8
        }
        return true
    }

    public var description: String { "\(address)/\(prefixLength)" }
}

/// Where the node may connect on behalf of a user (webhook receivers, push services — URLs
/// users choose): public unicast addresses, and the networks the operator allows. Everything
/// else — loopback, private, link-local (a cloud's metadata service), shared, multicast,
/// reserved and documentation ranges, and IPv6 forms that carry such an IPv4 address — is
/// refused, so a user cannot make the node reach into its own network.
public struct OutboundAddressPolicy: Sendable, Hashable {
    public var allowed: [IPNetwork]

    public init(allowed: [IPNetwork] = []) { self.allowed = allowed }

    /// The ranges that are not the public internet.
    public static let specialPurpose: [IPNetwork] = [
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
        "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
        "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "100::/64", "2001:db8::/32", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    ].map { IPNetwork($0)! }

    public static func isPublic(_ address: IPAddress) -> Bool {
        if let inner = address.embeddedIPv4 { return isPublic(inner) }
        return !specialPurpose.contains { $0.contains(address) }
    }

    public func permits(_ address: IPAddress) -> Bool {
        allowed.contains { $0.contains(address) || (address.embeddedIPv4.map($0.contains) ?? false) } || Self.isPublic(address)
    }

    /// Parses `10.0.0.0/8, fd00::/8` (commas or spaces); the failure names the first entry that
    /// is not a network.
    public static func networks(_ list: String) -> Result<[IPNetwork], InvalidNetwork> {
        var networks: [IPNetwork] = []
        for entry in list.split(whereSeparator: { $0 == "," || $0.isWhitespace }) {
            guard let network = IPNetwork(String(entry)) else { return .failure(InvalidNetwork(entry: String(entry))) }
            networks.append(network)
        }
        return .success(networks)
    }

    public struct InvalidNetwork: Error, Hashable, CustomStringConvertible {
        public let entry: String
        public var description: String { "\(entry) is not a network (like 10.0.0.0/8 or fd00::/8)" }
    }
}
