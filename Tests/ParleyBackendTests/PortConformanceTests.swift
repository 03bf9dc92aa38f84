import Foundation
import ParleyCore
import ParleyPostgres
import ParleyRedis
import ParleyRuntime
import ParleyTestSupport
import Testing

/// The same behaviour, proven of the memory adapter and the Redis / PostgreSQL one.
@Suite("Port conformance: memory and real adapters")
struct PortConformanceTests {
    enum Adapter: String, CaseIterable, Sendable { case memory, real }

    func leaseStore(_ adapter: Adapter) throws -> (any LeaseStore, RedisClient?) {
        switch adapter {
        case .memory: return (MemoryLeaseStore(), nil)
        case .real:
            let client = try TestServices.redis()
            return (RedisLeaseStore(client: client, keys: RedisKeyspace(prefix: TestServices.uniquePrefix("lease"))), client)
        }
    }

    @Test(arguments: Adapter.allCases)
    func leaseIsExclusiveFencedRenewableAndReleasable(adapter: Adapter) async throws {
        let (leases, client) = try leaseStore(adapter)
        let key = EntityKey.channel(UUID().uuidString)
        #expect(try await leases.acquire(key, holder: "a/1", ttl: .seconds(10)) == 1)
        #expect(try await leases.acquire(key, holder: "b/1", ttl: .seconds(10)) == nil)
        #expect(try await leases.holder(of: key) == "a/1")
        #expect(try await leases.renew(key, holder: "a/1", ttl: .seconds(10)))
        #expect(try await !leases.renew(key, holder: "b/1", ttl: .seconds(10)))
        try await leases.release(key, holder: "b/1")
        #expect(try await leases.holder(of: key) == "a/1", "only the holder can release")
        try await leases.release(key, holder: "a/1")
        #expect(try await leases.holder(of: key) == nil)
        #expect(try await leases.acquire(key, holder: "b/1", ttl: .milliseconds(150)) == 2, "each acquisition bumps the fence")
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await !leases.renew(key, holder: "b/1", ttl: .seconds(10)), "an expired lease cannot be renewed")
        #expect(try await leases.acquire(key, holder: "a/2", ttl: .seconds(10)) == 3)
        await client?.shutdown()
    }

    func message(_ channel: String, _ seq: Int64, clientID: String? = nil, user: String = UUID().uuidString) -> MessageView {
        MessageView(id: UUID().uuidString.lowercased(), channelID: channel, seq: seq, userID: user, body: "message \(seq)",
                    clientMessageID: clientID, createdAt: 1_795_000_000_000 + seq)
    }

    @Test(arguments: Adapter.allCases)
    func logAppendsInOrderDeduplicatesFencesAndTrims(adapter: Adapter) async throws {
        let (leases, client) = try leaseStore(adapter)
        let log: any MessageLog = switch adapter {
        case .memory: MemoryMessageLog(leases: leases)
        case .real: RedisMessageLog(client: client!, keys: (leases as! RedisLeaseStore).keys)
        }
        let channel = UUID().uuidString.lowercased()
        _ = try await leases.acquire(.channel(channel), holder: "a/1", ttl: .seconds(10))
        let first = message(channel, 1, clientID: "c-1")
        #expect(try await log.append(first, holder: "a/1") == .appended)
        #expect(try await log.append(message(channel, 2), holder: "a/1") == .appended)
        #expect(try await log.append(message(channel, 3, clientID: "c-1"), holder: "a/1") == .duplicate(seq: 1, id: first.id))
        #expect(try await log.append(message(channel, 2), holder: "a/1") == .staleSeq)
        #expect(try await log.append(message(channel, 3), holder: "b/1") == .notOwner)
        let third = message(channel, 3, clientID: "héllo \"quoted\"")
        #expect(try await log.append(third, holder: "a/1") == .appended)
        #expect(try await log.entries(channel: channel, after: 1, limit: 10).map(\.seq) == [2, 3])
        #expect(try await log.entries(channel: channel, after: 0, limit: 10).last == third)
        #expect(try await log.lastSeq(channel: channel) == 3)
        try await log.trim(through: [channel: 2])
        #expect(try await log.entries(channel: channel, after: 0, limit: 10).map(\.seq) == [3])
        try await log.trim(through: [channel: 3, "another-channel": 7])
        #expect(try await log.lastSeq(channel: channel) == nil)
        #expect(try await log.append(message(channel, 3), holder: "a/1") == .staleSeq, "a trimmed log still refuses old seqs")
        await client?.shutdown()
    }

    @Test(arguments: Adapter.allCases)
    func storeInsertsBatchesIdempotentlyAndPagesBySeq(adapter: Adapter) async throws {
        try await TestServices.withSchema { postgres, _ in
            var channel = UUID().uuidString.lowercased(), user = UUID().uuidString.lowercased()
            let store: any MessageStore
            switch adapter {
            case .memory: store = MemoryMessageStore()
            case .real:
                (channel, user) = try await TestServices.seedChannel(postgres)
                store = PostgresMessageStore(client: postgres)
            }
            let batch = (1...30).map { message(channel, $0, clientID: "c-\($0)", user: user) }
            #expect(try await store.insert(Array(batch[0..<10])) == 10)
            #expect(try await store.insert(Array(batch[5..<30])) == 20, "rows already stored are skipped")
            #expect(try await store.insert(batch) == 0)
            #expect(try await store.lastSeq(channel: channel) == 30)
            #expect(try await store.messages(channel: channel, seqs: 11...15, limit: 100) == Array(batch[10..<15]))
            #expect(try await store.messages(channel: channel, seqs: 1...30, limit: 3).map(\.seq) == [1, 2, 3])
            #expect(try await store.messages(channel: channel, before: 11, limit: 4).map(\.seq) == [7, 8, 9, 10])
            #expect(try await store.lastSeq(channel: UUID().uuidString) == 0)
            var edited = batch[3]
            edited.body = "edited"
            edited.editedAt = 1_795_000_999_000
            try await store.upsert(edited)
            #expect(try await store.message(channel: channel, id: edited.id) == edited)
            #expect(try await store.insert([batch[3]]) == 0, "a replayed insert does not undo an edit")
            #expect(try await store.message(channel: channel, id: edited.id)?.body == "edited")
            var early = message(channel, 31, clientID: "c-31", user: user)
            early.body = "edited before it was stored"
            try await store.upsert(early)
            #expect(try await store.lastSeq(channel: channel) == 31)
        }
    }
}
