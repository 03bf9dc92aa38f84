/// The answer to an append to the durable log.
public enum LogAppendOutcome: Sendable, Hashable {
    /// Written: the message is durable and may be acknowledged.
    case appended
    /// The same `client_msg_id` was accepted before, as `seq` / `id`: acknowledge that.
    case duplicate(seq: Int64, id: String)
    /// The caller does not hold the channel's lease: it must stop (fencing at the log).
    case notOwner
    /// `seq` is not above the last one in the log: the caller's counter is stale.
    case staleSeq
}

/// The write-ahead log of accepted messages not yet in PostgreSQL (DESIGN §2, §4):
/// per channel, ordered by `seq`, appended before the acknowledgement, trimmed after the
/// store has the messages.
public protocol MessageLog: Sendable {
    /// Appends `message` if `holder` holds the channel's lease, the `client_msg_id` is new,
    /// and `seq` is above the last: one round trip.
    func append(_ message: MessageView, holder: String) async throws -> LogAppendOutcome
    /// Entries with `seq > after`, oldest first, at most `limit`.
    func entries(channel: String, after: Int64, limit: Int) async throws -> [MessageView]
    /// The highest `seq` in the log, or nil when it is empty.
    func lastSeq(channel: String) async throws -> Int64?
    /// Drops, in each channel, the entries with `seq` up to the one given (they are in the
    /// store): one round trip for a whole batch's channels.
    func trim(through: [String: Int64]) async throws
}
