import Foundation
import ParleyCore

/// `Directory` in PostgreSQL.
public struct PostgresDirectory: Directory {
    public let client: PostgresClient

    public init(client: PostgresClient) { self.client = client }

    public func createUser(email: String, displayName: String, passwordHash: String) async throws -> UserRecord {
        let user = UserRecord(id: UUID().uuidString.lowercased(), email: email.lowercased(), displayName: displayName,
                              passwordHash: passwordHash)
        do {
            try await client.query("INSERT INTO users (id, email, display_name, password_hash) VALUES ($1::uuid, $2, $3, $4)",
                                   user.id, user.email, user.displayName, user.passwordHash)
        } catch let error as PostgresError where error.isUniqueViolation {
            throw DirectoryError.conflict("email \(user.email)")
        }
        return user
    }

    public func user(email: String) async throws -> UserRecord? {
        try await client.query("SELECT id::text, email, display_name, password_hash FROM users WHERE email = $1", email.lowercased())
            .first.map(Self.user)
    }

    public func user(id: String) async throws -> UserRecord? {
        guard UUID(uuidString: id) != nil else { return nil }
        return try await client.query("SELECT id::text, email, display_name, password_hash FROM users WHERE id = $1::uuid", id)
            .first.map(Self.user)
    }

    public func createWorkspace(name: String, slug: String, owner: String) async throws -> WorkspaceRecord {
        let workspace = WorkspaceRecord(id: UUID().uuidString.lowercased(), name: name, slug: slug)
        do {
            try await client.transaction { transaction in
                try await transaction.query("INSERT INTO workspaces (id, name, slug, created_by) VALUES ($1::uuid, $2, $3, $4::uuid)",
                                            workspace.id, name, slug, owner)
                try await transaction.query(
                    "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ($1::uuid, $2::uuid, 'owner')", workspace.id, owner)
            }
        } catch let error as PostgresError where error.isUniqueViolation {
            throw DirectoryError.conflict("workspace slug \(slug)")
        }
        return workspace
    }

    public func addWorkspaceMember(workspace: String, user: String) async throws {
        try await client.query("""
            INSERT INTO workspace_members (workspace_id, user_id) VALUES ($1::uuid, $2::uuid) ON CONFLICT DO NOTHING
            """, workspace, user)
    }

    public func isWorkspaceMember(workspace: String, user: String) async throws -> Bool {
        guard UUID(uuidString: workspace) != nil, UUID(uuidString: user) != nil else { return false }
        return try await !client.query("SELECT 1 FROM workspace_members WHERE workspace_id = $1::uuid AND user_id = $2::uuid",
                                       workspace, user).isEmpty
    }

    public func workspaceRole(workspace: String, user: String) async throws -> String? {
        guard UUID(uuidString: workspace) != nil, UUID(uuidString: user) != nil else { return nil }
        return try await client.query("SELECT role FROM workspace_members WHERE workspace_id = $1::uuid AND user_id = $2::uuid",
                                      workspace, user).first?.decode(String.self, at: 0)
    }

    public func createChannel(workspace: String, name: String, kind: ChannelRecord.Kind, creator: String) async throws -> ChannelRecord {
        guard try await isWorkspaceMember(workspace: workspace, user: creator) else {
            throw DirectoryError.forbidden("not a member of workspace \(workspace)")
        }
        let channel = ChannelRecord(id: UUID().uuidString.lowercased(), workspaceID: workspace, name: name, kind: kind)
        do {
            try await client.transaction { transaction in
                try await transaction.query("""
                    INSERT INTO channels (id, workspace_id, name, kind, created_by) VALUES ($1::uuid, $2::uuid, $3, $4, $5::uuid)
                    """, channel.id, workspace, name, kind.rawValue, creator)
                try await transaction.query("INSERT INTO channel_members (channel_id, user_id) VALUES ($1::uuid, $2::uuid)",
                                            channel.id, creator)
            }
        } catch let error as PostgresError where error.isUniqueViolation {
            throw DirectoryError.conflict("channel name \(name)")
        }
        return channel
    }

    public func channel(id: String) async throws -> ChannelRecord? {
        guard UUID(uuidString: id) != nil else { return nil }
        return try await client.query("SELECT id::text, workspace_id::text, name, kind FROM channels WHERE id = $1::uuid", id)
            .first.map(Self.channel)
    }

    public func channels(workspace: String, visibleTo user: String) async throws -> [ChannelRecord] {
        guard UUID(uuidString: workspace) != nil, UUID(uuidString: user) != nil else { return [] }
        return try await client.query("""
            SELECT id::text, workspace_id::text, name, kind FROM channels c
            WHERE workspace_id = $1::uuid
              AND (kind = 'public' OR EXISTS (SELECT 1 FROM channel_members m WHERE m.channel_id = c.id AND m.user_id = $2::uuid))
            ORDER BY name
            """, workspace, user).map(Self.channel)
    }

    public func joinChannel(_ channel: String, user: String) async throws {
        guard let record = try await self.channel(id: channel) else { throw DirectoryError.notFound("channel \(channel)") }
        guard try await isWorkspaceMember(workspace: record.workspaceID, user: user) else {
            throw DirectoryError.forbidden("not a member of the channel's workspace")
        }
        guard record.kind == .public else { throw DirectoryError.forbidden("channel \(record.name) is \(record.kind.rawValue)") }
        try await client.query("INSERT INTO channel_members (channel_id, user_id) VALUES ($1::uuid, $2::uuid) ON CONFLICT DO NOTHING",
                               channel, user)
    }

    public func leaveChannel(_ channel: String, user: String) async throws {
        guard UUID(uuidString: channel) != nil, UUID(uuidString: user) != nil else { return }
        try await client.query("DELETE FROM channel_members WHERE channel_id = $1::uuid AND user_id = $2::uuid", channel, user)
    }

    public func channelMembers(_ channel: String) async throws -> Set<String> {
        guard UUID(uuidString: channel) != nil else { return [] }
        return Set(try await client.query("SELECT user_id::text FROM channel_members WHERE channel_id = $1::uuid", channel)
            .map { try $0.decode(String.self, at: 0) })
    }

    public func isChannelMember(_ channel: String, user: String) async throws -> Bool {
        guard UUID(uuidString: channel) != nil, UUID(uuidString: user) != nil else { return false }
        return !(try await client.query("SELECT 1 FROM channel_members WHERE channel_id = $1::uuid AND user_id = $2::uuid",
                                        channel, user)).isEmpty
    }

    public func lastRead(_ channel: String, user: String) async throws -> Int64 {
        guard UUID(uuidString: channel) != nil, UUID(uuidString: user) != nil else { return 0 }
        return try await client.query("SELECT last_read_seq FROM read_receipts WHERE user_id = $1::uuid AND channel_id = $2::uuid",
                               user, channel).first?.decode(Int64.self, at: 0) ?? 0
    }

    static func user(_ row: PostgresRow) throws -> UserRecord {
        UserRecord(id: try row.decode(at: 0), email: try row.decode(at: 1), displayName: try row.decode(at: 2),
                   passwordHash: try row.decode(at: 3))
    }

    static func channel(_ row: PostgresRow) throws -> ChannelRecord {
        let kind: String = try row.decode(at: 3)
        return ChannelRecord(id: try row.decode(at: 0), workspaceID: try row.decode(at: 1), name: try row.decode(at: 2),
                             kind: ChannelRecord.Kind(rawValue: kind) ?? .public)
    }
}
