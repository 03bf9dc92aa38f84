import Logging
import ParleyCore
import ServiceLifecycle
import Synchronization

/// Finds or starts the `ChannelServer` of a channel on this node: takes the channel's lease,
/// loads it under the lease's fence (recovering the log), and keeps the lease renewed while
/// the server runs. Nothing starts for a user who is not a member of the channel, and at
/// most `maximumServers` run. A server whose lease cannot be renewed is dropped (it must not
/// write) and its topic closed with `phx_error` (Phoenix clients rejoin); the next request
/// starts it again under a fresh lease. (The cluster's owner routing joins here later.)
public final class ChannelRouter: Service {
    public struct Settings: Sendable {
        public var leaseTTL: Duration
        public var idleTimeout: Duration
        public var maximumServers: Int
        /// How often typing indicators are expired and failed appends resynced.
        public var tick: Duration
        /// How often the logs are swept for channels to recover (sooner while some remain).
        public var recoverySweep: Duration
        /// A typing indicator not renewed for this long ends (`typing` false is broadcast).
        public var typingTimeout: Duration = .seconds(5)

        public init(leaseTTL: Duration = .seconds(10), idleTimeout: Duration = .seconds(300), maximumServers: Int = 10_000,
                    tick: Duration = .seconds(1), recoverySweep: Duration = .seconds(30)) {
            self.leaseTTL = leaseTTL
            self.idleTimeout = idleTimeout
            self.maximumServers = maximumServers
            self.tick = tick
            self.recoverySweep = recoverySweep
        }
    }

    public let identity: NodeIdentity
    private let leases: any LeaseStore
    private let directory: any Directory
    private let settings: Settings
    private let registry: ServiceRegistry<String, ChannelServer>
    private let publisher: any EventPublisher
    private let log: any MessageLog
    private let store: any MessageStore
    private let logger: Logger
    private let recovery = Mutex<(pending: Int, recovered: Int)>((0, 0))
    /// The node's batched `client_msg_id` lookups in the store.
    public let lookup: ClientMessageLookup
    /// When each running server's lease was last renewed.
    private let renewals = Mutex<[String: ContinuousClock.Instant]>([:])

    public init(identity: NodeIdentity, leases: any LeaseStore, log: any MessageLog, store: any MessageStore,
                directory: any Directory, sink: any MessageSink, publisher: any EventPublisher,
                settings: Settings = Settings(), logger: Logger = Logger(label: "parley.channels")) {
        self.identity = identity
        self.leases = leases
        self.directory = directory
        self.settings = settings
        self.publisher = publisher
        self.log = log
        self.store = store
        self.logger = logger
        let holder = identity.description
        let lookup = ClientMessageLookup(store: store)
        self.lookup = lookup
        registry = ServiceRegistry(policy: .transient, idleTimeout: settings.idleTimeout, maximum: settings.maximumServers, start: { channel in
            guard let fence = try await leases.acquire(.channel(channel), holder: holder, ttl: settings.leaseTTL) else {
                throw ChannelError.unavailable("channel \(channel) is owned elsewhere; retry shortly")
            }
            do {
                return try await ChannelServer.load(channelID: channel, holder: holder, fence: fence,
                                                    members: directory.channelMembers(channel), log: log, store: store,
                                                    lookup: lookup, sink: sink,
                                                    publisher: publisher, typingTimeout: settings.typingTimeout)
            } catch {
                try? await leases.release(.channel(channel), holder: holder)
                throw error
            }
        }, stop: { server in
            await sink.forget(channel: server.channelID)
            try? await leases.release(.channel(server.channelID), holder: holder)
        })
    }

    /// The running server of `channel` for `user`, a member of it; started here if needed.
    /// Membership is checked before anything starts (no lease, fence or actor for a stranger).
    public func server(for channel: String, member user: String) async throws -> ChannelServer {
        if let running = await registry.lookup(channel) {
            guard await running.isMember(user) else { throw ChannelError.notAMember }
            return try await registry.lookupOrStart(channel)
        }
        guard try await backend({ try await directory.isChannelMember(channel, user: user) }) else { throw ChannelError.notAMember }
        let server = try await backend {
            do {
                return try await registry.lookupOrStart(channel)
            } catch ServiceRegistryError.full {
                throw ChannelError.unavailable("this node runs its maximum of \(self.settings.maximumServers) channels")
            }
        }
        guard await server.isMember(user) else { throw ChannelError.notAMember }
        return server
    }

    /// The server of `channel` if one runs (membership changes are applied to it).
    public func runningServer(for channel: String) async -> ChannelServer? {
        await registry.lookup(channel)
    }

    /// Channel servers running.
    public var runningCount: Int { get async { await registry.count } }

    /// Channels found with log entries to recover (held by a lease not yet expired, or failed),
    /// and channels recovered so far.
    public var recoveryStats: (pending: Int, recovered: Int) { recovery.withLock { $0 } }

    /// Recovers the channels whose log holds entries but whose server runs nowhere here (a
    /// crashed node's channels nobody has touched since): takes each free lease, writes the
    /// log's tail into the store under its fence, trims, and releases. A lease still held (by
    /// the dead incarnation, until it expires) is tried again on the next sweep. Returns how
    /// many channels remain.
    @discardableResult
    public func recoverOrphans() async -> Int {
        guard let channels = try? await log.channelsWithEntries() else { return recoveryStats.pending }
        let holder = identity.description
        var remaining = 0, recovered = 0
        for channel in channels where await registry.lookup(channel) == nil {
            guard let fence = try? await leases.acquire(.channel(channel), holder: holder, ttl: settings.leaseTTL) else {
                remaining += 1
                continue
            }
            do {
                if try await store.claim(channel: channel, fence: fence) {
                    _ = try await ChannelServer.recover(channel, fence: fence, log: log, store: store)
                    recovered += 1
                } else {
                    logger.error("cannot recover a channel: the store names a newer owner", metadata: ["channel": "\(channel)"])
                }
            } catch {
                remaining += 1
                logger.warning("recovering a channel's log failed; retrying", metadata: ["channel": "\(channel)", "error": "\(error)"])
            }
            try? await leases.release(.channel(channel), holder: holder)
        }
        if recovered > 0 { logger.info("recovered channels' logs into the store", metadata: ["channels": "\(recovered)"]) }
        recovery.withLock { $0 = (remaining, $0.recovered + recovered) }
        return remaining
    }

    /// Two loops until graceful shutdown, then every server stops and releases its lease:
    /// renewals (every third of the TTL; only Redis, never waiting on a channel's actor, so a
    /// busy channel cannot make the node lose its leases), and maintenance (every tick: typing
    /// expiry and resync of failed appends; the recovery sweep at start, then every
    /// `recoverySweep`, or every half TTL while some remain; idle servers stopped).
    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.renewalLoop() }
            group.addTask { await self.maintenanceLoop() }
        }
        await registry.stopAll()
    }

    private func renewalLoop() async {
        let interval = settings.leaseTTL * (1.0 / 3.0)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            guard !Task.isShuttingDownGracefully && !Task.isCancelled else { return }
            await renewLeases()
        }
    }

    private func maintenanceLoop() async {
        var untilSweep = Duration.zero
        var untilIdleCheck = settings.leaseTTL
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if untilSweep <= .zero {
                untilSweep = await recoverOrphans() > 0 ? settings.leaseTTL * 0.5 : settings.recoverySweep
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.settings.tick) }
            untilSweep -= settings.tick
            untilIdleCheck -= settings.tick
            if untilIdleCheck <= .zero {
                untilIdleCheck = settings.leaseTTL
                await registry.stopIdle()
            }
            let servers = await registry.runningValues
            await withTaskGroup(of: Void.self) { group in
                for server in servers {
                    group.addTask {
                        await server.expireTyping()
                        await server.resyncIfNeeded()
                    }
                }
            }
        }
    }

    /// Renews every running server's lease at once (the Redis client pipelines them). A lease
    /// another holder has, or that expired, stops its server at once; a renewal that failed
    /// (Redis did not answer) is retried on the next round unless the lease may have run out
    /// by then — a server never runs on a lease it cannot prove.
    private func renewLeases() async {
        let holder = identity.description
        let channels = await registry.runningKeys
        // Children record into a box and return nothing (a group of tuple results crashed the
        // Swift 6.3 runtime under load in a release build: a bad pointer copying a child's result).
        let answers = RenewalAnswers()
        await withTaskGroup(of: Void.self) { group in
            for channel in channels {
                group.addTask { [leases, settings] in
                    let renewed = try? await leases.renew(.channel(channel), holder: holder, ttl: settings.leaseTTL)
                    answers.record(channel, renewed)
                }
            }
        }
        let results = answers.all
        let now = ContinuousClock.now
        let margin = settings.leaseTTL * (1.0 / 3.0)
        var lost: [String] = []
        renewals.withLock { renewed in
            for (channel, result) in results {
                switch result as Bool? {
                case true?: renewed[channel] = now
                case false?: lost.append(channel)
                case nil:
                    // Not answered: keep going only while the lease surely still runs.
                    let last = renewed[channel] ?? now
                    if renewed[channel] == nil { renewed[channel] = now }
                    if now - last + margin >= settings.leaseTTL { lost.append(channel) }
                }
            }
            for channel in renewed.keys where results[channel] == nil { renewed[channel] = nil }
            for channel in lost { renewed[channel] = nil }
        }
        for channel in lost {
            logger.warning("lost the lease of a channel; its server stops", metadata: ["channel": "\(channel)"])
            _ = try? await registry.terminated(channel, abnormal: false)
            // Subscribers get phx_error and nothing more; they rejoin, which starts the
            // server again under a fresh lease and catches them up.
            publisher.close("channel:\(channel)", with: .topicError)
        }
    }

    /// Renewal answers by channel: true renewed, false lost, nil not answered.
    private final class RenewalAnswers: Sendable {
        private let answers = Mutex<[String: Bool?]>([:])
        func record(_ channel: String, _ renewed: Bool?) { answers.withLock { $0[channel] = .some(renewed) } }
        var all: [String: Bool?] { answers.withLock { $0 } }
    }
}
