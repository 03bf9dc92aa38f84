import Logging
import ParleyAuth
import ParleyCore
import ParleyRuntime
import ServiceLifecycle

/// Everything the gateway serves from on one node.
public struct Node: Sendable {
    public let configuration: NodeConfiguration
    public let identity: NodeIdentity
    public let backends: BackendHandles
    public let directory: any Directory
    /// This node's heartbeat, the live nodes and the ring.
    public let membership: ClusterMembership
    /// The cluster bus and the one publish path; its feeds serve channel reads at the edge.
    public let bus: ClusterBusService
    public let channels: ChannelRouter
    public let broadcaster: Broadcaster
    public let buffer: MessageBuffer
    public let presence: PresenceTracker
    /// Notification jobs (shared by the nodes through `jobs`) run here too.
    public let notifications: NotificationServer
    public let jobs: any JobQueue
    public let notificationStore: any NotificationStore
    /// Upload jobs (the same queue table) run here too.
    public let uploads: UploadProcessor
    public let uploadStore: any UploadStore
    public let uploadPolicy: UploadPolicy
    public let tokens: TokenIssuer
    public let passwords: PasswordHasher
    public let limits: PayloadLimits
    /// Rates of sign-ins, sign-ups and joins, per user and per address.
    public let requests: RequestLimiter
    public let metrics: NodeMetrics
    /// The open sockets; closes those silent for the socket timeout.
    public let sockets: SocketSweeper
    /// Returns freed memory to the system after many sockets closed.
    private let memory: MemoryReturner
    /// Set by `drain` (SIGTERM): `/readyz` fails and new sockets are refused.
    public let draining = DrainState()
    public let logger: Logger

    public init(configuration: NodeConfiguration, identity: NodeIdentity, backends: BackendHandles, directory: any Directory,
                membership: ClusterMembership, bus: ClusterBusService, channels: ChannelRouter, buffer: MessageBuffer,
                presence: PresenceTracker, notifications: NotificationServer, jobs: any JobQueue,
                notificationStore: any NotificationStore, uploads: UploadProcessor, uploadStore: any UploadStore,
                uploadPolicy: UploadPolicy, tokens: TokenIssuer, passwords: PasswordHasher, limits: PayloadLimits = PayloadLimits(),
                logger: Logger) {
        self.configuration = configuration
        self.identity = identity
        self.backends = backends
        self.directory = directory
        self.membership = membership
        self.bus = bus
        self.channels = channels
        self.broadcaster = bus.broadcaster
        self.buffer = buffer
        self.presence = presence
        self.notifications = notifications
        self.jobs = jobs
        self.notificationStore = notificationStore
        self.uploads = uploads
        self.uploadStore = uploadStore
        self.uploadPolicy = uploadPolicy
        self.tokens = tokens
        self.passwords = passwords
        self.limits = limits
        requests = RequestLimiter(authPerMinute: configuration.authPerMinute, joinsPerSecond: configuration.joinsPerSecond)
        let metrics = NodeMetrics(identity: identity)
        self.metrics = metrics
        sockets = SocketSweeper(timeout: configuration.socketTimeout) { metrics.socketTimeouts.increment() }
        memory = MemoryReturner(sockets: sockets, logger: logger)
        self.logger = logger
        Self.connect(membership: membership, bus: bus, channels: channels, presence: presence, uploads: uploads, logger: logger)
    }

    /// The node's long-running services, in start order (shutdown runs the other way: sockets
    /// close, notification jobs finish or are left to their leases, channels hand off and
    /// release, the bus and the heartbeat stop, the buffer flushes).
    public var services: [any Service] {
        [buffer, membership, bus, channels, presence, notifications.worker, uploads.worker, sockets, memory]
    }

    /// Membership changes move channels (handoff) and reap a dead node's presence; controls
    /// from other nodes reach the router and the sockets.
    private static func connect(membership: ClusterMembership, bus: ClusterBusService, channels: ChannelRouter,
                                presence: PresenceTracker, uploads: UploadProcessor, logger: Logger) {
        membership.onChange { changes, ring in
            await channels.ringChanged(ring)
            for change in changes {
                switch change {
                case .left(let node), .restarted(old: let node, new: _): await presence.reap(node: node)
                case .joined: break
                }
            }
        }
        membership.onLapse { await presence.republish() }
        bus.onReconnect { await presence.resync { event, topic in bus.deliverHere(event, topic: topic) } }
        let broadcaster = bus.broadcaster
        bus.handle(controls: { kind, body, sender in
            switch kind {
            case "member_added", "member_removed":
                guard let channel = body["channel"]?.stringValue, let user = body["user"]?.stringValue else { return }
                let added = kind == "member_added"
                await channels.membershipChanged(channel: channel, user: user, added: added)
                if !added {
                    // The user's sockets on the channel, on this node, get phx_close and nothing more.
                    let topic = "channel:\(channel)"
                    broadcaster.close(topic, with: PhoenixFrame(topic: topic, event: "phx_close", json: [:])) { $0.user(on: topic) == user }
                }
            case "upload_cancelled":
                if let job = body["job"]?.intValue { uploads.stopRun(job: job) }
            case "take":
                guard let channel = body["channel"]?.stringValue else { return }
                await channels.take(channel, drainingSender: body["draining"]?.boolValue == true ? sender.name : nil)
            default:
                logger.debug("unknown cluster control", metadata: ["kind": "\(kind)"])
            }
        })
    }
}
