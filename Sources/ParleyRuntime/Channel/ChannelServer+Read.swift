import ParleyCore

/// The owner's reads go through the same `ChannelHistory` as the edge's, bounded by the
/// current `seq` and answered from the recent cache where it covers them.
extension ChannelServer {
    var reader: ChannelHistory { ChannelHistory(channel: channelID, log: log, store: store) }

    /// Up to `limit` messages after `seq`, oldest first.
    public func messages(after seq: Int64, limit: Int) async throws -> [MessageView] {
        try await reader.messages(after: seq, upper: currentSeq, limit: limit, recent: recent)
    }

    /// The `limit` messages before `seq`, oldest first (history pages).
    public func messages(before seq: Int64, limit: Int) async throws -> [MessageView] {
        try await reader.messages(before: seq, upper: currentSeq, limit: limit, recent: recent)
    }

    public func history(before: Int64?, after: Int64?, limit: Int64) async throws -> [MessageView] {
        try await reader.history(before: before, after: after, limit: limit, upper: currentSeq, recent: recent)
    }
}
