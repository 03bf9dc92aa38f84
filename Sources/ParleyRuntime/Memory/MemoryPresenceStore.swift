import ParleyCore
import Synchronization

/// `PresenceStore` in memory (one process, tests).
public final class MemoryPresenceStore: PresenceStore {
    private let workspaces = Mutex<[String: PresenceSnapshot]>([:])

    public init() {}

    public func put(workspace: String, user: String, meta: PresenceMeta) async throws {
        workspaces.withLock { $0[workspace, default: PresenceSnapshot()].add(user, meta) }
    }

    public func remove(workspace: String, user: String, socket: String, node: String) async throws {
        workspaces.withLock { workspaces in
            guard var snapshot = workspaces[workspace],
                  snapshot.users[user]?.contains(where: { $0.socket == socket && $0.node == node }) == true else { return }
            snapshot.remove(user, socket: socket)
            workspaces[workspace] = snapshot
        }
    }

    public func snapshot(workspace: String) async throws -> PresenceSnapshot {
        workspaces.withLock { $0[workspace] ?? PresenceSnapshot() }
    }

    public func reap(node: String) async throws -> [String: PresenceSnapshot] {
        workspaces.withLock { workspaces in
            var removed: [String: PresenceSnapshot] = [:]
            for (workspace, snapshot) in workspaces {
                let gone = PresenceSnapshot(snapshot.users.mapValues { $0.filter { $0.node == node } })
                guard !gone.users.isEmpty else { continue }
                var kept = snapshot
                kept.removeNode(node)
                workspaces[workspace] = kept
                removed[workspace] = gone
            }
            return removed
        }
    }
}
