import CHiredis
import ParleyCore
#if canImport(Glibc)
import Glibc
#endif

/// One blocking hiredis connection.
///
/// Every method blocks the calling thread, so it is only ever called from a thread of the
/// client's own `NIOThreadPool` (or the subscriber's thread), never from Swift's cooperative
/// pool. A connection is used by one thread at a time: the pool hands it over.
final class RedisConnection: PooledConnection, @unchecked Sendable {
    private let context: UnsafeMutablePointer<redisContext>
    let endpoint: String
    /// Set once a call fails at the connection level; a broken connection is never reused.
    private(set) var isBroken = false
    /// SHAs of the scripts loaded through this connection (reset when Redis restarts,
    /// because a restart means a new connection).
    var loadedScripts: Set<String> = []

    private init(context: UnsafeMutablePointer<redisContext>, endpoint: String) {
        self.context = context
        self.endpoint = endpoint
    }

    deinit { redisFree(context) }

    /// Connects, authenticates and selects the database, or throws `connectionFailed`.
    /// With a `readTimeout`, a reply slower than that breaks the connection.
    static func connect(_ configuration: RedisConfiguration, readTimeout: Duration?) throws -> RedisConnection {
        let endpoint = configuration.endpoint
        guard let context = redisConnectWithTimeout(configuration.host, Int32(configuration.port),
                                                    timeval(configuration.connectTimeout)) else {
            throw RedisError.connectionFailed(endpoint: endpoint, reason: "out of memory")
        }
        if context.pointee.err != 0 {
            let reason = errorString(context)
            redisFree(context)
            throw RedisError.connectionFailed(endpoint: endpoint, reason: reason)
        }
        let connection = RedisConnection(context: context, endpoint: endpoint)
        if let readTimeout {
            redisSetTimeout(context, timeval(readTimeout))
        }
        do {
            if let password = configuration.password {
                let auth = configuration.username.map { RedisCommand("AUTH", $0, password) }
                    ?? RedisCommand("AUTH", password)
                if case .error(let message) = try connection.execute([auth])[0] {
                    throw RedisError.connectionFailed(endpoint: endpoint, reason: "authentication failed: \(message)")
                }
            }
            if configuration.database != 0,
               case .error(let message) = try connection.execute([RedisCommand("SELECT", configuration.database)])[0] {
                throw RedisError.connectionFailed(endpoint: endpoint,
                                                  reason: "cannot select database \(configuration.database): \(message)")
            }
        } catch let error as RedisError {
            if case .io(_, let reason) = error {
                throw RedisError.connectionFailed(endpoint: endpoint, reason: reason)
            }
            throw error
        }
        return connection
    }

    /// Sends all `commands` in one write and reads one reply for each, in order (a pipeline).
    /// Error replies come back as `.error` values; a connection failure throws `io`.
    func execute(_ commands: [RedisCommand]) throws -> [RedisValue] {
        guard !isBroken else { throw RedisError.io(endpoint: endpoint, reason: "connection already broken") }
        for command in commands {
            try append(command)
        }
        var replies: [RedisValue] = []
        replies.reserveCapacity(commands.count)
        for _ in commands {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
                throw fail()
            }
            replies.append(RedisValue(reply: raw.assumingMemoryBound(to: redisReply.self)))
            freeReplyObject(raw)
        }
        return replies
    }

    /// Queues `command` in the output buffer without writing it.
    func append(_ command: RedisCommand) throws {
        let status = command.withArgv { argc, argv, lengths in
            redisAppendCommandArgv(context, argc, argv, lengths)
        }
        guard status == REDIS_OK else { throw fail() }
    }

    /// Writes the whole output buffer (blocking).
    func flush() throws {
        var done: Int32 = 0
        while done == 0 {
            guard redisBufferWrite(context, &done) == REDIS_OK else { throw fail() }
        }
    }

    /// Reads what the socket has now (call only when it is readable) into the reader.
    func readAvailable() throws {
        guard redisBufferRead(context) == REDIS_OK else { throw fail() }
    }

    /// The next complete reply already read, if any.
    func nextBufferedReply() throws -> RedisValue? {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReplyFromReader(context, &raw) == REDIS_OK else { throw fail() }
        guard let raw else { return nil }
        defer { freeReplyObject(raw) }
        return RedisValue(reply: raw.assumingMemoryBound(to: redisReply.self))
    }

    /// An idle command connection has nothing to read; if its socket is readable, the
    /// server closed it.
    func isStillUsable() -> Bool {
        guard !isBroken else { return false }
        var descriptor = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
        return Glibc.poll(&descriptor, 1, 0) == 0
    }

    /// The socket, for `poll`.
    var fileDescriptor: Int32 { context.pointee.fd }

    private func fail() -> RedisError {
        isBroken = true
        return RedisError.io(endpoint: endpoint, reason: Self.errorString(context))
    }

    private static func errorString(_ context: UnsafeMutablePointer<redisContext>) -> String {
        let message = withUnsafeBytes(of: context.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if !message.isEmpty { return message }
        switch context.pointee.err {
        case REDIS_ERR_EOF: return "server closed the connection"
        case REDIS_ERR_IO: return "I/O error (errno \(errno))"
        default: return "error \(context.pointee.err)"
        }
    }
}

private func timeval(_ duration: Duration) -> Glibc.timeval {
    let microseconds = max(duration.nanoseconds / 1000, 1000)
    return Glibc.timeval(tv_sec: Int(microseconds / 1_000_000), tv_usec: Int(microseconds % 1_000_000))
}

extension RedisCommand {
    /// Calls `body` with the C argv form of the command (pointers valid only inside `body`).
    func withArgv<R>(_ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> R) -> R {
        let total = arguments.reduce(0) { $0 + $1.count }
        var storage = [UInt8]()
        storage.reserveCapacity(max(total, 1))
        var offsets: [Int] = []
        var lengths: [Int] = []
        for argument in arguments {
            offsets.append(storage.count)
            lengths.append(argument.count)
            storage.append(contentsOf: argument)
        }
        if storage.isEmpty { storage.append(0) }
        return storage.withUnsafeBufferPointer { bytes in
            let base = UnsafeRawPointer(bytes.baseAddress!).assumingMemoryBound(to: CChar.self)
            var argv: [UnsafePointer<CChar>?] = offsets.map { base + $0 }
            return argv.withUnsafeMutableBufferPointer { argvBuffer in
                lengths.withUnsafeBufferPointer { lengthBuffer in
                    body(Int32(arguments.count), argvBuffer.baseAddress!, lengthBuffer.baseAddress!)
                }
            }
        }
    }
}

extension RedisValue {
    init(reply: UnsafeMutablePointer<redisReply>) {
        let reply = reply.pointee
        switch reply.type {
        case REDIS_REPLY_STATUS:
            self = .status(String(decoding: Self.bytes(reply), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            self = .error(String(decoding: Self.bytes(reply), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            self = .integer(Int64(reply.integer))
        case REDIS_REPLY_STRING:
            self = .bulk(Self.bytes(reply))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisValue] = []
            elements.reserveCapacity(Int(reply.elements))
            for index in 0..<Int(reply.elements) {
                if let element = reply.element[index] {
                    elements.append(RedisValue(reply: element))
                } else {
                    elements.append(.null)
                }
            }
            self = .array(elements)
        default:
            self = .null
        }
    }

    private static func bytes(_ reply: redisReply) -> [UInt8] {
        guard let pointer = reply.str, reply.len > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: Int(reply.len)))
    }
}
