import Foundation
import ParleyRedis
import ParleyTestSupport
import Testing

/// Collects a subscriber's events so tests can wait for one.
actor EventLog {
    private(set) var events: [RedisSubscriberEvent] = []
    private var reader: Task<Void, Never>?

    init(_ subscriber: RedisSubscriber) {
        let events = subscriber.events
        reader = nil
        Task { await self.start(events) }
    }

    private func start(_ stream: AsyncStream<RedisSubscriberEvent>) {
        reader = Task { for await event in stream { self.append(event) } }
    }

    private func append(_ event: RedisSubscriberEvent) { events.append(event) }

    func messages(on channel: String) -> [String] {
        events.compactMap {
            guard case .message(channel, let payload) = $0 else { return nil }
            return String(decoding: payload, as: UTF8.self)
        }
    }

    func contains(_ event: RedisSubscriberEvent) -> Bool { events.contains(event) }

    func sawDisconnect() -> Bool {
        events.contains { if case .disconnected = $0 { return true } else { return false } }
    }
}

@Suite("Redis subscriber against a real Redis")
struct RedisSubscriberTests {
    @Test func subscriptionsAddedAndRemovedWhileRunning() async throws {
        let redis = try TestServices.redis()
        let subscriber = RedisSubscriber(try RedisConfiguration(url: TestServices.redisURL))
        let log = EventLog(subscriber)
        let a = TestServices.uniquePrefix("a"), b = TestServices.uniquePrefix("b")
        #expect(await TestServices.eventually { (try? await subscriber.subscribe([a])) != nil })
        #expect(try await redis.execute("PUBLISH", a, "one") == .integer(1))
        try await subscriber.subscribe([b])
        subscriber.unsubscribe([a])
        #expect(await TestServices.eventually { (try? await redis.execute("PUBSUB", "NUMSUB", a))?.array?[1] == .integer(0) })
        #expect(try await redis.execute("PUBLISH", a, "lost") == .integer(0))
        #expect(try await redis.execute("PUBLISH", b, "two") == .integer(1))
        #expect(await TestServices.eventually { await log.messages(on: b) == ["two"] })
        #expect(await log.messages(on: a) == ["one"])
        #expect(subscriber.subscriptions == [b])
        subscriber.shutdown()
        await redis.shutdown()
    }

    @Test func subscriberResubscribesAfterRedisRestart() async throws {
        let server = try await PrivateRedis()
        let configuration = try RedisConfiguration(url: server.url)
        let subscriber = RedisSubscriber(configuration, pingInterval: .milliseconds(200))
        let log = EventLog(subscriber)
        let redis = try TestServices.redis(url: server.url)
        #expect(await TestServices.eventually { (try? await subscriber.subscribe(["room:1", "room:2"])) != nil })
        try await redis.execute("PUBLISH", "room:1", "before")
        #expect(await TestServices.eventually { await log.messages(on: "room:1") == ["before"] })

        server.kill()
        #expect(await TestServices.eventually { await log.sawDisconnect() })
        await #expect(throws: RedisError.self) { try await subscriber.subscribe(["room:3"]) }
        try await server.start()
        #expect(await TestServices.eventually { await log.contains(.reconnected) })
        #expect(await TestServices.eventually { (try? await redis.ping()) != nil })
        // room:3 was asked for while Redis was down: it is subscribed too.
        for room in ["room:1", "room:2", "room:3"] {
            #expect(try await redis.execute("PUBLISH", room, "after") == .integer(1))
        }
        #expect(await TestServices.eventually { await log.messages(on: "room:3") == ["after"] })
        #expect(await log.messages(on: "room:1") == ["before", "after"])
        subscriber.shutdown()
        await redis.shutdown()
    }
}
