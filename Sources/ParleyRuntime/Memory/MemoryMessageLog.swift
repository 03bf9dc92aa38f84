import ParleyCore
import Synchronization

/// `MessageLog` in memory, checking the holder against a `LeaseStore` as the Redis script does.
public final class MemoryMessageLog: MessageLog {
    private struct Channel {
        var entries: [MessageView] = []
        var lastSeq: Int64 = 0
        var clientIDs: [String: (seq: Int64, id: String)] = [:]
    }
    private let leases: any LeaseStore
    private let channels = Mutex<[String: Channel]>([:])

    public init(leases: any LeaseStore) { self.leases = leases }

    public func append(_ message: MessageView, holder: String) async throws -> LogAppendOutcome {
        guard try await leases.holder(of: .channel(message.channelID)) == holder else { return .notOwner }
        return channels.withLock { channels in
            var channel = channels[message.channelID] ?? Channel()
            defer { channels[message.channelID] = channel }
            if let clientID = message.clientMessageID, let prior = channel.clientIDs[clientID] {
                return .duplicate(seq: prior.seq, id: prior.id)
            }
            guard message.seq > channel.lastSeq else { return .staleSeq }
            channel.entries.append(message)
            channel.lastSeq = message.seq
            if let clientID = message.clientMessageID { channel.clientIDs[clientID] = (message.seq, message.id) }
            return .appended
        }
    }

    public func entries(channel: String, after: Int64, limit: Int) async throws -> [MessageView] {
        channels.withLock { Array(($0[channel]?.entries ?? []).filter { $0.seq > after }.prefix(limit)) }
    }

    public func lastSeq(channel: String) async throws -> Int64? {
        channels.withLock { $0[channel]?.entries.last?.seq }
    }

    public func trim(through: [String: Int64]) async throws {
        channels.withLock { channels in
            for (channel, seq) in through { channels[channel]?.entries.removeAll { $0.seq <= seq } }
        }
    }
}
