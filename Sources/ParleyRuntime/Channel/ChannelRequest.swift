import ParleyCore

/// A write to a channel (DESIGN §2): what the router takes to the channel's owner, here or
/// over the owner's inbox. Every one names the user it is made as.
public enum ChannelRequest: Sendable, Hashable {
    case post(body: String, clientMessageID: String?, threadRootID: String?, attachments: [String] = [])
    case edit(messageID: String, body: String)
    case delete(messageID: String)
    case react(messageID: String, emoji: String, present: Bool)
    case markRead(seq: Int64)
    case typing(Bool)

    public var json: JSONValue {
        switch self {
        case .post(let body, let clientID, let root, let attachments):
            var object: [String: JSONValue] = ["op": "post", "body": .string(body)]
            if let clientID { object["client_msg_id"] = .string(clientID) }
            if let root { object["thread_root_id"] = .string(root) }
            if !attachments.isEmpty { object["attachments"] = .array(attachments.map { .string($0) }) }
            return .object(object)
        case .edit(let id, let body): return ["op": "edit", "message_id": .string(id), "body": .string(body)]
        case .delete(let id): return ["op": "delete", "message_id": .string(id)]
        case .react(let id, let emoji, let present):
            return ["op": "react", "message_id": .string(id), "emoji": .string(emoji), "present": .bool(present)]
        case .markRead(let seq): return ["op": "mark_read", "seq": .int(seq)]
        case .typing(let typing): return ["op": "typing", "typing": .bool(typing)]
        }
    }

    public init?(json: JSONValue) {
        switch json["op"]?.stringValue {
        case "post":
            guard let body = json["body"]?.stringValue else { return nil }
            self = .post(body: body, clientMessageID: json["client_msg_id"]?.stringValue, threadRootID: json["thread_root_id"]?.stringValue,
                         attachments: (json["attachments"]?.arrayValue ?? []).compactMap(\.stringValue))
        case "edit":
            guard let id = json["message_id"]?.stringValue, let body = json["body"]?.stringValue else { return nil }
            self = .edit(messageID: id, body: body)
        case "delete":
            guard let id = json["message_id"]?.stringValue else { return nil }
            self = .delete(messageID: id)
        case "react":
            guard let id = json["message_id"]?.stringValue, let emoji = json["emoji"]?.stringValue,
                  let present = json["present"]?.boolValue else { return nil }
            self = .react(messageID: id, emoji: emoji, present: present)
        case "mark_read":
            guard let seq = json["seq"]?.intValue else { return nil }
            self = .markRead(seq: seq)
        case "typing":
            guard let typing = json["typing"]?.boolValue else { return nil }
            self = .typing(typing)
        default:
            return nil
        }
    }

    /// Runs the request on the channel's server (on the owner node).
    func perform(on server: ChannelServer, as user: String) async throws -> ChannelReply {
        switch self {
        case .post(let body, let clientID, let root, let attachments):
            return .message(try await server.post(userID: user, body: body, clientMessageID: clientID, threadRootID: root,
                                                  attachments: attachments))
        case .edit(let id, let body): return .message(try await server.edit(messageID: id, by: user, body: body))
        case .delete(let id): return .message(try await server.delete(messageID: id, by: user))
        case .react(let id, let emoji, let present):
            return .reactions(try await server.react(messageID: id, by: user, emoji: emoji, present: present))
        case .markRead(let seq):
            let (recorded, unread) = try await server.markRead(user, seq: seq)
            return .read(seq: recorded, unread: unread)
        case .typing(let typing):
            await server.setTyping(user, typing)
            return .done
        }
    }
}

/// The owner's answer to a `ChannelRequest`.
public enum ChannelReply: Sendable, Hashable {
    case message(MessageView)
    case reactions([String: [String]])
    case read(seq: Int64, unread: Int64)
    case done

    public var json: JSONValue {
        switch self {
        case .message(let message): return ["message": message.json]
        case .reactions(let reactions): return ["reactions": .object(reactions.mapValues { .array($0.map { .string($0) }) })]
        case .read(let seq, let unread): return ["read_seq": .int(seq), "unread": .int(unread)]
        case .done: return [:]
        }
    }

    public init?(json: JSONValue) {
        if let message = json["message"] {
            guard let view = try? MessageView(json: message) else { return nil }
            self = .message(view)
        } else if let reactions = json["reactions"]?.objectValue {
            self = .reactions(reactions.mapValues { $0.arrayValue?.compactMap(\.stringValue) ?? [] })
        } else if let seq = json["read_seq"]?.intValue, let unread = json["unread"]?.intValue {
            self = .read(seq: seq, unread: unread)
        } else {
            self = .done
        }
    }
}

extension ChannelReply {
    /// The answer's message; an answer of another shape (a peer of another version) is
    /// `unavailable`, never silence.
    public func message() throws -> MessageView {
        guard case .message(let message) = self else { throw ChannelError.unavailable("the owner's answer held no message") }
        return message
    }

    public func reactions() throws -> [String: [String]] {
        guard case .reactions(let reactions) = self else { throw ChannelError.unavailable("the owner's answer held no reactions") }
        return reactions
    }

    public func readState() throws -> (seq: Int64, unread: Int64) {
        guard case .read(let seq, let unread) = self else { throw ChannelError.unavailable("the owner's answer held no read state") }
        return (seq, unread)
    }
}

extension ChannelError {
    /// The error as a bus reply carries it.
    var json: JSONValue {
        var object: [String: JSONValue] = ["error": .string(code)]
        switch self {
        case .unavailable(let why), .notFound(let why), .forbidden(let why): object["detail"] = .string(why)
        case .gap(let range): object["from"] = .int(range.lowerBound); object["through"] = .int(range.upperBound)
        case .notAMember, .notOwner: break
        }
        return .object(object)
    }

    /// A distinct code per case (the wire `reason` merges some).
    private var code: String {
        switch self {
        case .notAMember: return "not_a_member"
        case .notOwner: return "not_owner"
        case .unavailable: return "unavailable"
        case .notFound: return "not_found"
        case .forbidden: return "forbidden"
        case .gap: return "gap"
        }
    }

    init?(json: JSONValue) {
        guard let code = json["error"]?.stringValue else { return nil }
        let detail = json["detail"]?.stringValue ?? ""
        switch code {
        case "not_a_member": self = .notAMember
        case "not_owner": self = .notOwner
        case "not_found": self = .notFound(detail)
        case "forbidden": self = .forbidden(detail)
        case "gap": self = .gap((json["from"]?.intValue ?? 0)...(json["through"]?.intValue ?? 0))
        default: self = .unavailable(detail)
        }
    }
}
