/// How present a user is.
public enum PresenceStatus: String, Sendable, Hashable, Comparable, CaseIterable {
    case offline
    case away
    case online

    public static func < (lhs: PresenceStatus, rhs: PresenceStatus) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// One socket's presence: Phoenix calls these "metas". `ref` is the socket's unique
/// `phx_ref`; `node` is the incarnation of the node holding the socket.
public struct PresenceMeta: Sendable, Hashable {
    public var ref: String
    public var status: PresenceStatus
    public var node: String
    /// Milliseconds since the Unix epoch.
    public var onlineAt: Int64
    /// What the user says of themselves (`busy`, `dnd`), with an optional text.
    public var customStatus: String?
    public var statusText: String?

    public init(ref: String, status: PresenceStatus, node: String, onlineAt: Int64, customStatus: String? = nil,
                statusText: String? = nil) {
        self.ref = ref
        self.status = status
        self.node = node
        self.onlineAt = onlineAt
        self.customStatus = customStatus
        self.statusText = statusText
    }

    public var json: JSONValue {
        var members: [String: JSONValue] = ["phx_ref": .string(ref), "status": .string(status.rawValue), "node": .string(node),
                                            "online_at": .int(onlineAt)]
        if let customStatus { members["custom_status"] = .string(customStatus) }
        if let statusText { members["status_text"] = .string(statusText) }
        return .object(members)
    }
}

/// Everyone present in one scope (a workspace or channel): user → the metas of their sockets,
/// on any node.
public struct PresenceSnapshot: Sendable, Hashable {
    public private(set) var users: [String: [PresenceMeta]]

    public init(_ users: [String: [PresenceMeta]] = [:]) {
        self.users = users.filter { !$0.value.isEmpty }
    }

    /// The user's status: the most present of their sockets (one online tab makes them online).
    public func status(of user: String) -> PresenceStatus {
        users[user]?.map(\.status).max() ?? .offline
    }

    public mutating func add(_ user: String, _ meta: PresenceMeta) {
        users[user, default: []].removeAll { $0.ref == meta.ref }
        users[user, default: []].append(meta)
    }

    public mutating func remove(_ user: String, ref: String) {
        users[user]?.removeAll { $0.ref == ref }
        if users[user]?.isEmpty == true { users[user] = nil }
    }

    /// Drops every socket held by `node` (a dead node's users are reaped).
    public mutating func removeNode(_ node: String) {
        for user in users.keys {
            users[user]?.removeAll { $0.node == node }
            if users[user]?.isEmpty == true { users[user] = nil }
        }
    }

    /// `presence_state`: `{user: {"metas": [...]}}`.
    public var stateJSON: JSONValue { Self.json(users) }

    static func json(_ users: [String: [PresenceMeta]]) -> JSONValue {
        .object(users.mapValues { metas in ["metas": .array(metas.sorted { $0.ref < $1.ref }.map(\.json))] })
    }
}

/// `presence_diff` between two snapshots, Phoenix's shape: metas that appeared are `joins`,
/// metas that went (or changed) are `leaves`; a changed meta is a leave plus a join.
public struct PresenceDiff: Sendable, Hashable {
    public var joins: [String: [PresenceMeta]]
    public var leaves: [String: [PresenceMeta]]

    public init(from old: PresenceSnapshot, to new: PresenceSnapshot) {
        var joins: [String: [PresenceMeta]] = [:]
        var leaves: [String: [PresenceMeta]] = [:]
        for user in Set(old.users.keys).union(new.users.keys) {
            let before = old.users[user] ?? []
            let after = new.users[user] ?? []
            let gone = before.filter { !after.contains($0) }
            let came = after.filter { !before.contains($0) }
            if !gone.isEmpty { leaves[user] = gone }
            if !came.isEmpty { joins[user] = came }
        }
        self.joins = joins
        self.leaves = leaves
    }

    public var isEmpty: Bool { joins.isEmpty && leaves.isEmpty }

    /// The users whose status changed, with the new status (what a UI shows as online/offline).
    public func statusChanges(from old: PresenceSnapshot, to new: PresenceSnapshot) -> [String: PresenceStatus] {
        var changes: [String: PresenceStatus] = [:]
        for user in Set(joins.keys).union(leaves.keys) where old.status(of: user) != new.status(of: user) {
            changes[user] = new.status(of: user)
        }
        return changes
    }

    public var json: JSONValue {
        ["joins": PresenceSnapshot.json(joins), "leaves": PresenceSnapshot.json(leaves)]
    }
}
