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

    public init(publisher: any EventPublisher, node: String, awayAfter: Duration = .seconds(300),
                stopAfterEmpty: Duration = .seconds(60), clock: any ParleyClock = SystemClock()) {
        self.publisher = publisher
        self.node = node
        self.awayAfter = awayAfter
        self.stopAfterEmpty = stopAfterEmpty
        self.clock = clock
    }

    /// The server of `workspace`, started if there is none.
    public func server(for workspace: String) -> WorkspaceServer {
        if let server = servers[workspace] { return server }
        let server = WorkspaceServer(workspaceID: workspace, publisher: publisher, node: node, awayAfter: awayAfter, clock: clock)
        servers[workspace] = server
        return server
    }

    /// Workspaces with a running server here.
    public var runningWorkspaces: [String] { Array(servers.keys) }

    /// `presence_state` of a workspace.
    public func state(of workspace: String) async -> JSONValue {
        await servers[workspace]?.state ?? PresenceSnapshot().stateJSON
    }

    public func status(of user: String, in workspace: String) async -> PresenceStatus {
        await servers[workspace]?.status(of: user) ?? .offline
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
