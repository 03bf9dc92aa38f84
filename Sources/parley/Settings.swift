import ArgumentParser
import Foundation
import ParleyCore
import ParleyRuntime

/// Reads a setting: the flag if given, else the `PARLEY_*` environment variable, else the default.
func setting<T: LosslessStringConvertible>(_ flag: T?, _ variable: String, _ fallback: T) throws -> T {
    if let flag { return flag }
    guard let raw = ProcessInfo.processInfo.environment[variable], !raw.isEmpty else { return fallback }
    guard let value = T(raw) else { throw ValidationError("\(variable)='\(raw)' is not a valid \(T.self)") }
    return value
}

/// Where the backends are: shared by every command that talks to them.
struct BackendOptions: ParsableArguments {
    @Option(help: "Redis URL, redis://[:password@]host[:port][/db]. Env PARLEY_REDIS_URL; default redis://127.0.0.1:6380 (cluster/services).")
    var redisURL: String?
    @Option(help: "Redis command connections. Env PARLEY_REDIS_POOL_SIZE; default 4.")
    var redisPoolSize: Int?
    @Option(help: "Prefix of every Redis key and channel. Env PARLEY_REDIS_PREFIX; default parley.")
    var redisPrefix: String?
    @Option(help: "PostgreSQL URL. Env PARLEY_DATABASE_URL; default postgres://parley@127.0.0.1:5433/parley (cluster/services).")
    var databaseURL: String?
    @Option(help: "PostgreSQL connections. Env PARLEY_DATABASE_POOL_SIZE; default 4.")
    var databasePoolSize: Int?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical. Env PARLEY_LOG_LEVEL; default info.")
    var logLevel: String?

    func apply(to configuration: inout NodeConfiguration) throws {
        configuration.redisURL = try setting(redisURL, "PARLEY_REDIS_URL", configuration.redisURL)
        configuration.redisPoolSize = try setting(redisPoolSize, "PARLEY_REDIS_POOL_SIZE", configuration.redisPoolSize)
        configuration.redisPrefix = try setting(redisPrefix, "PARLEY_REDIS_PREFIX", configuration.redisPrefix)
        configuration.databaseURL = try setting(databaseURL, "PARLEY_DATABASE_URL", configuration.databaseURL)
        configuration.databasePoolSize = try setting(databasePoolSize, "PARLEY_DATABASE_POOL_SIZE",
                                                     configuration.databasePoolSize)
        guard configuration.redisPoolSize > 0, configuration.databasePoolSize > 0 else {
            throw ValidationError("pool sizes must be at least 1")
        }
    }

    func resolvedLogLevel() throws -> String {
        let level = try setting(logLevel, "PARLEY_LOG_LEVEL", "info")
        let known = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
        guard known.contains(level) else { throw ValidationError("log level '\(level)' is not one of \(known.joined(separator: ", "))") }
        return level
    }
}

/// The node's own settings.
struct NodeOptions: ParsableArguments {
    @Option(help: "This node's name in the cluster. Env PARLEY_NODE_NAME; default the host name.")
    var nodeName: String?
    @Option(help: "Address to listen on. Env PARLEY_HTTP_HOST; default 127.0.0.1.")
    var httpHost: String?
    @Option(help: "Port for HTTP and WebSocket. Env PARLEY_HTTP_PORT; default 4000.")
    var httpPort: Int?
    @Option(help: "Apply migrations at start (true/false). Env PARLEY_MIGRATE_ON_START; default true.")
    var migrateOnStart: Bool?
    @Option(help: "Secret that signs client tokens, 32+ bytes, the same on every node. Env PARLEY_TOKEN_SECRET; required (see --dev).")
    var tokenSecret: String?
    @Flag(help: "Development only: without a token secret, make up a random one (tokens then die with the process).")
    var dev = false
    @Option(help: "bcrypt cost of password hashes. Env PARLEY_BCRYPT_COST; default 12.")
    var bcryptCost: Int?
    @Option(help: "Messages per PostgreSQL batch. Env PARLEY_BATCH_SIZE; default 10.")
    var batchSize: Int?
    @Option(help: "Longest wait before a partial batch is written, ms. Env PARLEY_BATCH_TIMEOUT_MS; default 5000.")
    var batchTimeoutMs: Int?
    @Option(help: "Channel lease TTL, ms: a dead owner's channels move within about this long. Env PARLEY_LEASE_TTL_MS; default 2000.")
    var leaseTtlMs: Int?
    @Option(help: "Heartbeat interval, ms. Env PARLEY_HEARTBEAT_INTERVAL_MS; default 1000.")
    var heartbeatIntervalMs: Int?
    @Option(help: "Heartbeat TTL, ms: a silent node leaves the ring (and its presence is reaped) after this. Env PARLEY_HEARTBEAT_TTL_MS; default 3000.")
    var heartbeatTtlMs: Int?
    @Option(help: "How long a write keeps trying to reach its channel's owner before `unavailable`, ms. Env PARLEY_REQUEST_DEADLINE_MS; default 10000.")
    var requestDeadlineMs: Int?
    @Option(help: "On SIGTERM a node closes its sockets spread over this long, after handing off its channels, ms. Env PARLEY_DRAIN_WINDOW_MS; default 10000.")
    var drainWindowMs: Int?
    @Option(help: "On SIGTERM a node exits after this long at the latest, drained or not, ms. Env PARLEY_SHUTDOWN_DEADLINE_MS; default 30000.")
    var shutdownDeadlineMs: Int?
    @Option(help: "Close a socket silent this long (no frame, not even a heartbeat), ms. Env PARLEY_SOCKET_TIMEOUT_MS; default 60000.")
    var socketTimeoutMs: Int?
    @Option(help: "A member idle this long on all sockets is away, ms. Env PARLEY_AWAY_AFTER_MS; default 300000.")
    var awayAfterMs: Int?
    @Option(help: "Frames that may wait for one socket before a client too slow to read is closed (1008). Env PARLEY_OUTBOX_CAPACITY; default 512.")
    var outboxCapacity: Int?

    @Option(help: "Accepted messages that may wait for PostgreSQL; past it new ones get `unavailable`. Env PARLEY_MAX_PENDING_MESSAGES; default 100000.")
    var maxPendingMessages: Int?
    @Option(help: "Channel servers one node runs at most. Env PARLEY_MAX_CHANNELS; default 10000.")
    var maxChannels: Int?
    @Option(help: "PostgreSQL cancels a statement running longer, ms. Env PARLEY_STATEMENT_TIMEOUT_MS; default 10000.")
    var statementTimeoutMs: Int?
    @Option(help: "Sign-ups and sign-ins per minute per client address and per email. Env PARLEY_AUTH_PER_MINUTE; default 30.")
    var authPerMinute: Int?
    @Option(help: "Channel joins per second per user (ten times that per address). Env PARLEY_JOINS_PER_SECOND; default 20.")
    var joinsPerSecond: Int?
    @Option(help: "A recipient's notifications within this long go out as one, ms. Env PARLEY_NOTIFICATION_WINDOW_MS; default 30000.")
    var notificationWindowMs: Int?
    @Option(help: "Notification jobs one node runs at once. Env PARLEY_NOTIFICATION_CONCURRENCY; default 10.")
    var notificationConcurrency: Int?
    @Option(help: "Attempts of a webhook or email delivery before it is dead. Env PARLEY_NOTIFICATION_ATTEMPTS; default 8.")
    var notificationAttempts: Int?
    @Option(help: "A job whose node stops answering is retried by another after this long, ms. Env PARLEY_JOB_VISIBILITY_MS; default 30000.")
    var jobVisibilityMs: Int?
    @Option(help: "How often an idle node polls the job queue, ms. Env PARLEY_JOB_POLL_MS; default 250.")
    var jobPollMs: Int?
    @Option(help: "SMTP server for notification emails, smtp://host:port (no TLS or AUTH: a local relay). Env PARLEY_SMTP_URL; default none (no email).")
    var smtpURL: String?
    @Option(help: "The From of notification emails. Env PARLEY_SMTP_FROM; default Parley <parley@localhost>.")
    var smtpFrom: String?
    @Option(help: "How long a webhook receiver has to answer, ms. Env PARLEY_WEBHOOK_TIMEOUT_MS; default 10000.")
    var webhookTimeoutMs: Int?
    @Option(help: "Networks besides the public internet that webhooks and push endpoints (URLs users choose) may reach, e.g. 10.1.0.0/16,fd00::/8. Env PARLEY_DELIVERY_ALLOWED_NETWORKS; default none: loopback, private, link-local and other special addresses are refused.")
    var deliveryAllowedNetworks: String?
    @Option(help: "Folder of uploaded files, shared by every node. Env PARLEY_BLOB_DIR; default var/blobs.")
    var blobDir: String?
    @Option(help: "Largest upload, bytes. Env PARLEY_UPLOAD_MAX_BYTES; default 26214400 (25 MiB).")
    var uploadMaxBytes: Int?
    @Option(help: "Accepted upload types, comma-separated. Env PARLEY_UPLOAD_TYPES; default images, videos, PDF, text.")
    var uploadTypes: String?
    @Option(help: "Upload jobs one node runs at once. Env PARLEY_UPLOAD_CONCURRENCY; default 5.")
    var uploadConcurrency: Int?
    @Option(help: "ClamAV's clamd, tcp://host:port. Env PARLEY_CLAMD_URL; default tcp://127.0.0.1:3311 (cluster/services).")
    var clamdURL: String?
    @Option(help: "Thumbnails fit in a square of this many pixels. Env PARLEY_THUMBNAIL_SIZE; default 320.")
    var thumbnailSize: Int?
    @Option(help: "VAPID private key signing Web Push (base64url; `parley vapid-key` makes one), the same on every node. Env PARLEY_VAPID_PRIVATE_KEY; default none (no Web Push).")
    var vapidPrivateKey: String?
    @Option(help: "Contact given to push services, mailto: or https:. Env PARLEY_VAPID_SUBJECT; default mailto:admin@localhost.")
    var vapidSubject: String?

    func apply(to configuration: inout NodeConfiguration) throws {
        configuration.nodeName = try setting(nodeName, "PARLEY_NODE_NAME", ProcessInfo.processInfo.hostName)
        configuration.httpHost = try setting(httpHost, "PARLEY_HTTP_HOST", configuration.httpHost)
        configuration.httpPort = try setting(httpPort, "PARLEY_HTTP_PORT", configuration.httpPort)
        configuration.migrateOnStart = try setting(migrateOnStart, "PARLEY_MIGRATE_ON_START", configuration.migrateOnStart)
        configuration.tokenSecret = try setting(tokenSecret, "PARLEY_TOKEN_SECRET", configuration.tokenSecret)
        configuration.bcryptCost = try setting(bcryptCost, "PARLEY_BCRYPT_COST", configuration.bcryptCost)
        configuration.batchSize = try setting(batchSize, "PARLEY_BATCH_SIZE", configuration.batchSize)
        configuration.batchDelay = .milliseconds(try setting(batchTimeoutMs, "PARLEY_BATCH_TIMEOUT_MS", 5000))
        configuration.leaseTTL = .milliseconds(try setting(leaseTtlMs, "PARLEY_LEASE_TTL_MS", 2000))
        configuration.heartbeatInterval = .milliseconds(try setting(heartbeatIntervalMs, "PARLEY_HEARTBEAT_INTERVAL_MS", 1000))
        configuration.heartbeatTTL = .milliseconds(try setting(heartbeatTtlMs, "PARLEY_HEARTBEAT_TTL_MS", 3000))
        configuration.requestDeadline = .milliseconds(try setting(requestDeadlineMs, "PARLEY_REQUEST_DEADLINE_MS", 10_000))
        guard configuration.heartbeatInterval >= .milliseconds(100), configuration.heartbeatTTL >= configuration.heartbeatInterval * 2,
              configuration.requestDeadline >= .milliseconds(100) else {
            throw ValidationError("the heartbeat interval must be at least 100 ms, its TTL at least twice the interval, the request deadline at least 100 ms")
        }
        configuration.drainWindow = .milliseconds(try setting(drainWindowMs, "PARLEY_DRAIN_WINDOW_MS", 10_000))
        configuration.shutdownDeadline = .milliseconds(try setting(shutdownDeadlineMs, "PARLEY_SHUTDOWN_DEADLINE_MS", 30_000))
        guard configuration.drainWindow >= .zero, configuration.shutdownDeadline > configuration.drainWindow else {
            throw ValidationError("the drain window must not be negative, and the shutdown deadline must be longer than it")
        }
        configuration.socketTimeout = .milliseconds(try setting(socketTimeoutMs, "PARLEY_SOCKET_TIMEOUT_MS", 60000))
        configuration.awayAfter = .milliseconds(try setting(awayAfterMs, "PARLEY_AWAY_AFTER_MS", 300_000))
        configuration.outboxCapacity = try setting(outboxCapacity, "PARLEY_OUTBOX_CAPACITY", configuration.outboxCapacity)
        configuration.maximumPending = try setting(maxPendingMessages, "PARLEY_MAX_PENDING_MESSAGES", configuration.maximumPending)
        configuration.maximumChannels = try setting(maxChannels, "PARLEY_MAX_CHANNELS", configuration.maximumChannels)
        configuration.statementTimeout = .milliseconds(try setting(statementTimeoutMs, "PARLEY_STATEMENT_TIMEOUT_MS", 10_000))
        configuration.authPerMinute = try setting(authPerMinute, "PARLEY_AUTH_PER_MINUTE", configuration.authPerMinute)
        configuration.joinsPerSecond = try setting(joinsPerSecond, "PARLEY_JOINS_PER_SECOND", configuration.joinsPerSecond)
        guard configuration.maximumPending >= 100, configuration.maximumChannels >= 1, configuration.authPerMinute >= 1,
              configuration.joinsPerSecond >= 1, configuration.statementTimeout >= .milliseconds(100) else {
            throw ValidationError("max pending messages ≥ 100, max channels ≥ 1, auth per minute ≥ 1, joins per second ≥ 1, statement timeout ≥ 100 ms")
        }
        configuration.notificationWindow = .milliseconds(try setting(notificationWindowMs, "PARLEY_NOTIFICATION_WINDOW_MS", 30_000))
        configuration.notificationConcurrency = try setting(notificationConcurrency, "PARLEY_NOTIFICATION_CONCURRENCY",
                                                            configuration.notificationConcurrency)
        configuration.notificationAttempts = try setting(notificationAttempts, "PARLEY_NOTIFICATION_ATTEMPTS", configuration.notificationAttempts)
        configuration.jobVisibility = .milliseconds(try setting(jobVisibilityMs, "PARLEY_JOB_VISIBILITY_MS", 30_000))
        configuration.jobPoll = .milliseconds(try setting(jobPollMs, "PARLEY_JOB_POLL_MS", 250))
        let smtp = try setting(smtpURL, "PARLEY_SMTP_URL", "")
        configuration.smtpURL = smtp.isEmpty ? nil : smtp
        configuration.smtpFrom = try setting(smtpFrom, "PARLEY_SMTP_FROM", configuration.smtpFrom)
        configuration.webhookTimeout = .milliseconds(try setting(webhookTimeoutMs, "PARLEY_WEBHOOK_TIMEOUT_MS", 10_000))
        guard configuration.notificationWindow >= .zero, configuration.notificationConcurrency >= 1, configuration.notificationAttempts >= 1,
              configuration.jobVisibility >= .seconds(1), configuration.jobPoll >= .milliseconds(10),
              configuration.webhookTimeout >= .milliseconds(100) else {
            throw ValidationError("notification window ≥ 0, concurrency ≥ 1, attempts ≥ 1, job visibility ≥ 1000 ms, job poll ≥ 10 ms, webhook timeout ≥ 100 ms")
        }
        switch OutboundAddressPolicy.networks(try setting(deliveryAllowedNetworks, "PARLEY_DELIVERY_ALLOWED_NETWORKS", "")) {
        case .success(let networks): configuration.deliveryPolicy = OutboundAddressPolicy(allowed: networks)
        case .failure(let invalid): throw ValidationError("PARLEY_DELIVERY_ALLOWED_NETWORKS: \(invalid)")
        }
        configuration.blobDirectory = try setting(blobDir, "PARLEY_BLOB_DIR", configuration.blobDirectory)
        configuration.uploadPolicy.maximumBytes = try setting(uploadMaxBytes, "PARLEY_UPLOAD_MAX_BYTES", configuration.uploadPolicy.maximumBytes)
        let types = try setting(uploadTypes, "PARLEY_UPLOAD_TYPES", "")
        if !types.isEmpty {
            configuration.uploadPolicy.allowedTypes = Set(types.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() })
        }
        configuration.uploadConcurrency = try setting(uploadConcurrency, "PARLEY_UPLOAD_CONCURRENCY", configuration.uploadConcurrency)
        configuration.clamdURL = try setting(clamdURL, "PARLEY_CLAMD_URL", configuration.clamdURL)
        configuration.thumbnailSize = try setting(thumbnailSize, "PARLEY_THUMBNAIL_SIZE", configuration.thumbnailSize)
        let vapid = try setting(vapidPrivateKey, "PARLEY_VAPID_PRIVATE_KEY", "")
        configuration.vapidPrivateKey = vapid.isEmpty ? nil : vapid
        configuration.vapidSubject = try setting(vapidSubject, "PARLEY_VAPID_SUBJECT", configuration.vapidSubject)
        guard configuration.vapidSubject.hasPrefix("mailto:") || configuration.vapidSubject.hasPrefix("https:") else {
            throw ValidationError("the VAPID subject must be a mailto: or https: URL")
        }
        guard configuration.uploadPolicy.maximumBytes >= 1024, configuration.uploadPolicy.maximumBytes <= 1 << 30,
              configuration.uploadConcurrency >= 1, (16...4096).contains(configuration.thumbnailSize) else {
            throw ValidationError("upload size limit 1 KiB…1 GiB, upload concurrency ≥ 1, thumbnail size 16…4096")
        }
        guard configuration.outboxCapacity >= 8 else { throw ValidationError("the outbox capacity must be at least 8 frames") }
        guard configuration.socketTimeout >= .seconds(1), configuration.awayAfter >= .seconds(1) else {
            throw ValidationError("the socket timeout and the away delay must be at least 1000 ms")
        }
        if configuration.tokenSecret.isEmpty && dev {
            configuration.tokenSecret = (0..<4).map { _ in UInt64.random(in: .min ... .max) }.map { String($0, radix: 16) }.joined()
        }
        guard !configuration.tokenSecret.isEmpty else {
            throw ValidationError("no token secret: set PARLEY_TOKEN_SECRET (or --token-secret) to 32 or more bytes, the same on every node; "
                                  + "`parley serve --dev` makes up a throwaway one for development")
        }
        guard configuration.tokenSecret.utf8.count >= 32 else { throw ValidationError("the token secret must be at least 32 bytes") }
        guard (4...31).contains(configuration.bcryptCost) else { throw ValidationError("bcrypt cost must be 4...31") }
        guard configuration.batchSize > 0, configuration.batchDelay > .zero, configuration.leaseTTL >= .milliseconds(500) else {
            throw ValidationError("batch size and timeout must be positive, the lease TTL at least 500 ms")
        }
        guard (0...65535).contains(configuration.httpPort) else {
            throw ValidationError("HTTP port \(configuration.httpPort) is out of range")
        }
    }
}
