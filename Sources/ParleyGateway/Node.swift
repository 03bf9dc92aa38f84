import Logging
import ParleyCore
import ParleyRuntime

/// Everything the gateway serves from on one node.
public struct Node: Sendable {
    public let configuration: NodeConfiguration
    public let identity: NodeIdentity
    public let backends: Backends
    public let directory: any Directory
    public let channels: ChannelRouter
    public let broadcaster: Broadcaster
    public let buffer: MessageBuffer
    public let presence: PresenceTracker
    public let tokens: TokenIssuer
    public let passwords: PasswordHasher
    public let limits: PayloadLimits
    /// Rates of sign-ins, sign-ups and joins, per user and per address.
    public let requests: RequestLimiter
    public let metrics: NodeMetrics
    /// The open sockets; closes those silent for the socket timeout.
    public let sockets: SocketSweeper
    public let logger: Logger

    public init(configuration: NodeConfiguration, identity: NodeIdentity, backends: Backends, directory: any Directory,
                channels: ChannelRouter, broadcaster: Broadcaster, buffer: MessageBuffer, presence: PresenceTracker, tokens: TokenIssuer,
                passwords: PasswordHasher, limits: PayloadLimits = PayloadLimits(), logger: Logger) {
        self.configuration = configuration
        self.identity = identity
        self.backends = backends
        self.directory = directory
        self.channels = channels
        self.broadcaster = broadcaster
        self.buffer = buffer
        self.presence = presence
        self.tokens = tokens
        self.passwords = passwords
        self.limits = limits
        requests = RequestLimiter(authPerMinute: configuration.authPerMinute, joinsPerSecond: configuration.joinsPerSecond)
        let metrics = NodeMetrics(identity: identity)
        self.metrics = metrics
        sockets = SocketSweeper(timeout: configuration.socketTimeout) { metrics.socketTimeouts.increment() }
        self.logger = logger
    }
}
