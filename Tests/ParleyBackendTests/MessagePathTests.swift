import Foundation
import Logging
import ParleyCore
import ParleyPostgres
import ParleyRedis
import ParleyRuntime
import ServiceLifecycle
import Synchronization
import ParleyTestSupport
import Testing

final class RecordingPublisher: EventPublisher {
    private let events = Mutex<[(topic: String, event: ServerEvent)]>([])
    func publish(_ event: ServerEvent, topic: String) { events.withLock { $0.append((topic, event)) } }
    var createdSeqs: [Int64] {
        events.withLock { $0.compactMap { if case .messageCreated(let message) = $0.event { message.seq } else { nil } } }
    }
}

@Suite("Message path: channel server, Redis log, buffer, PostgreSQL")
struct MessagePathTests {
    static func storedCount(_ postgres: PostgresClient, _ channel: String) async -> Int? {
        try? await postgres.query("SELECT count(*) FROM messages WHERE channel_id = $1::uuid", channel)[0].decode(Int.self, at: 0)
    }

    @Test func acknowledgedMessagesSurvivePostgresGoingAwayAndAGracefulStop() async throws {
        let database = try await PrivatePostgres()
        let postgres = PostgresClient(try PostgresConfiguration(url: database.url, poolSize: 2))
        let (channel, user) = try await TestServices.seedChannel(postgres)
        let redis = try TestServices.redis()
        let keys = RedisKeyspace(prefix: TestServices.uniquePrefix("path"))
        let leases = RedisLeaseStore(client: redis, keys: keys)
        let log = RedisMessageLog(client: redis, keys: keys)
        let holder = "node-1/test"
        let fence = try #require(try await leases.acquire(.channel(channel), holder: holder, ttl: .seconds(60)))
        let store = PostgresMessageStore(client: postgres)
        let buffer = MessageBuffer(store: store, log: log, batchSize: 5, batchDelay: .milliseconds(100),
                                   retry: Backoff(initial: .milliseconds(50), maximum: .milliseconds(500)))
        let publisher = RecordingPublisher()
        let server = try await ChannelServer.load(channelID: channel, holder: holder, fence: fence, members: [user], log: log,
                                                  store: store, sink: buffer, publisher: publisher)
        let group = ServiceGroup(services: [buffer], gracefulShutdownSignals: [], logger: Logger(label: "test"))
        async let running: Void = group.run()

        for n in 1...20 { _ = try await server.post(userID: user, body: "before \(n)", clientMessageID: "b-\(n)") }
        #expect(await TestServices.eventually { await Self.storedCount(postgres, channel) == 20 })

        try await database.stop()
        for n in 1...30 {
            let message = try await server.post(userID: user, body: "during \(n)", clientMessageID: "d-\(n)")
            #expect(message.seq == Int64(20 + n), "acknowledged with its seq while PostgreSQL is down")
        }
        let again = try await server.post(userID: user, body: "during 1", clientMessageID: "d-1")
        #expect(again.seq == 21, "a resend returns the first acknowledgement")
        #expect(await TestServices.eventually { await buffer.stats().errors > 0 }, "the buffer tried and failed")
        #expect(try await log.lastSeq(channel: channel) == 50, "the log holds what PostgreSQL could not take")

        try await database.start()
        #expect(await TestServices.eventually(within: .seconds(20)) { await Self.storedCount(postgres, channel) == 50 })
        #expect(await TestServices.eventually { (try? await log.entries(channel: channel, after: 0, limit: 100))?.isEmpty == true },
                "persisted entries are trimmed from the log")

        for n in 1...7 { _ = try await server.post(userID: user, body: "last \(n)", clientMessageID: "l-\(n)") }
        await group.triggerGracefulShutdown()
        try await running
        #expect(await Self.storedCount(postgres, channel) == 57, "a graceful stop writes everything pending")
        #expect(publisher.createdSeqs == Array(1...57))
        let seqs = try await postgres.query("SELECT seq FROM messages WHERE channel_id = $1::uuid ORDER BY seq", channel)
            .map { try $0.decode(Int64.self, at: 0) }
        #expect(seqs == Array(1...57), "no gap, no duplicate")
        let stats = await buffer.stats()
        #expect(stats.rows == 57 && stats.pending == 0)

        // A restarted channel server continues the sequence and serves catch-up from the store.
        let reloaded = try await ChannelServer.load(channelID: channel, holder: holder, fence: fence + 1, members: [user], log: log,
                                                    store: store, sink: buffer, publisher: publisher)
        #expect(await reloaded.currentSeq == 57)
        #expect(try await reloaded.messages(after: 50, limit: 100).map(\.seq) == Array(51...57))
        #expect(try await reloaded.messages(before: 11, limit: 5).map(\.seq) == [6, 7, 8, 9, 10])
        await redis.shutdown()
        await postgres.shutdown()
    }

    @Test func nonMembersAndLostLeasesAreRefusedWithoutWriting() async throws {
        let leases = MemoryLeaseStore()
        let log = MemoryMessageLog(leases: leases)
        let store = MemoryMessageStore()
        let buffer = MessageBuffer(store: store, log: log)
        let publisher = RecordingPublisher()
        let fence = try #require(try await leases.acquire(.channel("c1"), holder: "n/1", ttl: .seconds(60)))
        let server = try await ChannelServer.load(channelID: "c1", holder: "n/1", fence: fence, members: ["alice"], log: log,
                                                  store: store, sink: buffer, publisher: publisher)
        await #expect(throws: ChannelError.notAMember) {
            _ = try await server.post(userID: "mallory", body: "hi", clientMessageID: String?.none)
        }
        _ = try await server.post(userID: "alice", body: "one", clientMessageID: String?.none)
        try await leases.release(.channel("c1"), holder: "n/1")
        await #expect(throws: ChannelError.notOwner) {
            _ = try await server.post(userID: "alice", body: "two", clientMessageID: String?.none)
        }
        #expect(publisher.createdSeqs == [1])
        #expect(await buffer.stats().pending == 1)
    }

    @Test func concurrentPostsGetConsecutiveSeqsInLogOrder() async throws {
        let leases = MemoryLeaseStore()
        let log = MemoryMessageLog(leases: leases)
        let store = MemoryMessageStore()
        let fence = try #require(try await leases.acquire(.channel("c2"), holder: "n/1", ttl: .seconds(60)))
        let server = try await ChannelServer.load(channelID: "c2", holder: "n/1", fence: fence, members: ["a", "b"], log: log, store: store,
                                                  sink: MessageBuffer(store: store, log: log), publisher: RecordingPublisher())
        let seqs = try await withThrowingTaskGroup(of: Int64.self) { group in
            for n in 0..<200 {
                group.addTask { try await server.post(userID: n % 2 == 0 ? "a" : "b", body: "\(n)", clientMessageID: "m\(n)").seq }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(seqs.sorted() == Array(1...200))
        #expect(try await log.entries(channel: "c2", after: 0, limit: 500).map(\.seq) == Array(1...200))
    }
}
