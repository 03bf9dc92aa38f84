/// A message as clients see it.
public struct MessageView: Sendable, Hashable {
    public var id: String
    public var channelID: String
    public var seq: Int64
    public var userID: String
    public var body: String
    public var threadRootID: String?
    public var clientMessageID: String?
    /// Milliseconds since the Unix epoch.
    public var createdAt: Int64
    public var editedAt: Int64?
    public var deletedAt: Int64?
    /// Ids of uploads the message carries.
    public var attachments: [String]

    public init(id: String, channelID: String, seq: Int64, userID: String, body: String, threadRootID: String? = nil,
                clientMessageID: String? = nil, createdAt: Int64, editedAt: Int64? = nil, deletedAt: Int64? = nil,
                attachments: [String] = []) {
        self.id = id
        self.channelID = channelID
        self.seq = seq
        self.userID = userID
        self.body = body
        self.threadRootID = threadRootID
        self.clientMessageID = clientMessageID
        self.createdAt = createdAt
        self.editedAt = editedAt
        self.deletedAt = deletedAt
        self.attachments = attachments
    }

    /// The de-duplication key of a message sent with a `client_msg_id`: the id is the
    /// sender's own, so two senders may use the same one.
    public var dedupeField: String? { clientMessageID.map { "\(userID):\($0)" } }

    public var json: JSONValue {
        var members: [String: JSONValue] = [
            "id": .string(id), "channel_id": .string(channelID), "seq": .int(seq), "user_id": .string(userID),
            "body": .string(body), "created_at": .int(createdAt),
        ]
        members["thread_root_id"] = threadRootID.map { .string($0) } ?? .null
        members["client_msg_id"] = clientMessageID.map { .string($0) } ?? .null
        members["edited_at"] = editedAt.map { .int($0) } ?? .null
        members["deleted_at"] = deletedAt.map { .int($0) } ?? .null
        members["entities"] = .array(MessageEntity.parse(body).map(\.json))
        members["attachments"] = .array(attachments.map { .string($0) })
        return .object(members)
    }
}

/// What the server pushes to clients (DESIGN §6).
public enum ServerEvent: Sendable, Hashable {
    case messageCreated(MessageView)
    case messageUpdated(MessageView)
    case messageDeleted(channelID: String, messageID: String, seq: Int64)
    case typing(userID: String, typing: Bool)
    case reactionAdded(messageID: String, userID: String, emoji: String)
    case reactionRemoved(messageID: String, userID: String, emoji: String)
    case readReceipt(userID: String, seq: Int64)
    case presenceState(JSONValue)
    case presenceDiff(JSONValue)
    case threadReply(MessageView)
    /// Workspace-wide: a channel was created, a member joined.
    case channelCreated(JSONValue)
    case memberJoined(JSONValue)
    /// On `user:{id}`: an in-app notification; an upload's progress.
    case notification(JSONValue)
    case uploadStatus(JSONValue)
    /// `phx_error`: the topic's server stopped; Phoenix clients rejoin.
    case topicError

    public var name: String {
        switch self {
        case .messageCreated: return "message_created"
        case .messageUpdated: return "message_updated"
        case .messageDeleted: return "message_deleted"
        case .typing: return "typing"
        case .reactionAdded: return "reaction_added"
        case .reactionRemoved: return "reaction_removed"
        case .readReceipt: return "read_receipt"
        case .presenceState: return "presence_state"
        case .presenceDiff: return "presence_diff"
        case .threadReply: return "thread_reply"
        case .channelCreated: return "channel_created"
        case .memberJoined: return "member_joined"
        case .notification: return "notification"
        case .uploadStatus: return "upload_status"
        case .topicError: return "phx_error"
        }
    }

    public var payload: JSONValue {
        switch self {
        case .messageCreated(let message), .messageUpdated(let message), .threadReply(let message):
            return message.json
        case .messageDeleted(let channelID, let messageID, let seq):
            return ["channel_id": .string(channelID), "id": .string(messageID), "seq": .int(seq)]
        case .typing(let userID, let typing):
            return ["user_id": .string(userID), "typing": .bool(typing)]
        case .reactionAdded(let messageID, let userID, let emoji), .reactionRemoved(let messageID, let userID, let emoji):
            return ["message_id": .string(messageID), "user_id": .string(userID), "emoji": .string(emoji)]
        case .readReceipt(let userID, let seq):
            return ["user_id": .string(userID), "seq": .int(seq)]
        case .presenceState(let state), .presenceDiff(let state), .channelCreated(let state), .memberJoined(let state),
             .notification(let state), .uploadStatus(let state):
            return state
        case .topicError:
            return [:]
        }
    }

    /// The event as a broadcast frame on `topic` (no refs).
    public func frame(topic: String) -> PhoenixFrame {
        PhoenixFrame(topic: topic, event: name, json: payload)
    }
}
