import DequeModule
import Logging
import NIOPosix
import ParleyCore
import Synchronization

/// An async Redis client over a small bounded pool of blocking hiredis connections.
///
/// Every blocking call runs on the client's own `NIOThreadPool`, one thread per pooled
/// connection, so Swift's cooperative pool never waits on a socket. When Redis goes away,
/// calls fail fast with `RedisError.unavailable` and the pool reconnects with backoff
/// (see `ConnectionPool`).
///
/// Single commands from concurrent callers are pipelined automatically: while every pooled
/// connection is busy, new commands queue, and the next free connection sends all of them in
/// one write (one thread hop and one round trip for many callers). An idle client sends a
/// command at once.
public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    private let threadPool: NIOThreadPool
    private let pool: ConnectionPool<RedisConnection>
    private let queue = Mutex<(waiting: Deque<(RedisCommand, CheckedContinuation<RedisValue, any Error>)>, senders: Int)>(([], 0))
    /// The most commands one automatic pipeline carries.
    private static let largestPipeline = 256
    /// Commands that may wait for a connection; one more fails at once (`unavailable`).
    public static let maximumQueued = 16_384

    public init(_ configuration: RedisConfiguration, clock: any ParleyClock = SystemClock(),
                logger: Logger = Logger(label: "parley.redis")) {
        self.configuration = configuration
        let threadPool = NIOThreadPool(numberOfThreads: configuration.poolSize)
        threadPool.start()
        self.threadPool = threadPool
        let endpoint = configuration.endpoint
        pool = ConnectionPool(
            size: configuration.poolSize, backoff: configuration.reconnectBackoff, clock: clock,
            connect: {
                try await threadPool.runIfActive {
                    try RedisConnection.connect(configuration, readTimeout: configuration.commandTimeout)
                }
            },
            unavailable: { RedisError.unavailable(endpoint: endpoint, reason: $0) },
            shutdownError: RedisError.shutdown,
            onEvent: ConnectionPoolEvent.logger(logger, service: "redis", endpoint: endpoint))
    }

    /// Runs one command (pipelined with other callers' when the pool is busy); an error
    /// reply is thrown as `RedisError.reply`.
    @discardableResult
    public func execute(_ command: RedisCommand) async throws -> RedisValue {
        let reply = try await withCheckedThrowingContinuation { continuation in
            let start = queue.withLock { queue -> Bool? in
                guard queue.waiting.count < Self.maximumQueued else { return nil }
                queue.waiting.append((command, continuation))
                guard queue.senders < pool.size else { return false }
                queue.senders += 1
                return true
            }
            switch start {
            case nil:
                continuation.resume(throwing: RedisError.unavailable(endpoint: configuration.endpoint,
                                                                     reason: "\(Self.maximumQueued) commands already wait"))
            case true?: Task { await self.sendQueued() }
            case false?: break
            }
        }
        if case .error(let message) = reply { throw RedisError.reply(message) }
        return reply
    }

    /// Sends queued commands, as many as one pipeline takes, until none are left.
    private func sendQueued() async {
        while true {
            let batch = queue.withLock { queue -> [(RedisCommand, CheckedContinuation<RedisValue, any Error>)] in
                guard !queue.waiting.isEmpty else {
                    queue.senders -= 1
                    return []
                }
                let count = min(queue.waiting.count, Self.largestPipeline)
                defer { queue.waiting.removeFirst(count) }
                return Array(queue.waiting.prefix(count))
            }
            guard !batch.isEmpty else { return }
            do {
                let replies = try await pipeline(batch.map(\.0))
                for ((_, continuation), reply) in zip(batch, replies) { continuation.resume(returning: reply) }
            } catch {
                for (_, continuation) in batch { continuation.resume(throwing: error) }
            }
        }
    }

    @discardableResult
    public func execute(_ name: String, _ arguments: any RedisArgument...) async throws -> RedisValue {
        try await execute(RedisCommand(name, arguments))
    }

    /// Runs `script` by SHA, loading it first if Redis does not know it.
    @discardableResult
    public func evaluate(_ script: RedisScript, keys: [String], arguments: [any RedisArgument] = []) async throws -> RedisValue {
        try await execute(.evalSHA(script, keys: keys, arguments: arguments))
    }

    /// Sends all `commands` in one write and returns their replies in order: one round trip.
    /// Error replies stay in the result as `.error`, one per failed command.
    ///
    /// Scripts this connection has not loaded yet are loaded in the same write, ahead of the
    /// commands, so they run in order. If Redis lost them anyway (`SCRIPT FLUSH` on a live
    /// server), the `EVALSHA`s answered `NOSCRIPT` are sent again after loading: they then
    /// run after the pipeline's other commands.
    public func pipeline(_ commands: [RedisCommand]) async throws -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        return try await pool.withConnection { connection in
            let unloaded = Set(commands.compactMap(\.script)).filter { !connection.loadedScripts.contains($0.sha) }
            let loads = unloaded.map { RedisCommand("SCRIPT", "LOAD", $0.source) }
            var replies = try await threadPool.runIfActive { try connection.execute(loads + commands) }
            try Self.checkLoads(replies.prefix(loads.count))
            connection.loadedScripts.formUnion(unloaded.map(\.sha))
            replies.removeFirst(loads.count)

            let missing = replies.indices.filter { replies[$0].isNoScript && commands[$0].script != nil }
            guard !missing.isEmpty else { return replies }
            let reloads = Set(missing.compactMap { commands[$0].script }).map { RedisCommand("SCRIPT", "LOAD", $0.source) }
            let retried = try await threadPool.runIfActive {
                try connection.execute(reloads + missing.map { commands[$0] })
            }
            try Self.checkLoads(retried.prefix(reloads.count))
            for (offset, index) in missing.enumerated() {
                replies[index] = retried[reloads.count + offset]
            }
            return replies
        }
    }

    private static func checkLoads(_ replies: ArraySlice<RedisValue>) throws {
        if let failure = replies.first(where: { $0.errorMessage != nil }) {
            throw RedisError.reply("script load failed: \(failure.errorMessage ?? "")")
        }
    }

    /// Answers when Redis does (`PING`).
    public func ping() async throws {
        guard try await execute("PING") == .status("PONG") else {
            throw RedisError.unexpectedReply("PING did not answer PONG")
        }
    }

    /// Closes every connection and fails later calls with `.shutdown`.
    public func shutdown() async {
        pool.shutdown()
        try? await threadPool.shutdownGracefully()
    }
}
