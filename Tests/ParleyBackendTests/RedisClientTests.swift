import Foundation
import ParleyCore
import ParleyRedis
import ParleyTestSupport
import Testing

@Suite("Redis client against a real Redis")
struct RedisClientTests {
    @Test func singleCommandsDecodeEveryReplyType() async throws {
        let redis = try TestServices.redis()
        let key = TestServices.uniquePrefix("single")
        let binary: [UInt8] = [0, 13, 10, 255, 36, 42, 0]
        #expect(try await redis.execute("SET", "\(key):bin", binary) == .status("OK"))
        #expect(try await redis.execute("GET", "\(key):bin") == .bulk(binary))
        #expect(try await redis.execute("INCRBY", "\(key):n", 41) == .integer(41))
        #expect(try await redis.execute("GET", "\(key):missing") == .null)
        #expect(try await redis.execute("RPUSH", "\(key):list", "a", "b") == .integer(2))
        #expect(try await redis.execute("LRANGE", "\(key):list", 0, -1) == .array([.bulk(Array("a".utf8)), .bulk(Array("b".utf8))]))
        await #expect(throws: RedisError.self) { try await redis.execute("INCR", "\(key):bin") }
        do {
            try await redis.execute("NOSUCHCOMMAND")
            Issue.record("an unknown command must fail")
        } catch let error as RedisError {
            guard case .reply(let message) = error else { Issue.record("expected a reply error, got \(error)"); return }
            #expect(message.hasPrefix("ERR"))
            #expect(!error.isConnectionError)
        }
        try await redis.execute("DEL", "\(key):bin", "\(key):n", "\(key):list")
        await redis.shutdown()
    }

    @Test func pipelineReturnsOneReplyPerCommandInOrderWithErrorsInline() async throws {
        let redis = try TestServices.redis()
        let key = TestServices.uniquePrefix("pipeline")
        var commands = (1...200).map { RedisCommand("RPUSH", key, $0) }
        commands.insert(RedisCommand("HGET", key, "field"), at: 100)
        let replies = try await redis.pipeline(commands)
        #expect(replies.count == 201)
        #expect(replies[0] == .integer(1))
        #expect(replies[100].errorMessage?.hasPrefix("WRONGTYPE") == true)
        #expect(replies[200] == .integer(200))
        #expect(try await redis.execute("LLEN", key) == .integer(200))
        try await redis.execute("DEL", key)
        await redis.shutdown()
    }

    @Test func poolOfTwoServesManyConcurrentCallers() async throws {
        let redis = try TestServices.redis(poolSize: 2)
        let key = TestServices.uniquePrefix("concurrent")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<50 {
                group.addTask { for _ in 0..<20 { try await redis.execute("INCR", key) } }
            }
            try await group.waitForAll()
        }
        #expect(try await redis.execute("GET", key).int == 1000)
        try await redis.execute("DEL", key)
        await redis.shutdown()
    }

    @Test func scriptRunsBySHAAndSurvivesScriptFlush() async throws {
        let redis = try TestServices.redis()
        let key = TestServices.uniquePrefix("script")
        // KEYS[1]: a counter; ARGV[1]: the amount. Returns the new value.
        let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        #expect(try await redis.evaluate(script, keys: [key], arguments: [5]) == .integer(5))
        try await redis.execute("SCRIPT", "FLUSH")
        #expect(try await redis.execute("SCRIPT", "EXISTS", script.sha) == .array([.integer(0)]))
        #expect(try await redis.evaluate(script, keys: [key], arguments: [2]) == .integer(7))
        try await redis.execute("SCRIPT", "FLUSH")
        let replies = try await redis.pipeline([
            .evalSHA(script, keys: [key], arguments: [1]), RedisCommand("GET", key), .evalSHA(script, keys: [key], arguments: [1]),
        ])
        // Flushed under a live connection: the scripts are loaded and run again, after the GET.
        #expect(replies[0] == .integer(8))
        #expect(replies[2] == .integer(9))
        #expect(try await redis.execute("GET", key) == .bulk(Array("9".utf8)))
        // A connection that has not run the script yet loads it ahead of the pipeline: in order.
        try await redis.execute("SCRIPT", "FLUSH")
        let fresh = try TestServices.redis(poolSize: 1)
        let ordered = try await fresh.pipeline([
            .evalSHA(script, keys: [key], arguments: [1]), RedisCommand("GET", key), .evalSHA(script, keys: [key], arguments: [1]),
        ])
        #expect(ordered == [.integer(10), .bulk(Array("10".utf8)), .integer(11)])
        await fresh.shutdown()
        try await redis.execute("DEL", key)
        await redis.shutdown()
    }

    /// Concurrent callers share pipelines (the pool has 2 connections): every caller gets
    /// its own reply, and nothing is lost or run twice.
    @Test func concurrentCommandsArePipelinedAndEachGetsItsOwnReply() async throws {
        let redis = try TestServices.redis(poolSize: 2)
        let key = TestServices.uniquePrefix("counter")
        let echoes = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
            for n in 0..<500 {
                group.addTask { (n, try await redis.execute("ECHO", "reply-\(n)").string) }
                group.addTask { _ = try await redis.execute("INCR", key); return (-1, nil) }
            }
            return try await group.reduce(into: [Int: String?]()) { if $1.0 >= 0 { $0[$1.0] = $1.1 } }
        }
        #expect(echoes.count == 500 && echoes.allSatisfy { $0.value == "reply-\($0.key)" })
        #expect(try await redis.execute("GET", key).string == "500")
        try await redis.execute("DEL", key)
        await redis.shutdown()
    }

    @Test func refusedConnectionFailsFastWithOneLineError() async throws {
        // A backoff long enough that the second call surely falls inside it, however busy the machine.
        var configuration = try RedisConfiguration(url: "redis://127.0.0.1:1", poolSize: 2)
        configuration.reconnectBackoff = Backoff(initial: .seconds(30), maximum: .seconds(30))
        let redis = RedisClient(configuration)
        do {
            try await redis.ping()
            Issue.record("nothing listens on port 1")
        } catch let error as RedisError {
            guard case .connectionFailed(let endpoint, let reason) = error else { Issue.record("got \(error)"); return }
            #expect(endpoint == "127.0.0.1:1")
            #expect(reason.contains("refused"))
            #expect(!error.description.contains("\n"))
        }
        do {
            try await redis.ping()
            Issue.record("still nothing on port 1")
        } catch let error as RedisError {
            guard case .unavailable = error else { Issue.record("a second call inside the backoff should fail fast, got \(error)"); return }
        }
        await redis.shutdown()
    }

    @Test func wrongPasswordAndBadURLAreNamed() async throws {
        let server = try await PrivateRedis(password: "right-password")
        let wrong = try TestServices.redis(url: "redis://:wrong-password@127.0.0.1:\(server.port)")
        do {
            try await wrong.ping()
            Issue.record("a wrong password must be refused")
        } catch let error as RedisError {
            #expect(error.description.contains("authentication failed"))
            #expect(!error.description.contains("\n"))
        }
        await wrong.shutdown()
        let right = try TestServices.redis(url: server.url)
        try await right.ping()
        await right.shutdown()
        #expect(throws: RedisError.invalidConfiguration("'http://x' is not a redis:// URL")) {
            try RedisConfiguration(url: "http://x")
        }
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "redis://127.0.0.1/notanumber") }
    }

    @Test func clientReconnectsByItselfAfterRedisRestarts() async throws {
        let server = try await PrivateRedis()
        let redis = try TestServices.redis(url: server.url)
        try await redis.execute("SET", "k", "before")
        server.kill()
        await #expect(throws: RedisError.self) { try await redis.execute("GET", "k") }
        try await server.start()
        let recovered = await TestServices.eventually { (try? await redis.ping()) != nil }
        #expect(recovered)
        #expect(try await redis.execute("SET", "k", "after") == .status("OK"))
        await redis.shutdown()
    }
}
