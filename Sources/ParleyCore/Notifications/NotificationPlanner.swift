/// Decides who is notified about a message and why: pure, so every rule is tested without a
/// database. The sender is never notified; a member who muted the channel is told only of
/// direct messages and of mentions by name; each recipient gets one item, for the strongest
/// reason (direct, then mention, then channel mention, then thread reply).
public enum NotificationPlanner {
    public struct Recipient: Sendable, Hashable {
        public let user: String
        public let item: NotificationItem

        public var priority: Int { item.reason.priority }
    }

    /// `online`: members online now, for `@here`.
    public static func recipients(of context: NotificationContext, online: Set<String>) -> [Recipient] {
        let message = context.message
        guard message.deletedAt == nil else { return [] }
        var reasons: [String: NotificationReason] = [:]
        func add(_ user: String, _ reason: NotificationReason) {
            guard user != message.userID else { return }
            if let current = reasons[user], rank(current) <= rank(reason) { return }
            reasons[user] = reason
        }
        if context.isDirect {
            for member in context.members { add(member.id, .direct) }
        }
        let byHandle = Dictionary(context.members.flatMap { member in member.handles.map { ($0, member.id) } }) { first, _ in first }
        for entity in MessageEntity.parse(message.body) {
            switch entity {
            case .mention(let handle, _, _):
                if let user = byHandle[handle.lowercased()] { add(user, .mention) }
            case .channelMention(let name, _, _):
                for member in context.members where name != "here" || online.contains(member.id) { add(member.id, .channelMention) }
            case .link:
                break
            }
        }
        if message.threadRootID != nil {
            let members = Set(context.members.map(\.id))
            for user in context.threadParticipants where members.contains(user) { add(user, .threadReply) }
        }
        let excerpt = String(message.body.prefix(140))
        return reasons.compactMap { user, reason in
            if context.muted.contains(user) && reason != .direct && reason != .mention { return nil }
            return Recipient(user: user, item: NotificationItem(messageID: message.id, channelID: message.channelID,
                                                                channelName: context.channelName, seq: message.seq, reason: reason,
                                                                senderName: context.senderName, excerpt: excerpt))
        }.sorted { ($0.priority, $1.user) > ($1.priority, $0.user) }
    }

    /// The items of a digest still worth sending when it runs: those the recipient has not
    /// read (`lastRead` per channel), one per message, in the order they came.
    public static func unread(_ items: [NotificationItem], lastRead: [String: Int64]) -> [NotificationItem] {
        var seen: Set<String> = []
        return items.filter { item in
            guard item.seq > lastRead[item.channelID, default: 0] else { return false }
            return seen.insert(item.messageID).inserted
        }
    }

    /// The text a digest is told in (the email's subject and the push's title).
    public static func title(of items: [NotificationItem]) -> String {
        guard let first = items.first else { return "" }
        if items.count == 1 {
            switch first.reason {
            case .direct: return "\(first.senderName) sent you a message"
            case .mention: return "\(first.senderName) mentioned you in #\(first.channelName)"
            case .channelMention: return "\(first.senderName) notified #\(first.channelName)"
            case .threadReply: return "\(first.senderName) replied in a thread in #\(first.channelName)"
            }
        }
        return "\(items.count) new notifications"
    }

    private static func rank(_ reason: NotificationReason) -> Int {
        switch reason {
        case .direct: return 0
        case .mention: return 1
        case .channelMention: return 2
        case .threadReply: return 3
        }
    }
}
