public struct UserRecord: Sendable, Hashable {
    public var id: String
    public var email: String
    public var displayName: String
    public var passwordHash: String

    public init(id: String, email: String, displayName: String, passwordHash: String) {
        self.id = id
        self.email = email
        self.displayName = displayName
        self.passwordHash = passwordHash
    }

    /// What clients may see of a user.
    public var json: JSONValue { ["id": .string(id), "email": .string(email), "display_name": .string(displayName)] }
}

public struct WorkspaceRecord: Sendable, Hashable {
    public var id: String
    public var name: String
    public var slug: String

    public init(id: String, name: String, slug: String) {
        self.id = id
        self.name = name
        self.slug = slug
    }

    public var json: JSONValue { ["id": .string(id), "name": .string(name), "slug": .string(slug)] }
}

public struct ChannelRecord: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable { case `public`, `private`, direct }
    public var id: String
    public var workspaceID: String
    public var name: String
    public var kind: Kind

    public init(id: String, workspaceID: String, name: String, kind: Kind) {
        self.id = id
        self.workspaceID = workspaceID
        self.name = name
        self.kind = kind
    }

    public var json: JSONValue {
        ["id": .string(id), "workspace_id": .string(workspaceID), "name": .string(name), "kind": .string(kind.rawValue)]
    }
}

/// Why the directory refused a change; `code` is the stable API error code.
public enum DirectoryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A unique name or email is taken.
    case conflict(String)
    case notFound(String)
    /// The user may not do this (not a member of the workspace, a private channel, …).
    case forbidden(String)

    public var code: String {
        switch self {
        case .conflict: return "conflict"
        case .notFound: return "not_found"
        case .forbidden: return "forbidden"
        }
    }

    public var description: String {
        switch self {
        case .conflict(let what): return "\(what) is already taken"
        case .notFound(let what): return "\(what) not found"
        case .forbidden(let why): return why
        }
    }
}

/// Users, workspaces, channels and who belongs where (DESIGN §5).
public protocol Directory: Sendable {
    func createUser(email: String, displayName: String, passwordHash: String) async throws -> UserRecord
    func user(email: String) async throws -> UserRecord?
    func user(id: String) async throws -> UserRecord?
    /// Creates the workspace with `owner` as its first member.
    func createWorkspace(name: String, slug: String, owner: String) async throws -> WorkspaceRecord
    func addWorkspaceMember(workspace: String, user: String) async throws
    func isWorkspaceMember(workspace: String, user: String) async throws -> Bool
    /// `user`'s role in `workspace` (`owner`, `admin`, `member`), nil when not a member.
    func workspaceRole(workspace: String, user: String) async throws -> String?
    /// Creates the channel with `creator` (a workspace member) as its first member.
    func createChannel(workspace: String, name: String, kind: ChannelRecord.Kind, creator: String) async throws -> ChannelRecord
    func channel(id: String) async throws -> ChannelRecord?
    /// The workspace's channels that `user` may see: public ones, and the others `user` belongs to.
    func channels(workspace: String, visibleTo user: String) async throws -> [ChannelRecord]
    /// Joins a public channel of a workspace the user belongs to.
    func joinChannel(_ channel: String, user: String) async throws
    func leaveChannel(_ channel: String, user: String) async throws
    func channelMembers(_ channel: String) async throws -> Set<String>
    /// Whether `user` belongs to `channel` (false for a malformed or unknown id): asked before
    /// anything is started for the channel.
    func isChannelMember(_ channel: String, user: String) async throws -> Bool
    /// The last seq `user` read in `channel` (0 when none).
    func lastRead(_ channel: String, user: String) async throws -> Int64
}
