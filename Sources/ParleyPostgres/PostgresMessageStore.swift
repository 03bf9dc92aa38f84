import Foundation
import ParleyCore

/// `MessageStore` in PostgreSQL: batches go in as one multi-row `INSERT … ON CONFLICT DO
/// NOTHING`, so replaying a batch (after a crash, or from the log) stores nothing twice.
public struct PostgresMessageStore: MessageStore {
    public let client: PostgresClient

    public init(client: PostgresClient) { self.client = client }

    static let columns = "id, channel_id, seq, user_id, body, thread_root_id, client_msg_id, created_at, edited_at, deleted_at"
    static let selectColumns = """
        id::text, channel_id::text, seq, user_id::text, body, thread_root_id::text, client_msg_id,
        (extract(epoch FROM created_at) * 1000)::bigint, (extract(epoch FROM edited_at) * 1000)::bigint,
        (extract(epoch FROM deleted_at) * 1000)::bigint
        """

    public func insert(_ messages: [MessageView]) async throws -> Int {
        try await write(messages, onConflict: "DO NOTHING")
    }

    public func upsert(_ message: MessageView) async throws {
        _ = try await write([message], onConflict: """
            (channel_id, seq) DO UPDATE SET body = excluded.body, edited_at = excluded.edited_at, deleted_at = excluded.deleted_at
            """)
    }

    public func message(channel: String, id: String) async throws -> MessageView? {
        guard UUID(uuidString: id) != nil, UUID(uuidString: channel) != nil else { return nil }
        return try await client.query("SELECT \(Self.selectColumns) FROM messages WHERE channel_id = $1::uuid AND id = $2::uuid",
                                      channel, id).first.map(Self.message)
    }

    public func react(messageID: String, user: String, emoji: String, present: Bool) async throws -> [String: [String]] {
        try await client.transaction { transaction in
            if present {
                try await transaction.query("""
                    INSERT INTO reactions (message_id, user_id, emoji) VALUES ($1::uuid, $2::uuid, $3) ON CONFLICT DO NOTHING
                    """, messageID, user, emoji)
            } else {
                try await transaction.query("DELETE FROM reactions WHERE message_id = $1::uuid AND user_id = $2::uuid AND emoji = $3",
                                            messageID, user, emoji)
            }
            let rows = try await transaction.query("""
                SELECT emoji, user_id::text FROM reactions WHERE message_id = $1::uuid ORDER BY emoji, user_id
                """, messageID)
            var reactions: [String: [String]] = [:]
            for row in rows { reactions[try row.decode(String.self, at: 0), default: []].append(try row.decode(at: 1)) }
            return reactions
        }
    }

    private func write(_ messages: [MessageView], onConflict: String) async throws -> Int {
        guard !messages.isEmpty else { return 0 }
        var parameters: [any PostgresEncodable] = []
        var rows: [String] = []
        for message in messages {
            let base = parameters.count
            rows.append("($\(base + 1)::uuid, $\(base + 2)::uuid, $\(base + 3), $\(base + 4)::uuid, $\(base + 5), $\(base + 6)::uuid, "
                        + "$\(base + 7), to_timestamp($\(base + 8)::bigint / 1000.0), to_timestamp($\(base + 9)::bigint / 1000.0), "
                        + "to_timestamp($\(base + 10)::bigint / 1000.0))")
            parameters += [message.id, message.channelID, message.seq, message.userID, message.body, message.threadRootID,
                           message.clientMessageID, message.createdAt, message.editedAt, message.deletedAt]
        }
        let result = try await client.query(
            "INSERT INTO messages (\(Self.columns)) VALUES \(rows.joined(separator: ", ")) ON CONFLICT \(onConflict)", parameters)
        return result.affectedRows
    }

    public func messages(channel: String, seqs range: ClosedRange<Int64>, limit: Int) async throws -> [MessageView] {
        try await client.query("""
            SELECT \(Self.selectColumns) FROM messages
            WHERE channel_id = $1::uuid AND seq BETWEEN $2 AND $3 ORDER BY seq LIMIT $4
            """, channel, range.lowerBound, range.upperBound, limit).map(Self.message)
    }

    public func messages(channel: String, before: Int64, limit: Int) async throws -> [MessageView] {
        try await client.query("""
            SELECT * FROM (SELECT \(Self.selectColumns), seq AS order_seq FROM messages
                           WHERE channel_id = $1::uuid AND seq < $2 ORDER BY seq DESC LIMIT $3) newest
            ORDER BY order_seq
            """, channel, before, limit).map(Self.message)
    }

    public func lastSeq(channel: String) async throws -> Int64 {
        try await client.query("SELECT coalesce(max(seq), 0) FROM messages WHERE channel_id = $1::uuid", channel)[0]
            .decode(Int64.self, at: 0)
    }

    static func message(_ row: PostgresRow) throws -> MessageView {
        MessageView(id: try row.decode(at: 0), channelID: try row.decode(at: 1), seq: try row.decode(at: 2),
                    userID: try row.decode(at: 3), body: try row.decode(at: 4), threadRootID: try row.decode(at: 5),
                    clientMessageID: try row.decode(at: 6), createdAt: try row.decode(at: 7), editedAt: try row.decode(at: 8),
                    deletedAt: try row.decode(at: 9))
    }
}
