import ParleyCore
import Synchronization

/// `MessageStore` in memory, for a single node and for tests.
public final class MemoryMessageStore: MessageStore {
    private let channels = Mutex<[String: [Int64: MessageView]]>([:])
    private let reactions = Mutex<[String: [String: Set<String>]]>([:])

    public init() {}

    public func insert(_ messages: [MessageView]) async throws -> Int {
        channels.withLock { channels in
            var inserted = 0
            for message in messages where channels[message.channelID]?[message.seq] == nil {
                channels[message.channelID, default: [:]][message.seq] = message
                inserted += 1
            }
            return inserted
        }
    }

    public func messages(channel: String, seqs range: ClosedRange<Int64>, limit: Int) async throws -> [MessageView] {
        channels.withLock { channels in
            Array((channels[channel] ?? [:]).values.filter { range.contains($0.seq) }.sorted { $0.seq < $1.seq }.prefix(limit))
        }
    }

    public func messages(channel: String, before: Int64, limit: Int) async throws -> [MessageView] {
        channels.withLock { channels in
            Array((channels[channel] ?? [:]).values.filter { $0.seq < before }.sorted { $0.seq > $1.seq }.prefix(limit)).reversed()
        }
    }

    public func upsert(_ message: MessageView) async throws {
        channels.withLock { $0[message.channelID, default: [:]][message.seq] = message }
    }

    public func message(channel: String, id: String) async throws -> MessageView? {
        channels.withLock { $0[channel]?.values.first { $0.id == id } }
    }

    public func react(messageID: String, user: String, emoji: String, present: Bool) async throws -> [String: [String]] {
        reactions.withLock { reactions in
            if present {
                reactions[messageID, default: [:]][emoji, default: []].insert(user)
            } else {
                reactions[messageID]?[emoji]?.remove(user)
                if reactions[messageID]?[emoji]?.isEmpty == true { reactions[messageID]?[emoji] = nil }
            }
            return (reactions[messageID] ?? [:]).mapValues { $0.sorted() }
        }
    }

    public func lastSeq(channel: String) async throws -> Int64 {
        channels.withLock { $0[channel]?.keys.max() ?? 0 }
    }
}
