/// The cluster's presence (DESIGN §3): per workspace, every socket's meta with the node
/// incarnation holding it, written by that node. A user is online while any meta of theirs is.
public protocol PresenceStore: Sendable {
    /// Records (or replaces) the meta of one socket of `user`.
    func put(workspace: String, user: String, meta: PresenceMeta) async throws
    /// Removes the meta of `socket`, held by node incarnation `node`.
    func remove(workspace: String, user: String, socket: String, node: String) async throws
    /// Everyone present in `workspace`, on any node.
    func snapshot(workspace: String) async throws -> PresenceSnapshot
    /// Removes every meta of node incarnation `node` (it died); returns what was removed, by
    /// workspace. Of several nodes reaping the same one, each meta is returned to one only.
    func reap(node: String) async throws -> [String: PresenceSnapshot]
}
