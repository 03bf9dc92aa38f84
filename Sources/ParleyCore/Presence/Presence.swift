/// How present a user is.
public enum PresenceStatus: String, Sendable, Hashable, Comparable, CaseIterable {
    case offline
    case away
    case online

    public static func < (lhs: PresenceStatus, rhs: PresenceStatus) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// One socket's presence: Phoenix calls these "metas". `socket` names the socket for as long
/// as it is present; `ref` is the meta's `phx_ref`, new at every change of the meta (with the
/// one it replaces as `phx_ref_prev`), as Phoenix does: its clients' `syncDiff` applies joins
/// and then removes leaves by `phx_ref`, so a changed meta that kept its ref would vanish.
/// `node` is the incarnation of the node holding the socket.
public struct PresenceMeta: Sendable, Hashable {
    public var socket: String
    public var ref: String
    public var previousRef: String?
    public var status: PresenceStatus
    public var node: String
    /// Milliseconds since the Unix epoch.
    public var onlineAt: Int64
    /// What the user says of themselves (`busy`, `dnd`), with an optional text.
    public var customStatus: String?
    public var statusText: String?

    public init(socket: String, ref: String? = nil, status: PresenceStatus, node: String, onlineAt: Int64,
                customStatus: String? = nil, statusText: String? = nil) {
        self.socket = socket
        self.ref = ref ?? socket
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
        if let previousRef { members["phx_ref_prev"] = .string(previousRef) }
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

    /// Users online now (not away) on at least one socket.
    public var onlineUsers: Set<String> { Set(users.keys.filter { status(of: $0) == .online }) }

    /// Adds the meta of a socket, replacing the socket's earlier one.
    public mutating func add(_ user: String, _ meta: PresenceMeta) {
        users[user, default: []].removeAll { $0.socket == meta.socket }
        users[user, default: []].append(meta)
    }

    public mutating func remove(_ user: String, socket: String) {
        users[user]?.removeAll { $0.socket == socket }
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

/// `presence_diff` between two snapshots, Phoenix's shape: metas (by `phx_ref`) that appeared
/// are `joins`, metas that went are `leaves`; a changed meta is a leave of its old ref plus a
/// join of its new one.
public struct PresenceDiff: Sendable, Hashable {
    public var joins: [String: [PresenceMeta]]
    public var leaves: [String: [PresenceMeta]]

    public init(from old: PresenceSnapshot, to new: PresenceSnapshot) {
        var joins: [String: [PresenceMeta]] = [:]
        var leaves: [String: [PresenceMeta]] = [:]
        for user in Set(old.users.keys).union(new.users.keys) {
            let before = old.users[user] ?? []
            let after = new.users[user] ?? []
            let gone = before.filter { old in !after.contains { $0.ref == old.ref } }
            let came = after.filter { new in !before.contains { $0.ref == new.ref } }
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

extension PresenceMeta {
    /// The meta as the presence store keeps it: its wire form plus the socket.
    public var storedJSON: JSONValue {
        guard case .object(var members) = json else { return json }
        members["socket"] = .string(socket)
        return .object(members)
    }

    /// Reads `storedJSON`.
    public init?(stored: JSONValue) {
        guard let socket = stored["socket"]?.stringValue, let ref = stored["phx_ref"]?.stringValue,
              let status = stored["status"]?.stringValue.flatMap(PresenceStatus.init(rawValue:)),
              let node = stored["node"]?.stringValue, let onlineAt = stored["online_at"]?.intValue else { return nil }
        self.init(socket: socket, ref: ref, status: status, node: node, onlineAt: onlineAt,
                  customStatus: stored["custom_status"]?.stringValue, statusText: stored["status_text"]?.stringValue)
        previousRef = stored["phx_ref_prev"]?.stringValue
    }
}
