/// Where messages live for good: PostgreSQL, or memory in tests (DESIGN §5).
///
/// Every write carries the writer's fence (the counter its channel lease was taken with):
/// `claim` records the newest fence as the channel's `owner_fence`, and a write whose fence is
/// older is refused in the same statement, so a stale owner can change nothing.
public protocol MessageStore: Sendable {
    /// Records `fence` as the channel's owner fence; false when the channel is unknown or a
    /// newer fence owns it already.
    func claim(channel: String, fence: Int64) async throws -> Bool
    /// Inserts `messages` in one statement, ignoring rows already stored; a channel's rows go
    /// in only while `fences[channel]` is its owner fence. Returns the channels refused.
    func insert(_ messages: [MessageView], fences: [String: Int64]) async throws -> Set<String>
    /// Messages of `channel` with `seq` in `range`, oldest first, at most `limit`.
    func messages(channel: String, seqs range: ClosedRange<Int64>, limit: Int) async throws -> [MessageView]
    /// The newest `limit` messages with `seq < before`, oldest first.
    func messages(channel: String, before: Int64, limit: Int) async throws -> [MessageView]
    /// The highest stored `seq` of `channel` (0 when none). Rows go in in `seq` order, so
    /// everything below it is stored too.
    func lastSeq(channel: String) async throws -> Int64
    /// For each key, the sender's stored message with that `client_msg_id`, if any: one statement.
    func find(_ keys: [ClientMessageKey]) async throws -> [ClientMessageKey: MessageView]
    /// Replaces a stored message's body and edit / delete times; throws `StoreError.staleFence`
    /// when `fence` no longer owns the channel, false when no such message is stored.
    func update(_ message: MessageView, fence: Int64) async throws -> Bool
    /// The stored message `id` of `channel`.
    func message(channel: String, id: String) async throws -> MessageView?
    /// Adds (`present`) or removes `user`'s `emoji` on a stored message; returns who reacted
    /// with what afterwards: emoji → user ids, sorted.
    func react(channel: String, messageID: String, user: String, emoji: String, present: Bool,
               fence: Int64) async throws -> [String: [String]]
    /// Records that `user` read `channel` up to `seq` (never backwards); returns the recorded value.
    func markRead(channel: String, user: String, seq: Int64, fence: Int64) async throws -> Int64
}

/// A message's de-duplication key: its channel, its sender and the sender's `client_msg_id`.
public struct ClientMessageKey: Sendable, Hashable {
    public var channel: String
    public var user: String
    public var clientMessageID: String

    public init(channel: String, user: String, clientMessageID: String) {
        self.channel = channel
        self.user = user
        self.clientMessageID = clientMessageID
    }
}

/// A store write refused.
public enum StoreError: Error, Sendable, Equatable {
    /// The writer's fence is older than the channel's owner fence: another node owns it now.
    case staleFence
}
