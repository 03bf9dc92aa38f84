import ParleyCore
import ServiceLifecycle

/// Who is present in each workspace, from this node's sockets (DESIGN §1): each socket is a
/// meta; a user is online while any socket is active, away when all have been idle for
/// `awayAfter`, offline when the last goes. Every change is published as `presence_diff` on
/// `workspace:{id}`. (The cluster-wide view through Redis joins here with the cluster work.)
public actor PresenceTracker: Service {
    private struct Socket {
        var workspace: String
        var user: String
        var lastActive: Moment
    }

    private let publisher: any EventPublisher
    private let clock: any ParleyClock
    private let node: String
    public let awayAfter: Duration
    private var snapshots: [String: PresenceSnapshot] = [:]
    private var sockets: [String: Socket] = [:]

    public init(publisher: any EventPublisher, node: String, awayAfter: Duration = .seconds(300),
                clock: any ParleyClock = SystemClock()) {
        self.publisher = publisher
        self.node = node
        self.awayAfter = awayAfter
        self.clock = clock
    }

    /// `presence_state` of a workspace.
    public func state(of workspace: String) -> JSONValue { (snapshots[workspace] ?? PresenceSnapshot()).stateJSON }

    public func status(of user: String, in workspace: String) -> PresenceStatus {
        snapshots[workspace]?.status(of: user) ?? .offline
    }

    /// In one step: sends `presence_state` to `subscriber`, subscribes it to the workspace's
    /// diffs, and tracks its socket — so it sees every change after the state exactly once.
    public func attach(_ subscriber: any FrameSubscriber, to broadcaster: Broadcaster, workspace: String, user: String, ref: String) -> Bool {
        let frame = ServerEvent.presenceState(state(of: workspace)).frame(topic: "workspace:\(workspace)")
        guard subscriber.deliver(subscriber.codec.encode(frame)) else { return false }
        broadcaster.subscribe(subscriber, to: "workspace:\(workspace)")
        track(workspace: workspace, user: user, ref: ref)
        return true
    }

    /// A socket (`ref`) of `user` is present in `workspace`.
    public func track(workspace: String, user: String, ref: String) {
        sockets[ref] = Socket(workspace: workspace, user: user, lastActive: clock.now())
        change(workspace) { $0.add(user, PresenceMeta(ref: ref, status: .online, node: node, onlineAt: clock.wallMilliseconds())) }
    }

    public func untrack(ref: String) {
        guard let socket = sockets.removeValue(forKey: ref) else { return }
        change(socket.workspace) { $0.remove(socket.user, ref: ref) }
    }

    /// The socket did something: it is online again if it was away.
    public func touch(ref: String) {
        guard var socket = sockets[ref] else { return }
        socket.lastActive = clock.now()
        sockets[ref] = socket
        update(ref) { $0.status = .online }
    }

    /// What the user says of themselves (`nil` clears it), on this socket.
    public func setCustomStatus(ref: String, status: String?, text: String?) {
        update(ref) {
            $0.customStatus = status
            $0.statusText = text
        }
    }

    /// Marks sockets idle for `awayAfter` as away.
    public func markIdle() {
        let now = clock.now()
        for (ref, socket) in sockets where now - socket.lastActive >= awayAfter {
            update(ref) { $0.status = .away }
        }
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(5)) }
            markIdle()
        }
    }

    private func update(_ ref: String, _ edit: (inout PresenceMeta) -> Void) {
        guard let socket = sockets[ref],
              var meta = snapshots[socket.workspace]?.users[socket.user]?.first(where: { $0.ref == ref }) else { return }
        let before = meta
        edit(&meta)
        guard meta != before else { return }
        change(socket.workspace) { $0.add(socket.user, meta) }
    }

    private func change(_ workspace: String, _ edit: (inout PresenceSnapshot) -> Void) {
        let before = snapshots[workspace] ?? PresenceSnapshot()
        var after = before
        edit(&after)
        snapshots[workspace] = after.users.isEmpty ? nil : after
        let diff = PresenceDiff(from: before, to: after)
        if !diff.isEmpty { publisher.publish(.presenceDiff(diff.json), topic: "workspace:\(workspace)") }
    }
}
