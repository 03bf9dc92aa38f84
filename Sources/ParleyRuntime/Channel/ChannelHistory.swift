import DequeModule
import ParleyCore

/// The one read path for catch-up and history (DESIGN §2 step 8), usable on any node: the
/// owner reads through it, and so does the edge (the node a client is connected to), without
/// asking the owner.
///
/// Reads never go past `upper`, the highest `seq` the reader has seen published (a message
/// being appended is read only once it is), and read the log before the store: the log is
/// trimmed only after the store has the entries, so a flush between the two reads moves
/// messages into the store, which is read second, and nothing is skipped. The store's copy
/// wins where both have a message (it carries edits). A page is contiguous; where a message
/// is in neither, the read fails with `gap`, never silently.
public struct ChannelHistory: Sendable {
    public let channel: String
    let log: any MessageLog
    let store: any MessageStore

    public init(channel: String, log: any MessageLog, store: any MessageStore) {
        self.channel = channel
        self.log = log
        self.store = store
    }

    /// The highest `seq` accepted so far as the log and store tell (log first: a trim moves
    /// entries to the store before dropping them).
    public func lastSeq() async throws -> Int64 {
        let logged = try await backend { try await log.lastSeq(channel: channel) } ?? 0
        let stored = try await backend { try await store.lastSeq(channel: channel) }
        return max(logged, stored)
    }

    /// Up to `limit` messages after `seq` and through `upper`, oldest first; `recent` (oldest
    /// first) answers when it covers the range.
    public func messages(after seq: Int64, upper: Int64, limit: Int, recent: Deque<MessageView> = []) async throws -> [MessageView] {
        guard seq < upper, limit > 0 else { return [] }
        if let first = recent.first, first.seq <= seq + 1 {
            return Array(recent.lazy.filter { $0.seq > seq && $0.seq <= upper }.prefix(limit))
        }
        var page = try await backend { try await log.entries(channel: channel, after: seq, through: upper, limit: limit) }
        if page.first?.seq != seq + 1 {
            let stored = try await backend { try await store.messages(channel: channel, seqs: (seq + 1)...upper, limit: limit) }
            page = Self.merge(logged: page, stored: stored)
        }
        let run = Array(page.enumerated().prefix { $0.element.seq == seq + 1 + Int64($0.offset) }.map(\.element).prefix(limit))
        guard !run.isEmpty else { throw ChannelError.gap((seq + 1)...(page.first.map { $0.seq - 1 } ?? upper)) }
        return run
    }

    /// The `limit` messages before `seq` (and at most `upper`), oldest first (history pages).
    public func messages(before seq: Int64, upper: Int64, limit: Int, recent: Deque<MessageView> = []) async throws -> [MessageView] {
        let upper = min(seq - 1, upper)
        guard upper >= 1, limit > 0 else { return [] }
        let cached = recent.filter { $0.seq <= upper }
        if let first = cached.first, cached.last?.seq == upper, cached.count >= limit || first.seq == 1 {
            return Array(cached.suffix(limit))
        }
        var page = try await backend { try await log.entries(channel: channel, before: upper + 1, limit: limit) }
        let lowest = page.first?.seq ?? upper + 1
        if page.count < limit && lowest > 1 {
            let stored = try await backend { try await store.messages(channel: channel, before: lowest, limit: limit - page.count) }
            page = Self.merge(logged: page, stored: stored)
        }
        // Contiguous down from `upper`.
        var run: [MessageView] = []
        for message in page.reversed() {
            guard message.seq == upper - Int64(run.count) else { break }
            run.append(message)
        }
        guard !run.isEmpty else { throw ChannelError.gap((page.last.map { $0.seq + 1 } ?? 1)...upper) }
        return Array(run.reversed().suffix(limit))
    }

    /// A history page (`load_history`): after `after` (oldest first), before `before`, or the
    /// newest `limit` when neither is given.
    public func history(before: Int64?, after: Int64?, limit: Int64, upper: Int64,
                        recent: Deque<MessageView> = []) async throws -> [MessageView] {
        if let after { return try await messages(after: after, upper: upper, limit: Int(limit), recent: recent) }
        return try await messages(before: before ?? upper + 1, upper: upper, limit: Int(limit), recent: recent)
    }

    /// Whether message `id` belongs to the channel (store, then the log's newest entries).
    public func contains(messageID id: String) async throws -> Bool {
        if try await backend({ try await store.message(channel: channel, id: id) }) != nil { return true }
        let tail = try await backend { try await log.entries(channel: channel, before: .max, limit: 1000) }
        return tail.contains { $0.id == id }
    }

    /// Log and store entries by `seq`, oldest first; the store's copy wins.
    static func merge(logged: [MessageView], stored: [MessageView]) -> [MessageView] {
        var bySeq: [Int64: MessageView] = [:]
        for message in logged { bySeq[message.seq] = message }
        for message in stored { bySeq[message.seq] = message }
        return bySeq.values.sorted { $0.seq < $1.seq }
    }
}
