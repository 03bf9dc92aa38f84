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
    func logAppendsInOrderDeduplicatesPerSenderFencesAndTrims(adapter: Adapter) async throws {
        let (leases, client) = try leaseStore(adapter)
        let grace = Duration.milliseconds(300)
        let log: any MessageLog = switch adapter {
        case .memory: MemoryMessageLog(leases: leases, trimGrace: grace)
        case .real: RedisMessageLog(client: client!, keys: (leases as! RedisLeaseStore).keys, trimGrace: grace)
        }
        let channel = UUID().uuidString.lowercased()
        _ = try await leases.acquire(.channel(channel), holder: "a/1", ttl: .seconds(10))
        func append(_ message: MessageView, holder: String = "a/1") async throws -> LogAppendOutcome {
            try await log.append(message, holder: holder)
        }
        let first = message(channel, 1, clientID: "c-1", user: "ann")
        #expect(try await append(first) == .appended)
        #expect(try await append(message(channel, 2, clientID: "c-1", user: "bob")) == .appended,
                "another sender's equal client_msg_id is a different message")
        #expect(try await append(message(channel, 3, clientID: "c-1", user: "ann")) == .duplicate(seq: 1, id: first.id))
        #expect(try await append(message(channel, 2)) == .staleSeq)
        #expect(try await append(message(channel, 3), holder: "b/1") == .notOwner)
        let third = message(channel, 3, clientID: "héllo \"quoted\"")
        #expect(try await append(third) == .appended)
        #expect(try await log.entries(channel: channel, after: 1, limit: 10).map(\.seq) == [2, 3])
        #expect(try await log.entries(channel: channel, after: 0, through: 2, limit: 10).map(\.seq) == [1, 2], "bounded above")
        #expect(try await log.entries(channel: channel, before: 3, limit: 1).map(\.seq) == [2], "the newest below")
        #expect(try await log.entries(channel: channel, before: 4, limit: 10).map(\.seq) == [1, 2, 3])
        #expect(try await log.entries(channel: channel, after: 0, limit: 10).last == third)
        #expect(try await log.lastSeq(channel: channel) == 3)
        try await log.trim(through: [channel: 2])
        #expect(try await log.entries(channel: channel, after: 0, limit: 10).map(\.seq) == [3])
        #expect(try await append(message(channel, 4, clientID: "c-1", user: "ann")) == .duplicate(seq: 1, id: first.id),
                "a trimmed message's client_msg_id is still known for the grace")
        #expect(try await append(message(channel, 4, clientID: "c-9", user: "ann")) == .appended)
        try await log.trim(through: [channel: 4, "another-channel": 7])
        #expect(try await log.lastSeq(channel: channel) == nil)
        #expect(try await append(message(channel, 4)) == .staleSeq, "a trimmed log still refuses old seqs")
        // Two graces after the trim the log has forgotten (the store's unique index answers from then on).
        try await Task.sleep(for: grace * 2 + .milliseconds(100))
        try await log.trim(through: [channel: 4])
        #expect(try await append(message(channel, 5, clientID: "c-1", user: "ann")) == .appended)
        if let client, let keys = (leases as? RedisLeaseStore)?.keys {
            let fields = try await client.execute("HKEYS", keys.dedupe(channel: channel)).array?.compactMap(\.string) ?? []
            #expect(fields == ["ann:c-1"], "the dedupe hash holds the log's messages only: \(fields)")
        }
        await client?.shutdown()
    }

    @Test(arguments: Adapter.allCases)
    func storeInsertsFencedBatchesIdempotentlyAndPagesBySeq(adapter: Adapter) async throws {
        try await TestServices.withSchema { postgres, _ in
            var channel = UUID().uuidString.lowercased(), user = UUID().uuidString.lowercased()
            let store: any MessageStore
            switch adapter {
            case .memory: store = MemoryMessageStore()
            case .real:
                (channel, user) = try await TestServices.seedChannel(postgres)
                store = PostgresMessageStore(client: postgres)
            }
            #expect(try await store.claim(channel: channel, fence: 2))
            #expect(try await !store.claim(channel: channel, fence: 1), "an older fence cannot claim")
            let batch = (1...30).map { message(channel, $0, clientID: "c-\($0)", user: user) }
            let fences = [channel: Int64(2)]
            #expect(try await store.insert(Array(batch[0..<10]), fences: fences).isEmpty)
            #expect(try await store.insert(Array(batch[5..<30]), fences: fences).isEmpty, "rows already stored are skipped")
            #expect(try await store.lastSeq(channel: channel) == 30)
            #expect(try await store.messages(channel: channel, seqs: 11...15, limit: 100) == Array(batch[10..<15]))
            #expect(try await store.messages(channel: channel, seqs: 1...30, limit: 3).map(\.seq) == [1, 2, 3])
            #expect(try await store.messages(channel: channel, before: 11, limit: 4).map(\.seq) == [7, 8, 9, 10])
            #expect(try await store.lastSeq(channel: UUID().uuidString) == 0)
            let seven = ClientMessageKey(channel: channel, user: user, clientMessageID: "c-7")
            let unknown = ClientMessageKey(channel: channel, user: user, clientMessageID: "c-99")
            let someoneElses = ClientMessageKey(channel: channel, user: UUID().uuidString.lowercased(), clientMessageID: "c-8")
            #expect(try await store.find([seven, unknown, someoneElses]) == [seven: batch[6]], "only the sender's own client_msg_id matches")
            var edited = batch[3]
            edited.body = "edited"
            edited.editedAt = 1_795_000_999_000
            #expect(try await store.update(edited, fence: 2))
            #expect(try await store.message(channel: channel, id: edited.id) == edited)
            #expect(try await store.insert([batch[3]], fences: fences).isEmpty)
            #expect(try await store.message(channel: channel, id: edited.id)?.body == "edited", "a replayed insert does not undo an edit")
            #expect(try await store.markRead(channel: channel, user: user, seq: 12, fence: 2) == 12)
            #expect(try await store.markRead(channel: channel, user: user, seq: 5, fence: 2) == 12, "never backwards")

            // A newer owner claims the channel: every write of the old fence is refused.
            #expect(try await store.claim(channel: channel, fence: 3))
            #expect(try await store.insert([message(channel, 31, user: user)], fences: fences) == [channel])
            #expect(try await store.lastSeq(channel: channel) == 30, "nothing written under the stale fence")
            await #expect(throws: StoreError.staleFence) { _ = try await store.update(edited, fence: 2) }
            await #expect(throws: StoreError.staleFence) { _ = try await store.markRead(channel: channel, user: user, seq: 20, fence: 2) }
            await #expect(throws: StoreError.staleFence) {
                _ = try await store.react(channel: channel, messageID: edited.id, user: user, emoji: "👍", present: true, fence: 2)
            }
            #expect(try await store.react(channel: channel, messageID: edited.id, user: user, emoji: "👍", present: true, fence: 3)
                    == ["👍": [user]])
            #expect(try await store.insert([message(channel, 31, user: user)], fences: [channel: 3]).isEmpty)
            #expect(try await store.lastSeq(channel: channel) == 31)
        }
    }
}
