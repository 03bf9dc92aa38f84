/// The answer to an append to the durable log.
public enum LogAppendOutcome: Sendable, Hashable {
    /// Written: the message is durable and may be acknowledged.
    case appended
    /// The sender's `client_msg_id` was accepted before, as `seq` / `id`: acknowledge that.
    case duplicate(seq: Int64, id: String)
    /// The caller does not hold the channel's lease: it must stop (fencing at the log).
    case notOwner
    /// `seq` is not above the last one in the log: the caller's counter is stale.
    case staleSeq
}

/// The write-ahead log of accepted messages not yet in PostgreSQL (DESIGN §2, §4):
/// per channel, ordered by `seq`, appended before the acknowledgement, trimmed only through
/// what the store has.
///
/// De-duplication: a message's `(sender, client_msg_id)` is remembered while the message is
/// in the log and for at least `trimGrace` after it is trimmed; from then on the store answers
/// (its unique index). A caller that asked the store less than `trimGrace` before appending
/// therefore misses no earlier copy.
public protocol MessageLog: Sendable {
    /// How long a trimmed message's `client_msg_id` stays known to the log, at least.
    var trimGrace: Duration { get }
    /// Appends `message` if `holder` holds the channel's lease, the sender's `client_msg_id`
    /// is new, and `seq` is above the last: one round trip.
    func append(_ message: MessageView, holder: String) async throws -> LogAppendOutcome
    /// Entries with `after < seq <= through`, oldest first, at most `limit`.
    func entries(channel: String, after: Int64, through: Int64, limit: Int) async throws -> [MessageView]
    /// The newest `limit` entries with `seq < before`, oldest first.
    func entries(channel: String, before: Int64, limit: Int) async throws -> [MessageView]
    /// The highest `seq` in the log, or nil when it is empty.
    func lastSeq(channel: String) async throws -> Int64?
    /// Drops, in each channel, the entries with `seq` up to the one given (the store has every
    /// one of them) and forgets their `client_msg_id`s: one round trip for a batch's channels.
    func trim(through: [String: Int64]) async throws
    /// The channels whose log holds entries (the store may lack them): what a node recovers
    /// after a crash.
    func channelsWithEntries() async throws -> [String]
}

extension MessageLog {
    public func entries(channel: String, after: Int64, limit: Int) async throws -> [MessageView] {
        try await entries(channel: channel, after: after, through: .max, limit: limit)
    }
}
