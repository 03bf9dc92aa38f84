/// Limits on what clients send (DESIGN §6). Defaults suit chat; nodes may configure them.
public struct PayloadLimits: Sendable, Hashable {
    public var maximumBodyCharacters = 4000
    public var maximumClientMessageIDLength = 64
    public var maximumEmojiLength = 64
    public var maximumHistoryPage: Int64 = 100
    public var defaultHistoryPage: Int64 = 50

    public init() {}
}

/// What a client may ask on a `channel:` topic, decoded and validated.
public enum ChannelCommand: Sendable, Hashable {
    case newMessage(body: String, clientMessageID: String?, threadRootID: String?)
    case editMessage(messageID: String, body: String)
    case deleteMessage(messageID: String)
    case typingStart
    case typingStop
    case addReaction(messageID: String, emoji: String)
    case removeReaction(messageID: String, emoji: String)
    case markRead(seq: Int64)
    /// Messages with `seq` below `before` (newest first) or above `after` (oldest first).
    case loadHistory(before: Int64?, after: Int64?, limit: Int64)

    public static let events = ["new_message", "edit_message", "delete_message", "typing_start", "typing_stop",
                                "add_reaction", "remove_reaction", "mark_read", "load_history"]

    public init(event: String, payload: JSONValue, limits: PayloadLimits = PayloadLimits(),
                topic: String = "channel") throws(ProtocolError) {
        let reader = try PayloadReader(payload)
        switch event {
        case "new_message":
            self = .newMessage(body: try reader.string("body", maxLength: limits.maximumBodyCharacters, multiline: true),
                               clientMessageID: try reader.optionalString("client_msg_id", maxLength: limits.maximumClientMessageIDLength),
                               threadRootID: try reader.optionalID("thread_root_id"))
        case "edit_message":
            self = .editMessage(messageID: try reader.id("message_id"),
                                body: try reader.string("body", maxLength: limits.maximumBodyCharacters, multiline: true))
        case "delete_message":
            self = .deleteMessage(messageID: try reader.id("message_id"))
        case "typing_start": self = .typingStart
        case "typing_stop": self = .typingStop
        case "add_reaction", "remove_reaction":
            let messageID = try reader.id("message_id")
            let emoji = try reader.string("emoji", maxLength: limits.maximumEmojiLength)
            self = event == "add_reaction" ? .addReaction(messageID: messageID, emoji: emoji)
                                           : .removeReaction(messageID: messageID, emoji: emoji)
        case "mark_read":
            self = .markRead(seq: try reader.int("seq", in: 0...Int64.max))
        case "load_history":
            let before = try reader.optionalInt("before", in: 1...Int64.max)
            let after = try reader.optionalInt("after", in: 0...Int64.max)
            if before != nil && after != nil {
                throw .invalidField(field: "before", reason: "and after cannot both be given")
            }
            self = .loadHistory(before: before, after: after,
                                limit: try reader.optionalInt("limit", in: 1...limits.maximumHistoryPage) ?? limits.defaultHistoryPage)
        default:
            throw .unknownEvent(topic: topic, event: event)
        }
    }
}

/// The payload of `phx_join`: an optional token (clients may send it here instead of on the
/// socket URL) and, for channels, the last `seq` the client saw, to catch up from.
public struct JoinRequest: Sendable, Hashable {
    public var token: String?
    public var lastSeq: Int64?

    public init(token: String? = nil, lastSeq: Int64? = nil) {
        self.token = token
        self.lastSeq = lastSeq
    }

    public init(payload: JSONValue) throws(ProtocolError) {
        let reader = try PayloadReader(payload)
        token = try reader.optionalString("token", maxLength: 4096)
        lastSeq = try reader.optionalInt("last_seq", in: 0...Int64.max)
    }
}
