/// Where messages live for good: PostgreSQL, or memory in tests (DESIGN §5).
public protocol MessageStore: Sendable {
    /// Inserts `messages` in one statement, ignoring any `(channel_id, seq)` already stored;
    /// returns how many rows were new.
    func insert(_ messages: [MessageView]) async throws -> Int
    /// Messages of `channel` with `seq` in `range`, oldest first, at most `limit`.
    func messages(channel: String, seqs range: ClosedRange<Int64>, limit: Int) async throws -> [MessageView]
    /// The newest `limit` messages with `seq < before`, oldest first.
    func messages(channel: String, before: Int64, limit: Int) async throws -> [MessageView]
    /// The highest stored `seq` of `channel` (0 when none).
    func lastSeq(channel: String) async throws -> Int64
    /// Writes `message` whether or not it is stored yet (edits and deletes): body and edit /
    /// delete times replace the stored ones.
    func upsert(_ message: MessageView) async throws
    /// The stored message `id` of `channel`.
    func message(channel: String, id: String) async throws -> MessageView?
    /// Adds (`present`) or removes `user`'s `emoji` on a stored message; returns who reacted
    /// with what, afterwards: emoji → user ids, sorted.
    func react(messageID: String, user: String, emoji: String, present: Bool) async throws -> [String: [String]]
}
