/// Who is told about a message, and why (DESIGN §1 `NotificationServer`).
public enum NotificationReason: String, Sendable, Hashable, CaseIterable {
    /// A message in a direct channel.
    case direct
    /// `@handle` naming the user.
    case mention
    /// `@channel`, `@everyone`, or `@here` while the user was online.
    case channelMention = "channel_mention"
    /// A reply in a thread the user started or replied in.
    case threadReply = "thread_reply"

    /// Direct messages and mentions of the user by name come first.
    public var priority: Int {
        switch self {
        case .direct, .mention: return 10
        case .channelMention, .threadReply: return 0
        }
    }
}

/// A channel member as the planner sees them.
public struct NotificationMember: Sendable, Hashable {
    public let id: String
    public let displayName: String
    public let email: String

    public init(id: String, displayName: String, email: String) {
        self.id = id
        self.displayName = displayName
        self.email = email
    }

    /// The handles that name this member: the display name without spaces, and the email's
    /// local part (compared case-insensitively).
    public var handles: Set<String> {
        let name = displayName.lowercased().filter { !$0.isWhitespace }
        let local = email.lowercased().split(separator: "@").first.map(String.init) ?? ""
        return Set([name, local].filter { !$0.isEmpty })
    }
}

/// Everything the planner needs about one stored message.
public struct NotificationContext: Sendable, Hashable {
    public let message: MessageView
    public let channelName: String
    public let isDirect: Bool
    public let senderName: String
    public let members: [NotificationMember]
    /// Who started or replied in the message's thread (empty when it is no reply).
    public let threadParticipants: Set<String>
    /// Members who muted the channel.
    public let muted: Set<String>

    public init(message: MessageView, channelName: String, isDirect: Bool, senderName: String, members: [NotificationMember],
                threadParticipants: Set<String>, muted: Set<String>) {
        self.message = message
        self.channelName = channelName
        self.isDirect = isDirect
        self.senderName = senderName
        self.members = members
        self.threadParticipants = threadParticipants
        self.muted = muted
    }
}

/// One thing a notification is about: it goes into the recipient's pending digest.
public struct NotificationItem: Sendable, Hashable {
    public let messageID: String
    public let channelID: String
    public let channelName: String
    public let seq: Int64
    public let reason: NotificationReason
    public let senderName: String
    /// The start of the message (at most 140 characters).
    public let excerpt: String

    public init(messageID: String, channelID: String, channelName: String, seq: Int64, reason: NotificationReason,
                senderName: String, excerpt: String) {
        self.messageID = messageID
        self.channelID = channelID
        self.channelName = channelName
        self.seq = seq
        self.reason = reason
        self.senderName = senderName
        self.excerpt = excerpt
    }

    public var json: JSONValue {
        ["message_id": .string(messageID), "channel_id": .string(channelID), "channel_name": .string(channelName), "seq": .int(seq),
         "reason": .string(reason.rawValue), "from": .string(senderName), "excerpt": .string(excerpt)]
    }

    public init?(json: JSONValue) {
        guard let messageID = json["message_id"]?.stringValue, let channelID = json["channel_id"]?.stringValue,
              let seq = json["seq"]?.intValue, let reason = json["reason"]?.stringValue.flatMap(NotificationReason.init(rawValue:))
        else { return nil }
        self.init(messageID: messageID, channelID: channelID, channelName: json["channel_name"]?.stringValue ?? "", seq: seq,
                  reason: reason, senderName: json["from"]?.stringValue ?? "", excerpt: json["excerpt"]?.stringValue ?? "")
    }
}

/// A user's delivery settings.
public struct NotificationSettings: Sendable, Hashable {
    /// Do not disturb until this time (ms since 1970): nothing is delivered before it.
    public var doNotDisturbUntil: Int64?
    public var webhookURL: String?
    /// The key of the webhook's HMAC-SHA256 signature.
    public var webhookSecret: String?
    public var email: Bool
    public var emailAddress: String

    public init(doNotDisturbUntil: Int64? = nil, webhookURL: String? = nil, webhookSecret: String? = nil, email: Bool = false,
                emailAddress: String = "") {
        self.doNotDisturbUntil = doNotDisturbUntil
        self.webhookURL = webhookURL
        self.webhookSecret = webhookSecret
        self.email = email
        self.emailAddress = emailAddress
    }
}
