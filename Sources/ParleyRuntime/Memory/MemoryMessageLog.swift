import ParleyCore
import Synchronization

/// `MessageLog` in memory, checking the holder against a `LeaseStore` and de-duplicating as
/// the Redis scripts do.
public final class MemoryMessageLog: MessageLog {
    private struct Channel {
        var entries: [MessageView] = []
        var lastSeq: Int64 = 0
        var dedupe: [String: (seq: Int64, id: String)] = [:]
        /// Trimmed messages' ids and when they were trimmed (forgotten two graces later).
        var trimmed: [String: (seq: Int64, id: String, at: Moment)] = [:]
    }
    private let leases: any LeaseStore
    private let clock: any ParleyClock
    private let channels = Mutex<[String: Channel]>([:])
    public let trimGrace: Duration

    public init(leases: any LeaseStore, trimGrace: Duration = .seconds(10), clock: any ParleyClock = SystemClock()) {
        self.leases = leases
        self.trimGrace = trimGrace
        self.clock = clock
    }

    public func append(_ message: MessageView, holder: String) async throws -> LogAppendOutcome {
        guard try await leases.holder(of: .channel(message.channelID)) == holder else { return .notOwner }
        let now = clock.now()
        return channels.withLock { channels in
            var channel = channels[message.channelID] ?? Channel()
            defer { channels[message.channelID] = channel }
            channel.trimmed = channel.trimmed.filter { now - $0.value.at < trimGrace * 2 }
            if let field = message.dedupeField {
                if let prior = channel.dedupe[field] { return .duplicate(seq: prior.seq, id: prior.id) }
                if let prior = channel.trimmed[field] { return .duplicate(seq: prior.seq, id: prior.id) }
            }
            guard message.seq > channel.lastSeq else { return .staleSeq }
            channel.entries.append(message)
            channel.lastSeq = message.seq
            if let field = message.dedupeField { channel.dedupe[field] = (message.seq, message.id) }
            return .appended
        }
    }

    public func entries(channel: String, after: Int64, through: Int64, limit: Int) async throws -> [MessageView] {
        channels.withLock { Array(($0[channel]?.entries ?? []).filter { $0.seq > after && $0.seq <= through }.prefix(limit)) }
    }

    public func entries(channel: String, before: Int64, limit: Int) async throws -> [MessageView] {
        channels.withLock { Array(($0[channel]?.entries ?? []).filter { $0.seq < before }.suffix(limit)) }
    }

    public func lastSeq(channel: String) async throws -> Int64? {
        channels.withLock { $0[channel]?.entries.last?.seq }
    }

    public func channelsWithEntries() async throws -> [String] {
        channels.withLock { $0.filter { !$0.value.entries.isEmpty }.map(\.key).sorted() }
    }

    public func trim(through: [String: Int64]) async throws {
        let now = clock.now()
        channels.withLock { channels in
            for (id, seq) in through {
                guard var channel = channels[id] else { continue }
                for entry in channel.entries where entry.seq <= seq {
                    if let field = entry.dedupeField, let known = channel.dedupe.removeValue(forKey: field) {
                        channel.trimmed[field] = (known.seq, known.id, now)
                    }
                }
                channel.entries.removeAll { $0.seq <= seq }
                channels[id] = channel
            }
        }
    }
}
