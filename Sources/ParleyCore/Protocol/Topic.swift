/// A client topic (DESIGN §6): what a socket joins.
public enum Topic: Sendable, Hashable, CustomStringConvertible {
    case workspace(String)
    case channel(String)
    case user(String)
    case thread(String)
    /// `phoenix`: heartbeats.
    case phoenix

    /// Parses `workspace:{id}`, `channel:{id}`, `user:{id}`, `thread:{message_id}` or `phoenix`.
    public init(_ text: String) throws(ProtocolError) {
        if text == "phoenix" { self = .phoenix; return }
        guard let colon = text.firstIndex(of: ":") else { throw .unknownTopic(text) }
        let id = String(text[text.index(after: colon)...])
        guard Self.isValidID(id) else { throw .unknownTopic(text) }
        switch text[..<colon] {
        case "workspace": self = .workspace(id)
        case "channel": self = .channel(id)
        case "user": self = .user(id)
        case "thread": self = .thread(id)
        default: throw .unknownTopic(text)
        }
    }

    /// Ids are 1–64 characters of letters, digits, `-` and `_` (UUIDs and slugs).
    public static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 64 && id.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
        }
    }

    public var description: String {
        switch self {
        case .workspace(let id): return "workspace:\(id)"
        case .channel(let id): return "channel:\(id)"
        case .user(let id): return "user:\(id)"
        case .thread(let id): return "thread:\(id)"
        case .phoenix: return "phoenix"
        }
    }
}
