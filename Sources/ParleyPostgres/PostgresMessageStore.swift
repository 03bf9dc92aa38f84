import Foundation
import ParleyCore

/// `MessageStore` in PostgreSQL. Batches go in as one multi-row `INSERT … ON CONFLICT DO
/// NOTHING`, so replaying a batch (after a crash, or from the log) stores nothing twice; every
/// write checks the writer's fence against `channels.owner_fence` in the same statement (the
/// row is locked `FOR SHARE`, so a concurrent claim is waited for, not raced). The same
/// statement queues a `message` notification job for each new message that may notify
/// someone (a mention, a thread reply, a direct message): a stored message's notifications
/// are never lost, and a replayed one's never queued twice; and the message's attachments are
/// linked (`message_attachments`), so the files are readable by the channel's members.
public struct PostgresMessageStore: MessageStore {
    public let client: PostgresClient

    public init(client: PostgresClient) { self.client = client }

    static let columns = "id, channel_id, seq, user_id, body, thread_root_id, client_msg_id, created_at, edited_at, deleted_at, attachments"
    static let selectColumns = selectColumns(nil)
    /// How many columns `selectColumns` names (what a query selects after them starts there).
    static let selectedColumnCount = 11

    /// The columns `message(_:from:)` reads, of table alias `table` if given.
    static func selectColumns(_ table: String?) -> String {
        let t = table.map { "\($0)." } ?? ""
        return """
            \(t)id::text, \(t)channel_id::text, \(t)seq, \(t)user_id::text, \(t)body, \(t)thread_root_id::text, \(t)client_msg_id,
            (extract(epoch FROM \(t)created_at) * 1000)::bigint, (extract(epoch FROM \(t)edited_at) * 1000)::bigint,
            (extract(epoch FROM \(t)deleted_at) * 1000)::bigint, \(t)attachments::text
            """
    }

    public func claim(channel: String, fence: Int64) async throws -> Bool {
        guard UUID(uuidString: channel) != nil else { return false }
        return !(try await client.query("UPDATE channels SET owner_fence = $2 WHERE id = $1::uuid AND owner_fence < $2 RETURNING 1",
                                        channel, fence)).isEmpty
    }

    public func insert(_ messages: [MessageView], fences: [String: Int64]) async throws -> Set<String> {
        guard !messages.isEmpty else { return [] }
        var parameters: [any PostgresEncodable] = []
        var fenceRows: [String] = []
        for (channel, fence) in fences {
            fenceRows.append("($\(parameters.count + 1)::uuid, $\(parameters.count + 2)::bigint)")
            parameters += [channel, fence]
        }
        var rows: [String] = []
        for message in messages {
            let base = parameters.count
            rows.append("($\(base + 1)::uuid, $\(base + 2)::uuid, $\(base + 3)::bigint, $\(base + 4)::uuid, $\(base + 5)::text, "
                        + "$\(base + 6)::uuid, $\(base + 7)::text, to_timestamp($\(base + 8)::bigint / 1000.0), "
                        + "to_timestamp($\(base + 9)::bigint / 1000.0), to_timestamp($\(base + 10)::bigint / 1000.0), $\(base + 11)::jsonb)")
            let attachments: String? = message.attachments.isEmpty ? nil : JSONValue.array(message.attachments.map { .string($0) }).jsonText
            parameters += [message.id, message.channelID, message.seq, message.userID, message.body, message.threadRootID,
                           message.clientMessageID, message.createdAt, message.editedAt, message.deletedAt, attachments]
        }
        let refused = try await client.query("""
            WITH fence (channel_id, fence) AS (VALUES \(fenceRows.joined(separator: ", "))),
            owned AS (SELECT c.id FROM channels c JOIN fence f ON c.id = f.channel_id WHERE c.owner_fence <= f.fence FOR SHARE OF c),
            written AS (
                INSERT INTO messages (\(Self.columns))
                SELECT * FROM (VALUES \(rows.joined(separator: ", "))) AS v (\(Self.columns))
                WHERE v.channel_id IN (SELECT id FROM owned)
                ON CONFLICT DO NOTHING RETURNING id, channel_id, body, thread_root_id, attachments),
            attached AS (
                INSERT INTO message_attachments (message_id, channel_id, upload_id)
                SELECT w.id, w.channel_id, u.id FROM written w
                CROSS JOIN LATERAL jsonb_array_elements_text(coalesce(w.attachments, '[]'::jsonb)) AS a (upload)
                JOIN uploads u ON u.id::text = a.upload
                ON CONFLICT DO NOTHING RETURNING 1),
            notify AS (
                INSERT INTO jobs (queue, kind, payload, priority)
                SELECT 'notifications', 'message', jsonb_build_object('message_id', w.id::text), 5
                FROM written w JOIN channels c ON c.id = w.channel_id
                WHERE strpos(w.body, '@') > 0 OR w.thread_root_id IS NOT NULL OR c.kind = 'direct'
                RETURNING 1)
            SELECT channel_id::text FROM fence WHERE channel_id NOT IN (SELECT id FROM owned)
            """, parameters)
        return Set(try refused.map { try $0.decode(String.self, at: 0) })
    }

    public func find(_ keys: [ClientMessageKey]) async throws -> [ClientMessageKey: MessageView] {
        let valid = keys.filter { UUID(uuidString: $0.channel) != nil && UUID(uuidString: $0.user) != nil }
        guard !valid.isEmpty else { return [:] }
        var parameters: [any PostgresEncodable] = []
        var rows: [String] = []
        for key in valid {
            rows.append("($\(parameters.count + 1)::uuid, $\(parameters.count + 2)::uuid, $\(parameters.count + 3)::text)")
            parameters += [key.channel, key.user, key.clientMessageID]
        }
        let answer = try await client.query("""
            SELECT \(Self.selectColumns("m")) FROM messages m
            JOIN (VALUES \(rows.joined(separator: ", "))) AS k (channel_id, user_id, client_msg_id)
              ON m.channel_id = k.channel_id AND m.user_id = k.user_id AND m.client_msg_id = k.client_msg_id
            """, parameters)
        var matches: [ClientMessageKey: MessageView] = [:]
        for row in answer {
            let message = try Self.message(row)
            if let clientMessageID = message.clientMessageID {
                matches[ClientMessageKey(channel: message.channelID, user: message.userID, clientMessageID: clientMessageID)] = message
            }
        }
        return matches
    }

    public func update(_ message: MessageView, fence: Int64) async throws -> Bool {
        let rows = try await client.query("""
            WITH owner AS (SELECT owner_fence <= $6 AS current FROM channels WHERE id = $1::uuid FOR SHARE),
            changed AS (
                UPDATE messages SET body = $3, edited_at = to_timestamp($4::bigint / 1000.0), deleted_at = to_timestamp($5::bigint / 1000.0)
                WHERE channel_id = $1::uuid AND id = $2::uuid AND (SELECT current FROM owner) RETURNING 1)
            SELECT (SELECT current FROM owner), (SELECT count(*) FROM changed)
            """, message.channelID, message.id, message.body, message.editedAt, message.deletedAt, fence)
        guard try rows.first?.decode(Bool?.self, at: 0) == true else { throw StoreError.staleFence }
        return try rows[0].decode(Int64.self, at: 1) > 0
    }

    public func message(channel: String, id: String) async throws -> MessageView? {
        guard UUID(uuidString: id) != nil, UUID(uuidString: channel) != nil else { return nil }
        return try await client.query("SELECT \(Self.selectColumns) FROM messages WHERE channel_id = $1::uuid AND id = $2::uuid",
                                      channel, id).first.map { try Self.message($0) }
    }

    public func react(channel: String, messageID: String, user: String, emoji: String, present: Bool,
                      fence: Int64) async throws -> [String: [String]] {
        try await client.transaction { transaction in
            let owner = try await transaction.query("SELECT owner_fence <= $2 FROM channels WHERE id = $1::uuid FOR SHARE", channel, fence)
            guard try owner.first?.decode(Bool.self, at: 0) == true else { throw StoreError.staleFence }
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

    public func markRead(channel: String, user: String, seq: Int64, fence: Int64) async throws -> Int64 {
        let rows = try await client.query("""
            INSERT INTO read_receipts (user_id, channel_id, last_read_seq)
            SELECT $1::uuid, $2::uuid, $3 FROM channels WHERE id = $2::uuid AND owner_fence <= $4 FOR SHARE
            ON CONFLICT (user_id, channel_id) DO UPDATE
              SET last_read_seq = greatest(read_receipts.last_read_seq, excluded.last_read_seq), updated_at = now()
            RETURNING last_read_seq
            """, user, channel, seq, fence)
        guard let row = rows.first else { throw StoreError.staleFence }
        return try row.decode(Int64.self, at: 0)
    }

    public func messages(channel: String, seqs range: ClosedRange<Int64>, limit: Int) async throws -> [MessageView] {
        guard UUID(uuidString: channel) != nil else { return [] }
        return try await client.query("""
            SELECT \(Self.selectColumns) FROM messages
            WHERE channel_id = $1::uuid AND seq BETWEEN $2 AND $3 ORDER BY seq LIMIT $4
            """, channel, range.lowerBound, range.upperBound, limit).map { try Self.message($0) }
    }

    public func messages(channel: String, before: Int64, limit: Int) async throws -> [MessageView] {
        guard UUID(uuidString: channel) != nil else { return [] }
        return try await client.query("""
            SELECT * FROM (SELECT \(Self.selectColumns), seq AS order_seq FROM messages
                           WHERE channel_id = $1::uuid AND seq < $2 ORDER BY seq DESC LIMIT $3) newest
            ORDER BY order_seq
            """, channel, before, limit).map { try Self.message($0) }
    }

    public func lastSeq(channel: String) async throws -> Int64 {
        guard UUID(uuidString: channel) != nil else { return 0 }
        return try await client.query("SELECT coalesce(max(seq), 0) FROM messages WHERE channel_id = $1::uuid", channel)[0]
            .decode(Int64.self, at: 0)
    }

    /// A message from the row's columns `offset…offset+10` (`selectColumns`' order).
    static func message(_ row: PostgresRow, from offset: Int = 0) throws -> MessageView {
        let attachments = try row.decode(String?.self, at: offset + 10)
            .flatMap { try? JSONParser.parse($0).arrayValue }?.compactMap(\.stringValue) ?? []
        return MessageView(id: try row.decode(at: offset), channelID: try row.decode(at: offset + 1), seq: try row.decode(at: offset + 2),
                           userID: try row.decode(at: offset + 3), body: try row.decode(at: offset + 4),
                           threadRootID: try row.decode(at: offset + 5), clientMessageID: try row.decode(at: offset + 6),
                           createdAt: try row.decode(at: offset + 7), editedAt: try row.decode(at: offset + 8),
                           deletedAt: try row.decode(at: offset + 9), attachments: attachments)
    }
}
