import ParleyCore
import Synchronization

/// `MessageStore` in memory, for a single node and for tests. Channels are known once
/// claimed (or `open`ed).
public final class MemoryMessageStore: MessageStore {
    private struct State {
        var fences: [String: Int64] = [:]
        var messages: [String: [Int64: MessageView]] = [:]
        var reactions: [String: [String: Set<String>]] = [:]
        var reads: [String: Int64] = [:]
    }
    private let state = Mutex(State())

    public init() {}

    /// Makes `channel` known with no owner yet.
    public func open(_ channel: String) { state.withLock { $0.fences[channel] = $0.fences[channel] ?? 0 } }

    public func claim(channel: String, fence: Int64) async throws -> Bool {
        state.withLock { state in
            guard (state.fences[channel] ?? 0) < fence else { return false }
            state.fences[channel] = fence
            return true
        }
    }

    private static func owns(_ state: State, _ channel: String, _ fence: Int64) -> Bool {
        state.fences[channel].map { $0 <= fence } ?? false
    }

    public func insert(_ messages: [MessageView], fences: [String: Int64]) async throws -> Set<String> {
        state.withLock { state in
            let refused = Set(fences.filter { !Self.owns(state, $0.key, $0.value) }.keys)
            for message in messages where !refused.contains(message.channelID) && fences[message.channelID] != nil {
                let clash = message.dedupeField.map { field in
                    state.messages[message.channelID]?.values.contains { $0.dedupeField == field } ?? false
                } ?? false
                if state.messages[message.channelID]?[message.seq] == nil && !clash {
                    state.messages[message.channelID, default: [:]][message.seq] = message
                }
            }
            return refused
        }
    }

    public func find(_ keys: [ClientMessageKey]) async throws -> [ClientMessageKey: MessageView] {
        state.withLock { state in
            var matches: [ClientMessageKey: MessageView] = [:]
            for key in keys {
                matches[key] = state.messages[key.channel]?.values.first { $0.userID == key.user && $0.clientMessageID == key.clientMessageID }
            }
            return matches
        }
    }

    public func messages(channel: String, seqs range: ClosedRange<Int64>, limit: Int) async throws -> [MessageView] {
        state.withLock { state in
            Array((state.messages[channel] ?? [:]).values.filter { range.contains($0.seq) }.sorted { $0.seq < $1.seq }.prefix(limit))
        }
    }

    public func messages(channel: String, before: Int64, limit: Int) async throws -> [MessageView] {
        state.withLock { state in
            Array((state.messages[channel] ?? [:]).values.filter { $0.seq < before }.sorted { $0.seq > $1.seq }.prefix(limit)).reversed()
        }
    }

    public func update(_ message: MessageView, fence: Int64) async throws -> Bool {
        try state.withLock { state in
            guard Self.owns(state, message.channelID, fence) else { throw StoreError.staleFence }
            guard var stored = state.messages[message.channelID]?[message.seq], stored.id == message.id else { return false }
            stored.body = message.body
            stored.editedAt = message.editedAt
            stored.deletedAt = message.deletedAt
            state.messages[message.channelID]?[message.seq] = stored
            return true
        }
    }

    public func message(channel: String, id: String) async throws -> MessageView? {
        state.withLock { $0.messages[channel]?.values.first { $0.id == id } }
    }

    public func react(channel: String, messageID: String, user: String, emoji: String, present: Bool,
                      fence: Int64) async throws -> [String: [String]] {
        try state.withLock { state in
            guard Self.owns(state, channel, fence) else { throw StoreError.staleFence }
            if present {
                state.reactions[messageID, default: [:]][emoji, default: []].insert(user)
            } else {
                state.reactions[messageID]?[emoji]?.remove(user)
                if state.reactions[messageID]?[emoji]?.isEmpty == true { state.reactions[messageID]?[emoji] = nil }
            }
            return (state.reactions[messageID] ?? [:]).mapValues { $0.sorted() }
        }
    }

    public func markRead(channel: String, user: String, seq: Int64, fence: Int64) async throws -> Int64 {
        try state.withLock { state in
            guard Self.owns(state, channel, fence) else { throw StoreError.staleFence }
            let key = "\(channel)/\(user)"
            state.reads[key] = max(state.reads[key] ?? 0, seq)
            return state.reads[key]!
        }
    }

    public func lastSeq(channel: String) async throws -> Int64 {
        state.withLock { $0.messages[channel]?.keys.max() ?? 0 }
    }
}
