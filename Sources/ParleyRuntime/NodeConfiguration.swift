import ParleyCore

/// Everything a node is configured with. The `parley` executable fills it from flags and
/// `PARLEY_*` environment variables (see `parley serve --help` and the README).
public struct NodeConfiguration: Sendable {
    /// This node's name in the cluster; with the per-boot incarnation it is the node's identity.
    public var nodeName: String
    public var httpHost: String
    public var httpPort: Int
    public var redisURL: String
    public var redisPoolSize: Int
    /// The prefix of every Redis key and pub/sub channel.
    public var redisPrefix: String
    public var databaseURL: String
    public var databasePoolSize: Int
    /// Apply migrations at start.
    public var migrateOnStart: Bool
    /// The longest a readiness check waits for a backend.
    public var readinessTimeout: Duration
    /// Signs client tokens; every node of a cluster needs the same one (32 bytes or more). There
    /// is no default: a built-in secret would let anyone forge tokens.
    public var tokenSecret: String
    public var tokenLifetime: Duration
    public var bcryptCost: Int
    /// The message buffer writes at this many messages…
    public var batchSize: Int
    /// …or this long after the first of a batch, whichever comes first.
    public var batchDelay: Duration
    public var leaseTTL: Duration
    /// A socket that sends nothing (not even a heartbeat; Phoenix clients send one every 30 s)
    /// for this long is closed, and its presence goes with it.
    public var socketTimeout: Duration
    /// A member whose sockets have all been idle this long is away.
    public var awayAfter: Duration
    /// Frames a socket may have waiting to be written; a client slower than that is
    /// disconnected (1008) rather than allowed to grow the node's memory.
    public var outboxCapacity = 512
    /// Accepted messages that may wait for PostgreSQL; past it new messages are refused
    /// (`unavailable`) rather than held in memory.
    public var maximumPending = 100_000
    /// Channel servers one node runs at most.
    public var maximumChannels = 10_000
    /// Sign-ups and sign-ins per minute from one address, and for one email.
    public var authPerMinute = 30
    /// Channel joins per second of one user (ten times that from one address).
    public var joinsPerSecond = 20
    /// How often the node writes its heartbeat, and how long one lives (a dead node leaves the
    /// ring, and its presence is reaped, at most this long after its last heartbeat).
    public var heartbeatInterval: Duration = .seconds(1)
    public var heartbeatTTL: Duration = .seconds(3)
    /// How long a write keeps trying to reach the channel's owner (through handoffs and
    /// failovers) before it is answered `unavailable`.
    public var requestDeadline: Duration = .seconds(10)
    /// On SIGTERM: the sockets close spread over this window, after the channels moved.
    public var drainWindow: Duration = .seconds(10)
    /// On SIGTERM: the process exits after this long at the latest.
    public var shutdownDeadline: Duration = .seconds(30)
    /// PostgreSQL cancels a statement of the node's running longer than this.
    public var statementTimeout: Duration = .seconds(10)
    /// A recipient's notifications of this long are sent as one.
    public var notificationWindow: Duration = .seconds(30)
    /// Notification jobs one node runs at once.
    public var notificationConcurrency = 10
    /// Attempts of a webhook or email delivery before it is dead.
    public var notificationAttempts = 8
    /// A job claimed by a node that stops answering is taken by another after this long.
    public var jobVisibility: Duration = .seconds(30)
    /// How often an idle node asks the job queue for work.
    public var jobPoll: Duration = .milliseconds(250)
    /// Where notification emails go (`smtp://host:port`); nil: no email.
    public var smtpURL: String?
    public var smtpFrom = "Parley <parley@localhost>"
    /// How long a webhook receiver has to answer.
    public var webhookTimeout: Duration = .seconds(10)
    /// Where webhooks and pushes (URLs users choose) may go: public addresses, and these networks.
    public var deliveryPolicy = OutboundAddressPolicy()
    /// The folder of uploaded files, shared by every node.
    public var blobDirectory = "var/blobs"
    public var uploadPolicy = UploadPolicy()
    /// Upload jobs one node runs at once.
    public var uploadConcurrency = 5
    /// ClamAV's clamd (`tcp://host:port`).
    public var clamdURL = "tcp://127.0.0.1:3311"
    /// Thumbnails fit in a square of this many pixels.
    public var thumbnailSize = 320
    /// The VAPID private key (base64url P-256 scalar) that signs Web Push requests; nil: no Web Push.
    public var vapidPrivateKey: String?
    /// Who push services may contact about this server's pushes (`mailto:` or `https:`).
    public var vapidSubject = "mailto:admin@localhost"

    public init(nodeName: String = "node-1", httpHost: String = "127.0.0.1", httpPort: Int = 4000,
                redisURL: String = "redis://127.0.0.1:6380", redisPoolSize: Int = 4, redisPrefix: String = "parley",
                databaseURL: String = "postgres://parley@127.0.0.1:5433/parley", databasePoolSize: Int = 4,
                migrateOnStart: Bool = true, readinessTimeout: Duration = .seconds(2),
                tokenSecret: String = "", tokenLifetime: Duration = .seconds(7 * 24 * 3600),
                bcryptCost: Int = 12, batchSize: Int = 10, batchDelay: Duration = .seconds(5), leaseTTL: Duration = .seconds(2),
                socketTimeout: Duration = .seconds(60), awayAfter: Duration = .seconds(300)) {
        self.nodeName = nodeName
        self.httpHost = httpHost
        self.httpPort = httpPort
        self.redisURL = redisURL
        self.redisPoolSize = redisPoolSize
        self.redisPrefix = redisPrefix
        self.databaseURL = databaseURL
        self.databasePoolSize = databasePoolSize
        self.migrateOnStart = migrateOnStart
        self.readinessTimeout = readinessTimeout
        self.tokenSecret = tokenSecret
        self.tokenLifetime = tokenLifetime
        self.bcryptCost = bcryptCost
        self.batchSize = batchSize
        self.batchDelay = batchDelay
        self.leaseTTL = leaseTTL
        self.socketTimeout = socketTimeout
        self.awayAfter = awayAfter
    }
}
