import Logging
import ParleyCore
import ParleyPostgres
import ParleyRedis
import ParleyRuntime
import ServiceLifecycle

extension Node {
    /// Assembles a node on `backends`: Redis leases and log, PostgreSQL store and directory,
    /// the buffer, the broadcaster and the channel router. Run `services` (backends first) and
    /// then the application.
    public static func start(configuration: NodeConfiguration, backends: Backends, logger: Logger) async -> Node {
        let identity = NodeIdentity.booting(name: configuration.nodeName)
        let keys = RedisKeyspace(prefix: configuration.redisPrefix)
        let leases = RedisLeaseStore(client: backends.redis, keys: keys)
        let log = RedisMessageLog(client: backends.redis, keys: keys)
        let store = PostgresMessageStore(client: backends.postgres)
        let directory = PostgresDirectory(client: backends.postgres)
        var nodeLogger = logger
        nodeLogger[metadataKey: "node"] = "\(identity)"
        let buffer = MessageBuffer(store: store, log: log, batchSize: configuration.batchSize, batchDelay: configuration.batchDelay,
                                   maximumPending: configuration.maximumPending, logger: nodeLogger)
        let broadcaster = Broadcaster()
        let channels = ChannelRouter(identity: identity, leases: leases, log: log, store: store, directory: directory, sink: buffer,
                                     publisher: broadcaster,
                                     settings: .init(leaseTTL: configuration.leaseTTL, maximumServers: configuration.maximumChannels),
                                     logger: nodeLogger)
        return Node(configuration: configuration, identity: identity, backends: backends, directory: directory, channels: channels,
                    broadcaster: broadcaster, buffer: buffer,
                    presence: PresenceTracker(publisher: broadcaster, node: identity.description, awayAfter: configuration.awayAfter),
                    tokens: await TokenIssuer(secret: configuration.tokenSecret, lifetime: configuration.tokenLifetime),
                    passwords: PasswordHasher(cost: UInt8(clamping: configuration.bcryptCost)), logger: nodeLogger)
    }

    /// The node's long-running services, in start order (shutdown runs the other way).
    public var services: [any Service] { [buffer, channels, presence, sockets] }
}
