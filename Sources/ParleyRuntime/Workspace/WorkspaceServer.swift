import ParleyCore

/// One workspace (DESIGN §1): its members' connections — each socket a presence meta — their
/// timeouts (a member whose sockets have all been idle for `awayAfter` is away), and the
/// workspace-wide broadcasts on `workspace:{id}`: `presence_diff` on every change,
/// `channel_created`, `member_joined`. `PresenceTracker` starts one per workspace with
/// sockets on this node and routes each socket's events to it.
public actor WorkspaceServer {
    public let workspaceID: String
    private let publisher: any EventPublisher
    private let clock: any ParleyClock
    private let node: String
    public let awayAfter: Duration
    private var snapshot = PresenceSnapshot()
    /// The connected sockets: ref → (user, last activity).
    private var connections: [String: (user: String, lastActive: Moment)] = [:]
    /// When the last socket left (the tracker stops servers empty for a while).
    public private(set) var emptySince: Moment?
    /// Numbers the `phx_ref`s this server gives metas (with the node's incarnation, unique in
    /// the cluster).
    private var refs = 0

    /// The cluster's presence: this server writes its sockets' metas there, and reads everyone's.
    private let store: (any PresenceStore)?

    public init(workspaceID: String, publisher: any EventPublisher, node: String, awayAfter: Duration,
                store: (any PresenceStore)? = nil, clock: any ParleyClock = SystemClock()) {
        self.workspaceID = workspaceID
        self.publisher = publisher
        self.store = store
        self.node = node
        self.awayAfter = awayAfter
        self.clock = clock
        emptySince = clock.now()
    }

    private var topic: String { "workspace:\(workspaceID)" }

    /// `presence_state` of the workspace.
    public var state: JSONValue { snapshot.stateJSON }

    public func status(of user: String) -> PresenceStatus { snapshot.status(of: user) }

    /// Connected sockets and the members they belong to.
    public var connectionCount: Int { connections.count }
    public var memberCount: Int { snapshot.users.count }

    /// In one step: sends `presence_state` to `subscriber`, subscribes it to the workspace's
    /// broadcasts and connects its socket — so it sees every change after the state exactly once.
    ///
    /// In a cluster the state is the presence store's (every node's sockets); the socket is
    /// subscribed first, so a diff may reach it before the state — Phoenix's clients hold such
    /// diffs until the state arrives.
    public func attach(_ subscriber: any FrameSubscriber, to broadcaster: Broadcaster, user: String, ref: String) async -> Bool {
        guard store != nil else {
            let frame = ServerEvent.presenceState(state).frame(topic: topic)
            guard subscriber.deliver(subscriber.codec.encode(frame)) else { return false }
            broadcaster.subscribe(subscriber, to: topic)
            connect(user: user, ref: ref)
            return true
        }
        broadcaster.subscribe(subscriber, to: topic)
        connect(user: user, ref: ref)
        await lastWrite?.value
        let frame = ServerEvent.presenceState(await clusterState().stateJSON).frame(topic: topic)
        return subscriber.deliver(subscriber.codec.encode(frame))
    }

    /// Everyone present in the workspace, on every node.
    public func clusterState() async -> PresenceSnapshot {
        var everyone = (try? await store?.snapshot(workspace: workspaceID)) ?? PresenceSnapshot()
        for (user, metas) in snapshot.users { for meta in metas { everyone.add(user, meta) } }
        return everyone
    }

    /// A socket (`ref`) of `user` connected.
    public func connect(user: String, ref: String) {
        connections[ref] = (user, clock.now())
        emptySince = nil
        let meta = PresenceMeta(socket: ref, ref: nextRef(), status: .online, node: node, onlineAt: clock.wallMilliseconds())
        change { $0.add(user, meta) }
    }

    public func disconnect(ref: String) {
        guard let connection = connections.removeValue(forKey: ref) else { return }
        if connections.isEmpty { emptySince = clock.now() }
        change { $0.remove(connection.user, socket: ref) }
    }

    /// The socket did something: online again if it was away.
    public func touch(ref: String) {
        guard connections[ref] != nil else { return }
        connections[ref]?.lastActive = clock.now()
        update(ref) { $0.status = .online }
    }

    /// What the user says of themselves (`nil` clears it), on this socket.
    public func setCustomStatus(ref: String, status: String?, text: String?) {
        update(ref) {
            $0.customStatus = status
            $0.statusText = text
        }
    }

    /// Member timeouts: sockets idle for `awayAfter` are away.
    public func expireIdle() {
        let now = clock.now()
        for (ref, connection) in connections where now - connection.lastActive >= awayAfter {
            update(ref) { $0.status = .away }
        }
    }

    /// A workspace-wide event (`channel_created`, `member_joined`) to everyone on the workspace topic.
    public func announce(_ event: ServerEvent) {
        publisher.publish(event, topic: topic)
    }

    private func update(_ ref: String, _ edit: (inout PresenceMeta) -> Void) {
        guard let user = connections[ref]?.user, var meta = snapshot.users[user]?.first(where: { $0.socket == ref }) else { return }
        let before = meta
        edit(&meta)
        guard meta != before else { return }
        meta.previousRef = before.ref
        meta.ref = nextRef()
        change { $0.add(user, meta) }
    }

    private func nextRef() -> String {
        refs += 1
        return "\(node):\(refs)"
    }

    /// Applies `edit` to this node's sockets, broadcasts the diff (to every node) and writes
    /// the changed metas to the presence store (in order, one write after the other).
    private func change(_ edit: (inout PresenceSnapshot) -> Void) {
        let before = snapshot
        edit(&snapshot)
        let diff = PresenceDiff(from: before, to: snapshot)
        guard !diff.isEmpty else { return }
        publisher.publish(.presenceDiff(diff.json), topic: topic)
        guard let store else { return }
        let workspace = workspaceID
        let kept = snapshot
        write {
            try await Self.put(diff.joins, in: workspace, to: store)
            for (user, metas) in diff.leaves {
                for meta in metas where kept.users[user]?.contains(where: { $0.socket == meta.socket }) != true {
                    try await store.remove(workspace: workspace, user: user, socket: meta.socket, node: meta.node)
                }
            }
        }
    }

    private var lastWrite: Task<Void, Never>?

    /// Runs `operation` after the store writes before it (a failed write is caught up by the
    /// socket's next change or `republish`).
    private func write(_ operation: @escaping @Sendable () async throws -> Void) {
        let previous = lastWrite
        lastWrite = Task {
            await previous?.value
            try? await operation()
        }
    }

    /// Writes every local meta again (after this node's heartbeat lapsed and the others reaped it).
    public func republish() {
        guard let store else { return }
        let workspace = workspaceID
        let current = snapshot
        write { try await Self.put(current.users, in: workspace, to: store) }
    }

    private static func put(_ users: [String: [PresenceMeta]], in workspace: String, to store: any PresenceStore) async throws {
        for (user, metas) in users {
            for meta in metas { try await store.put(workspace: workspace, user: user, meta: meta) }
        }
    }
}
