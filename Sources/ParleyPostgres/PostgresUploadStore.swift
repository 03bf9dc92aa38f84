import Foundation
import ParleyCore

/// `UploadStore` in PostgreSQL (`uploads`, `message_attachments`, and the upload's job in `jobs`).
public struct PostgresUploadStore: UploadStore {
    public let client: PostgresClient

    public init(client: PostgresClient) { self.client = client }

    static let columns = columns(nil)

    /// The columns `record` reads, of table alias `table` if given.
    static func columns(_ table: String?) -> String {
        let t = table.map { "\($0)." } ?? ""
        return """
            \(t)id::text, \(t)workspace_id::text, \(t)user_id::text, \(t)filename, \(t)content_type, \(t)size_bytes,
            coalesce(\(t)sha256, ''), \(t)status, \(t)priority, \(t)thumbnail_path IS NOT NULL, \(t)error, \(t)threat
            """
    }

    static func record(_ row: PostgresRow, from offset: Int = 0) throws -> UploadRecord {
        UploadRecord(id: try row.decode(at: offset), workspaceID: try row.decode(at: offset + 1), userID: try row.decode(at: offset + 2),
                     filename: try row.decode(at: offset + 3), contentType: try row.decode(at: offset + 4), size: try row.decode(at: offset + 5),
                     sha256: try row.decode(at: offset + 6), status: UploadStatus(rawValue: try row.decode(at: offset + 7)) ?? .failed,
                     priority: try row.decode(at: offset + 8), hasThumbnail: try row.decode(at: offset + 9),
                     error: try row.decode(at: offset + 10), threat: try row.decode(at: offset + 11))
    }

    public func create(_ upload: UploadRecord, job: NewJob) async throws {
        try await client.transaction { transaction in
            let id = try await transaction.query("""
                INSERT INTO jobs (queue, kind, payload, priority, max_attempts) VALUES ($1, $2, $3::jsonb, $4, $5) RETURNING id
                """, job.queue, job.kind, job.payload.jsonText, job.priority, job.maximumAttempts)[0].decode(Int64.self, at: 0)
            try await transaction.query("""
                INSERT INTO uploads (id, workspace_id, user_id, filename, content_type, size_bytes, sha256, status, priority, storage_path, job_id)
                VALUES ($1::uuid, $2::uuid, $3::uuid, $4, $5, $6, $7, 'queued', $8, $7, $9)
                """, upload.id, upload.workspaceID, upload.userID, upload.filename, upload.contentType, upload.size, upload.sha256,
                                        upload.priority, id)
        }
    }

    public func upload(id: String) async throws -> UploadRecord? {
        guard UUID(uuidString: id) != nil else { return nil }
        return try await client.query("SELECT \(Self.columns) FROM uploads WHERE id = $1::uuid", id).first.map { try Self.record($0) }
    }

    public func setStatus(_ id: String, _ status: UploadStatus, error: String?, threat: String?, thumbnail: Bool) async throws -> Bool {
        !(try await client.query("""
            UPDATE uploads SET status = $2, error = $3, threat = $4,
                               thumbnail_path = CASE WHEN $5 THEN id::text ELSE thumbnail_path END,
                               started_at = CASE WHEN $2 = 'scanning' THEN coalesce(started_at, now()) ELSE started_at END,
                               updated_at = now()
            WHERE id = $1::uuid AND status NOT IN ('ready', 'infected', 'failed', 'cancelled') RETURNING 1
            """, id, status.rawValue, error, threat, thumbnail)).isEmpty
    }

    public func cancel(_ id: String) async throws -> Int64? {
        guard UUID(uuidString: id) != nil else { return nil }
        let rows = try await client.query("""
            UPDATE uploads SET status = 'cancelled', updated_at = now()
            WHERE id = $1::uuid AND status NOT IN ('ready', 'infected', 'failed', 'cancelled') RETURNING job_id
            """, id)
        guard let row = rows.first else { return nil }
        return try row.decode(Int64?.self, at: 0) ?? 0
    }

    public func attach(_ uploads: [String], message messageID: String, channel: String) async throws {
        guard !uploads.isEmpty else { return }
        let list = uploads.indices.map { "($1::uuid, $2::uuid, $\($0 + 3)::uuid)" }.joined(separator: ", ")
        try await client.query("""
            INSERT INTO message_attachments (message_id, channel_id, upload_id) VALUES \(list) ON CONFLICT DO NOTHING
            """, [messageID, channel] + uploads)
    }

    public func canRead(_ id: String, user: String) async throws -> Bool {
        guard UUID(uuidString: id) != nil, UUID(uuidString: user) != nil else { return false }
        return !(try await client.query("""
            SELECT 1 FROM uploads WHERE id = $1::uuid AND user_id = $2::uuid
            UNION ALL
            SELECT 1 FROM message_attachments a JOIN channel_members m ON m.channel_id = a.channel_id
            WHERE a.upload_id = $1::uuid AND m.user_id = $2::uuid
            LIMIT 1
            """, id, user)).isEmpty
    }

    public func attachments(channel: String, limit: Int) async throws -> [(message: String, upload: UploadRecord)] {
        try await client.query("""
            SELECT a.message_id::text, \(Self.columns("u"))
            FROM message_attachments a JOIN uploads u ON u.id = a.upload_id
            WHERE a.channel_id = $1::uuid ORDER BY a.created_at DESC LIMIT $2
            """, channel, limit).map { (try $0.decode(String.self, at: 0), try Self.record($0, from: 1)) }
    }

    public func statuses(sha256: String) async throws -> [UploadStatus] {
        try await client.query("SELECT status FROM uploads WHERE sha256 = $1", sha256).compactMap {
            UploadStatus(rawValue: try $0.decode(String.self, at: 0))
        }
    }
}
