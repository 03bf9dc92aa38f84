import Foundation
import Logging
import ParleyAuth
import ParleyCore
import ParleyGateway
import ParleyPostgres
import ParleyRedis
import ParleyRuntime

extension Node {
    /// Assembles a node on `backends` (the one place adapters meet the runtime): Redis leases,
    /// log, membership, presence and bus; PostgreSQL store and directory; the buffer, the
    /// cluster bus service, the channel router and presence. Registers the node's name first:
    /// throws `ClusterMembership.NameTaken` when a live node has it.
    public static func start(configuration: NodeConfiguration, backends: Backends, logger: Logger) async throws -> Node {
        let identity = NodeIdentity.booting(name: configuration.nodeName)
        let keys = RedisKeyspace(prefix: configuration.redisPrefix)
        let leases = RedisLeaseStore(client: backends.redis, keys: keys)
        let log = RedisMessageLog(client: backends.redis, keys: keys)
        let store = PostgresMessageStore(client: backends.postgres)
        let directory = PostgresDirectory(client: backends.postgres)
        var nodeLogger = logger
        nodeLogger[metadataKey: "node"] = "\(identity)"
        let record = NodeRecord(identity: identity, address: "\(configuration.httpHost):\(configuration.httpPort)",
                                startedAt: Int64(Date().timeIntervalSince1970 * 1000))
        let membership = ClusterMembership(record: record, store: RedisMembershipStore(client: backends.redis, keys: keys),
                                           interval: configuration.heartbeatInterval, ttl: configuration.heartbeatTTL,
                                           logger: nodeLogger)
        try await membership.register()
        let subscriber = RedisSubscriber(backends.redisConfiguration, logger: nodeLogger)
        let bus = ClusterBusService(identity: identity, bus: RedisClusterBus(client: backends.redis, subscriber: subscriber, keys: keys),
                                    broadcaster: Broadcaster(), log: log, store: store, logger: nodeLogger)
        let buffer = MessageBuffer(store: store, log: log, batchSize: configuration.batchSize, batchDelay: configuration.batchDelay,
                                   maximumPending: configuration.maximumPending, logger: nodeLogger)
        var settings = ChannelRouter.Settings(leaseTTL: configuration.leaseTTL, maximumServers: configuration.maximumChannels)
        settings.requestDeadline = configuration.requestDeadline
        let channels = ChannelRouter(membership: membership, bus: bus, leases: leases, log: log, store: store, directory: directory,
                                     sink: buffer, settings: settings, logger: nodeLogger)
        let presenceStore = RedisPresenceStore(client: backends.redis, keys: keys)
        let presence = PresenceTracker(publisher: bus, node: identity.description, awayAfter: configuration.awayAfter,
                                       store: presenceStore)
        let notifications = NotificationServer(
            jobs: PostgresJobQueue(client: backends.jobsPostgres), store: PostgresNotificationStore(client: backends.jobsPostgres),
            webhooks: backends.webhooks, mail: backends.mail, push: backends.webPush, publisher: bus,
            online: { channel in
                // `@here`: the channel's workspace's members online now, on any node.
                guard let workspace = try? await directory.channel(id: channel)?.workspaceID,
                      let snapshot = try? await presenceStore.snapshot(workspace: workspace) else { return [] }
                return snapshot.onlineUsers
            },
            worker: identity.description,
            settings: NotificationServer.Settings(
                window: configuration.notificationWindow,
                workers: JobWorker.Settings(concurrency: configuration.notificationConcurrency, visibility: configuration.jobVisibility,
                                            poll: configuration.jobPoll),
                deliveryAttempts: configuration.notificationAttempts),
            logger: nodeLogger)
        let uploadStore = PostgresUploadStore(client: backends.postgres)
        // The workers work on connections of their own; the API's calls use the node's pool.
        let uploads = UploadProcessor(
            jobs: PostgresJobQueue(client: backends.jobsPostgres), store: PostgresUploadStore(client: backends.jobsPostgres),
            blobs: try BlobDirectory(root: configuration.blobDirectory),
            scanner: backends.scanner, thumbnailer: backends.thumbnailer, publisher: bus, worker: identity.description,
            settings: UploadProcessor.Settings(
                workers: JobWorker.Settings(concurrency: configuration.uploadConcurrency, visibility: configuration.jobVisibility,
                                            poll: configuration.jobPoll),
                thumbnailSize: configuration.thumbnailSize),
            logger: nodeLogger)
        return Node(configuration: configuration, identity: identity, backends: backends.handles, directory: directory,
                    membership: membership, bus: bus, channels: channels, buffer: buffer, presence: presence,
                    notifications: notifications, jobs: PostgresJobQueue(client: backends.postgres),
                    notificationStore: PostgresNotificationStore(client: backends.postgres),
                    uploads: uploads, uploadStore: uploadStore, uploadPolicy: configuration.uploadPolicy,
                    tokens: await TokenIssuer(secret: configuration.tokenSecret, lifetime: configuration.tokenLifetime),
                    passwords: PasswordHasher(cost: UInt8(clamping: configuration.bcryptCost)), logger: nodeLogger)
    }
}
