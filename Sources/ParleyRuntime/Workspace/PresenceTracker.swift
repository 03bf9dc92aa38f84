import ParleyCore
import ServiceLifecycle

/// This node's sockets in workspaces (DESIGN §1): each socket ref belongs to one workspace,
/// whose `WorkspaceServer` (started here on the first socket) keeps its presence and
/// broadcasts. The tracker routes each socket's events to that server, runs the member
/// timeouts (online → away after `awayAfter` idle; offline when the last socket goes), and
/// stops a server once it has had no socket for `stopAfterEmpty`. (Writing the cluster's
/// presence sets in Redis joins here with the cluster work.)
public actor PresenceTracker: Service {
    private let publisher: any EventPublisher
    private let clock: any ParleyClock
    private let node: String
    public let awayAfter: Duration
    public let stopAfterEmpty: Duration
    private var servers: [String: WorkspaceServer] = [:]
    /// Socket ref → its workspace.
    private var sockets: [String: String] = [:]

    /// The cluster's presence (nil: this node's sockets only).
    private let store: (any PresenceStore)?

    public init(publisher: any EventPublisher, node: String, awayAfter: Duration = .seconds(300),
                stopAfterEmpty: Duration = .seconds(60), store: (any PresenceStore)? = nil, clock: any ParleyClock = SystemClock()) {
        self.publisher = publisher
        self.store = store
        self.node = node
        self.awayAfter = awayAfter
        self.stopAfterEmpty = stopAfterEmpty
        self.clock = clock
    }

    /// The server of `workspace`, started if there is none.
    public func server(for workspace: String) -> WorkspaceServer {
        if let server = servers[workspace] { return server }
        let server = WorkspaceServer(workspaceID: workspace, publisher: publisher, node: node, awayAfter: awayAfter, store: store,
                                     clock: clock)
        servers[workspace] = server
        return server
    }

    /// Workspaces with a running server here.
    public var runningWorkspaces: [String] { Array(servers.keys) }

    /// Everyone present in a workspace, on every node.
    public func snapshot(of workspace: String) async -> PresenceSnapshot {
        if let server = servers[workspace] { return await server.clusterState() }
        return (try? await store?.snapshot(workspace: workspace)) ?? PresenceSnapshot()
    }

    /// `presence_state` of a workspace.
    public func state(of workspace: String) async -> JSONValue {
        await snapshot(of: workspace).stateJSON
    }

    public func status(of user: String, in workspace: String) async -> PresenceStatus {
        await snapshot(of: workspace).status(of: user)
    }

    /// A node left the cluster (died, or restarted as a new incarnation): its sockets' metas
    /// are removed from the store and their leaves broadcast. Every node does this; each meta
    /// is removed, and its leave sent, by one of them. Returns the metas reaped.
    @discardableResult
    public func reap(node: NodeIdentity) async -> Int {
        guard let store, node.description != self.node, let removed = try? await store.reap(node: node.description) else { return 0 }
        var count = 0
        defer { reapedCount += count }
        for (workspace, gone) in removed {
            count += gone.users.values.reduce(0) { $0 + $1.count }
            let diff: JSONValue = ["joins": .object([:]), "leaves": gone.stateJSON]
            publisher.publish(.presenceDiff(diff), topic: "workspace:\(workspace)")
        }
        return count
    }

    /// Metas of dead nodes this node reaped.
    public private(set) var reapedCount = 0

    /// Sends every workspace's cluster-wide `presence_state` again to this node's sockets
    /// (after the bus lost diffs), through `deliver`; Phoenix clients replace their state.
    public func resync(_ deliver: @Sendable (ServerEvent, String) -> Void) async {
        for (workspace, server) in servers {
            deliver(.presenceState(await server.clusterState().stateJSON), "workspace:\(workspace)")
        }
    }

    /// This node's heartbeat lapsed (others may have reaped its metas): write them again.
    public func republish() async {
        for server in servers.values { await server.republish() }
    }

    /// Sends `presence_state` to `subscriber`, subscribes it to the workspace's broadcasts
    /// and tracks its socket, in one step of the workspace's server.
    public func attach(_ subscriber: any FrameSubscriber, to broadcaster: Broadcaster, workspace: String, user: String,
                       ref: String) async -> Bool {
        let server = adopt(ref, in: workspace)
        guard await server.attach(subscriber, to: broadcaster, user: user, ref: ref) else {
            await untrack(ref: ref)
            return false
        }
        return true
    }

    /// A socket (`ref`) of `user` is present in `workspace`.
    public func track(workspace: String, user: String, ref: String) async {
        await adopt(ref, in: workspace).connect(user: user, ref: ref)
    }

    public func untrack(ref: String) async {
        guard let workspace = sockets.removeValue(forKey: ref) else { return }
        await servers[workspace]?.disconnect(ref: ref)
    }

    /// The socket did something: it is online again if it was away.
    public func touch(ref: String) async {
        guard let workspace = sockets[ref] else { return }
        await servers[workspace]?.touch(ref: ref)
    }

    /// What the user says of themselves (`nil` clears it), on this socket.
    public func setCustomStatus(ref: String, status: String?, text: String?) async {
        guard let workspace = sockets[ref] else { return }
        await servers[workspace]?.setCustomStatus(ref: ref, status: status, text: text)
    }

    /// A workspace-wide event, through the workspace's server.
    public func announce(_ event: ServerEvent, in workspace: String) async {
        await server(for: workspace).announce(event)
    }

    /// Member timeouts in every workspace; servers without sockets for `stopAfterEmpty` stop.
    public func expireIdle() async {
        let now = clock.now()
        for (workspace, server) in servers {
            await server.expireIdle()
            if let since = await server.emptySince, now - since >= stopAfterEmpty,
               servers[workspace] === server, !sockets.values.contains(workspace) {
                servers[workspace] = nil
            }
        }
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(5)) }
            await expireIdle()
        }
    }

    private func adopt(_ ref: String, in workspace: String) -> WorkspaceServer {
        sockets[ref] = workspace
        return server(for: workspace)
    }
}
