import Logging
import ParleyCore
import ServiceLifecycle

/// Finds or starts the `ChannelServer` of a channel on this node: takes the channel's lease,
/// loads its members and `seq`, and keeps the lease renewed while the server runs. A server
/// whose lease cannot be renewed is dropped (it must not write), its sockets get `phx_error`
/// (Phoenix clients rejoin), and the next request starts it again under a fresh lease. (The cluster's owner routing joins here later.)
public final class ChannelRouter: Service {
    public struct Settings: Sendable {
        public var leaseTTL: Duration
        public var idleTimeout: Duration

        public init(leaseTTL: Duration = .seconds(10), idleTimeout: Duration = .seconds(300)) {
            self.leaseTTL = leaseTTL
            self.idleTimeout = idleTimeout
        }
    }

    public let identity: NodeIdentity
    private let leases: any LeaseStore
    private let settings: Settings
    private let registry: ServiceRegistry<String, ChannelServer>
    private let publisher: any EventPublisher
    private let logger: Logger

    public init(identity: NodeIdentity, leases: any LeaseStore, log: any MessageLog, store: any MessageStore,
                directory: any Directory, sink: any MessageSink, publisher: any EventPublisher,
                settings: Settings = Settings(), logger: Logger = Logger(label: "parley.channels")) {
        self.identity = identity
        self.leases = leases
        self.settings = settings
        self.publisher = publisher
        self.logger = logger
        let holder = identity.description
        registry = ServiceRegistry(policy: .transient, idleTimeout: settings.idleTimeout, start: { channel in
            guard try await leases.acquire(.channel(channel), holder: holder, ttl: settings.leaseTTL) != nil else {
                throw ChannelError.unavailable("channel \(channel) is owned elsewhere; retry shortly")
            }
            do {
                return try await ChannelServer.load(channelID: channel, holder: holder, members: directory.channelMembers(channel),
                                                    log: log, store: store, sink: sink, publisher: publisher)
            } catch {
                try? await leases.release(.channel(channel), holder: holder)
                throw error
            }
        }, stop: { server in
            try? await leases.release(.channel(server.channelID), holder: holder)
        })
    }

    /// The running server of `channel`, started here if needed.
    public func server(for channel: String) async throws -> ChannelServer {
        try await registry.lookupOrStart(channel)
    }

    /// The server of `channel` if one runs (membership changes are applied to it).
    public func runningServer(for channel: String) async -> ChannelServer? {
        await registry.lookup(channel)
    }

    /// Renews the leases of running servers every third of the TTL, stops idle servers, and
    /// releases everything on graceful shutdown.
    public func run() async throws {
        let interval = settings.leaseTTL * (1.0 / 3.0)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            await renewLeases()
            await registry.stopIdle()
        }
        await registry.stopAll()
    }

    private func renewLeases() async {
        for channel in await registry.runningKeys {
            let renewed = (try? await leases.renew(.channel(channel), holder: identity.description, ttl: settings.leaseTTL)) ?? false
            if !renewed {
                logger.warning("lost the lease of a channel; its server stops", metadata: ["channel": "\(channel)"])
                _ = try? await registry.terminated(channel, abnormal: false)
                // Joined clients rejoin, which starts the server again under a fresh lease.
                publisher.publish(.topicError, topic: "channel:\(channel)")
            }
        }
    }
}
