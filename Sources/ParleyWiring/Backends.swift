import Logging
import ParleyCore
import ParleyDelivery
import ParleyMedia
import ParleyPostgres
import ParleyRedis
import ParleyRuntime

/// The node's connections to Redis and PostgreSQL, its ways out for notifications (webhooks
/// over HTTP, mail over SMTP when configured), and its upload tools (clamd, libvips, ffmpeg).
public struct Backends: Sendable {
    public let redis: RedisClient
    public let postgres: PostgresClient
    /// The job workers' own connections (two): a PostgreSQL that hangs holds their claims, never
    /// the connections the message path, the API and the readiness check use.
    public let jobsPostgres: PostgresClient
    public let redisConfiguration: RedisConfiguration
    public let webhooks: HTTPWebhookSender
    public let mail: SMTPMailSender?
    public let webPush: WebPushSender?
    public let scanner: ClamdScanner
    public let thumbnailer: MediaThumbnailer

    public init(redis: RedisClient, postgres: PostgresClient, jobsPostgres: PostgresClient, webhooks: HTTPWebhookSender,
                mail: SMTPMailSender?, webPush: WebPushSender?, scanner: ClamdScanner, thumbnailer: MediaThumbnailer) {
        self.redis = redis
        self.postgres = postgres
        self.jobsPostgres = jobsPostgres
        redisConfiguration = redis.configuration
        self.webhooks = webhooks
        self.mail = mail
        self.webPush = webPush
        self.scanner = scanner
        self.thumbnailer = thumbnailer
    }

    /// Opens the clients from `configuration`, after checking the URLs parse.
    public static func connect(_ configuration: NodeConfiguration, logger: Logger) throws -> Backends {
        let redisConfiguration = try RedisConfiguration(url: configuration.redisURL, poolSize: configuration.redisPoolSize)
        let postgresConfiguration = try PostgresConfiguration(url: configuration.databaseURL,
                                                              poolSize: configuration.databasePoolSize,
                                                              statementTimeout: configuration.statementTimeout)
        let mail = try configuration.smtpURL.map {
            SMTPMailSender(try SMTPMailSender.Configuration(url: $0, from: configuration.smtpFrom))
        }
        let jobsConfiguration = try PostgresConfiguration(url: configuration.databaseURL, poolSize: 2,
                                                          statementTimeout: configuration.statementTimeout)
        return Backends(redis: RedisClient(redisConfiguration, logger: logger),
                        postgres: PostgresClient(postgresConfiguration, logger: logger),
                        jobsPostgres: PostgresClient(jobsConfiguration, logger: logger),
                        webhooks: HTTPWebhookSender(timeout: configuration.webhookTimeout, policy: configuration.deliveryPolicy), mail: mail,
                        webPush: try configuration.vapidPrivateKey.map {
                            try WebPushSender(privateKey: $0, subject: configuration.vapidSubject, timeout: configuration.webhookTimeout,
                                              policy: configuration.deliveryPolicy)
                        },
                        scanner: try ClamdScanner(url: configuration.clamdURL), thumbnailer: MediaThumbnailer())
    }

    /// Each backend's answer to a ping within `timeout`: nil when it answered, else why not.
    public func check(timeout: Duration) async -> (redis: String?, postgres: String?) {
        async let redisProblem = Self.problem(timeout) { [redis] in try await redis.ping() }
        async let postgresProblem = Self.problem(timeout) { [postgres] in try await postgres.ping() }
        return await (redisProblem, postgresProblem)
    }

    /// The same, as the gateway sees it.
    public var handles: BackendHandles {
        BackendHandles(check: { timeout in
            let (redis, postgres) = await self.check(timeout: timeout)
            return ["redis": redis, "postgres": postgres]
        }, statementsSent: { [postgres] in postgres.statementsSent }, shutdown: { await self.shutdown() })
    }

    public func shutdown() async {
        await webhooks.shutdown()
        await mail?.shutdown()
        await webPush?.shutdown()
        await scanner.shutdown()
        await thumbnailer.shutdown()
        await redis.shutdown()
        await postgres.shutdown()
        await jobsPostgres.shutdown()
    }

    private static func problem(_ timeout: Duration, _ ping: @escaping @Sendable () async throws -> Void) async -> String? {
        do {
            try await withTimeout(timeout, ping)
            return nil
        } catch {
            return "\(error)"
        }
    }
}
