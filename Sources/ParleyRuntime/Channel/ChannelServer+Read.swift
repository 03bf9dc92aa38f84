import ParleyCore

/// The one read path for catch-up and history (DESIGN §2 step 8).
///
/// Reads never go past the channel's current `seq` (a message being appended is read only
/// once it is published), and read the log before the store: the log is trimmed only after
/// the store has the entries, so a flush between the two reads moves messages into the store,
/// which is read second, and nothing is skipped. The store's copy wins where both have a
/// message (it carries edits; an edit also trims the log through the message). A page is
/// contiguous; where a message is in neither, the read fails with `gap`, never silently.
extension ChannelServer {
    /// Up to `limit` messages after `seq`, oldest first.
    public func messages(after seq: Int64, limit: Int) async throws -> [MessageView] {
        let upper = currentSeq
        guard seq < upper, limit > 0 else { return [] }
        if let first = recent.first, first.seq <= seq + 1 {
            return Array(recent.lazy.filter { $0.seq > seq && $0.seq <= upper }.prefix(limit))
        }
        var page = try await backend { try await log.entries(channel: channelID, after: seq, through: upper, limit: limit) }
        if page.first?.seq != seq + 1 {
            let stored = try await backend { try await store.messages(channel: channelID, seqs: (seq + 1)...upper, limit: limit) }
            page = Self.merge(logged: page, stored: stored)
        }
        let run = Array(page.enumerated().prefix { $0.element.seq == seq + 1 + Int64($0.offset) }.map(\.element).prefix(limit))
        guard !run.isEmpty else { throw ChannelError.gap((seq + 1)...(page.first.map { $0.seq - 1 } ?? upper)) }
        return run
    }

    /// The `limit` messages before `seq`, oldest first (history pages).
    public func messages(before seq: Int64, limit: Int) async throws -> [MessageView] {
        let upper = min(seq - 1, currentSeq)
        guard upper >= 1, limit > 0 else { return [] }
        let cached = recent.filter { $0.seq <= upper }
        if let first = cached.first, cached.last?.seq == upper, cached.count >= limit || first.seq == 1 {
            return Array(cached.suffix(limit))
        }
        var page = try await backend { try await log.entries(channel: channelID, before: upper + 1, limit: limit) }
        let lowest = page.first?.seq ?? upper + 1
        if page.count < limit && lowest > 1 {
            let stored = try await backend { try await store.messages(channel: channelID, before: lowest, limit: limit - page.count) }
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
    public func history(before: Int64?, after: Int64?, limit: Int64) async throws -> [MessageView] {
        if let after { return try await messages(after: after, limit: Int(limit)) }
        return try await messages(before: before ?? currentSeq + 1, limit: Int(limit))
    }

    /// Log and store entries by `seq`, oldest first; the store's copy wins.
    static func merge(logged: [MessageView], stored: [MessageView]) -> [MessageView] {
        var bySeq: [Int64: MessageView] = [:]
        for message in logged { bySeq[message.seq] = message }
        for message in stored { bySeq[message.seq] = message }
        return bySeq.values.sorted { $0.seq < $1.seq }
    }
}
