import Foundation
import ParleyCore
import ParleyPostgres
import ParleyRedis
import ParleyRuntime
import ParleyTestSupport
import Synchronization
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

    @Test(arguments: Adapter.allCases)
    func leasesRenewTogetherInOneCallAndOnlyTheHoldersOwn(adapter: Adapter) async throws {
        let (leases, client) = try leaseStore(adapter)
        let mine = (0..<50).map { EntityKey.channel("mine-\($0)-\(UUID())") }
        let theirs = EntityKey.channel("theirs-\(UUID())")
        // Taken for long and renewed for short: the renewal's TTL is the one that counts (and a
        // slow machine taking the 50 leases cannot make them lapse before the renewal).
        for key in mine { _ = try await leases.acquire(key, holder: "a/1", ttl: .seconds(60)) }
        _ = try await leases.acquire(theirs, holder: "b/1", ttl: .seconds(60))
        let answers = try await leases.renew(mine + [theirs], holder: "a/1", ttl: .seconds(1))
        #expect(answers.count == 51 && mine.allSatisfy { answers[$0] == true } && answers[theirs] == false, "\(answers.values.filter { $0 }.count) renewed of \(answers.count)")
        #expect(try await leases.holder(of: theirs) == "b/1", "another holder's lease is untouched")
        try await Task.sleep(for: .milliseconds(1500))
        #expect(try await leases.holder(of: mine[0]) == nil, "the renewal set the TTL")
        #expect(try await leases.holder(of: mine[49]) == nil, "of each")
        #expect(try await leases.holder(of: theirs) == "b/1")
        await client?.shutdown()
    }

    func stores(_ adapter: Adapter) throws -> (any MembershipStore, any PresenceStore, RedisClient?) {
        switch adapter {
        case .memory: return (MemoryMembershipStore(), MemoryPresenceStore(), nil)
        case .real:
            let client = try TestServices.redis()
            let keys = RedisKeyspace(prefix: TestServices.uniquePrefix("cluster"))
            return (RedisMembershipStore(client: client, keys: keys), RedisPresenceStore(client: client, keys: keys), client)
        }
    }

    @Test(arguments: Adapter.allCases)
    func aNameBelongsToOneLiveIncarnationAndExpiresWithItsHeartbeat(adapter: Adapter) async throws {
        let (membership, _, client) = try stores(adapter)
        let first = NodeRecord(identity: NodeIdentity(name: "n1", incarnation: "aaa"), address: "127.0.0.1:4001", startedAt: 1)
        let twin = NodeRecord(identity: NodeIdentity(name: "n1", incarnation: "bbb"), address: "127.0.0.1:4009", startedAt: 2)
        let other = NodeRecord(identity: NodeIdentity(name: "n2", incarnation: "ccc"), address: "127.0.0.1:4002", startedAt: 3)
        #expect(try await membership.heartbeat(first, ttl: .seconds(2)) == .registered)
        #expect(try await membership.heartbeat(first, ttl: .seconds(2)) == .renewed)
        #expect(try await membership.heartbeat(twin, ttl: .seconds(5)) == .nameTaken(by: "n1/aaa"))
        #expect(try await membership.heartbeat(other, ttl: .seconds(30)) == .registered)
        #expect(try await membership.live() == [first, other])
        try await Task.sleep(for: .milliseconds(2500))
        #expect(try await membership.live() == [other], "a heartbeat not renewed expires")
        #expect(try await membership.heartbeat(twin, ttl: .seconds(30)) == .registered, "the name is free again")
        try await membership.leave(first.identity)
        #expect(try await membership.live() == [twin, other], "only the holder can leave")
        try await membership.leave(twin.identity)
        #expect(try await membership.live() == [other])
        await client?.shutdown()
    }

    @Test(arguments: Adapter.allCases)
    func presenceHoldsEverySocketOfEveryNodeAndReapsADeadNodesOnce(adapter: Adapter) async throws {
        let (_, presence, client) = try stores(adapter)
        let workspace = UUID().uuidString
        func meta(_ socket: String, node: String) -> PresenceMeta {
            PresenceMeta(socket: socket, ref: "\(node):\(socket)", status: .online, node: node, onlineAt: 1_795_000_000_000,
                         customStatus: socket == "s2" ? "dnd" : nil)
        }
        try await presence.put(workspace: workspace, user: "ann", meta: meta("s1", node: "n1/a"))
        try await presence.put(workspace: workspace, user: "ann", meta: meta("s2", node: "n2/b"))
        try await presence.put(workspace: workspace, user: "bob", meta: meta("s3", node: "n2/b"))
        try await presence.put(workspace: "elsewhere-\(workspace)", user: "bob", meta: meta("s4", node: "n2/b"))
        var snapshot = try await presence.snapshot(workspace: workspace)
        #expect(snapshot.users["ann"]?.map(\.socket).sorted() == ["s1", "s2"], "one user, two nodes, two metas")
        #expect(snapshot.users["ann"]?.first { $0.socket == "s2" } == meta("s2", node: "n2/b"), "metas round-trip")
        try await presence.remove(workspace: workspace, user: "ann", socket: "s1", node: "n1/a")
        snapshot = try await presence.snapshot(workspace: workspace)
        #expect(snapshot.status(of: "ann") == .online, "online while a socket on another node remains")
        let reaped = try await presence.reap(node: "n2/b")
        #expect(reaped[workspace]?.users.keys.sorted() == ["ann", "bob"])
        #expect(reaped["elsewhere-\(workspace)"]?.users["bob"]?.count == 1)
        #expect(try await presence.reap(node: "n2/b").isEmpty, "reaped once: a second reaper finds nothing")
        #expect(try await presence.snapshot(workspace: workspace).users.isEmpty)
        await client?.shutdown()
    }

    @Test(arguments: Adapter.allCases)
    func busPublishesToSubscribersAndSendsToOneInboxInOrder(adapter: Adapter) async throws {
        let hub = MemoryBusHub()
        let prefix = TestServices.uniquePrefix("bus")
        var clients: [RedisClient] = []
        func bus() throws -> any ClusterBus {
            switch adapter {
            case .memory: return MemoryClusterBus(hub: hub)
            case .real:
                let client = try TestServices.redis()
                clients.append(client)
                return RedisClusterBus(client: client, subscriber: RedisSubscriber(client.configuration), keys: RedisKeyspace(prefix: prefix))
            }
        }
        let (a, b, c) = (try bus(), try bus(), try bus())
        let received = Received()
        let listeners = [("a", a), ("b", b), ("c", c)].map { name, bus in
            Task { await bus.run { delivery in received.add(name, delivery) } }
        }
        for (name, bus) in [("a", a), ("b", b), ("c", c)] { try await bus.listen(inbox: name) }
        try await b.subscribe(topic: "channel:1")
        try await c.subscribe(topic: "channel:1")
        #expect(b.topics == ["channel:1"])
        try await a.send((1...20).map { (BusAddress.topic("channel:1"), Array("m\($0)".utf8)) } + [(.node("c"), Array("direct".utf8))])
        #expect(await TestServices.eventually { received.texts("b").count == 20 && received.texts("c").count == 21 })
        #expect(received.texts("b") == (1...20).map { "topic channel:1 m\($0)" }, "in publish order")
        #expect(received.texts("c").last == "inbox direct")
        #expect(received.texts("a").isEmpty, "not subscribed, not addressed")
        c.unsubscribe(topic: "channel:1")
        try await Task.sleep(for: .milliseconds(100))
        try await a.send([(.topic("channel:1"), Array("later".utf8))])
        #expect(await TestServices.eventually { received.texts("b").count == 21 })
        #expect(received.texts("c").count == 21, "unsubscribed: nothing more")
        for bus in [a, b, c] { bus.shutdown() }
        for listener in listeners { await listener.value }
        for client in clients { await client.shutdown() }
    }
}

/// What each bus of a test received, as text.
final class Received: Sendable {
    private let deliveries = Mutex<[String: [String]]>([:])

    func add(_ name: String, _ delivery: BusDelivery) {
        let text: String
        switch delivery {
        case .topic(let topic, let payload): text = "topic \(topic) \(String(decoding: payload, as: UTF8.self))"
        case .inbox(let payload): text = "inbox \(String(decoding: payload, as: UTF8.self))"
        case .reconnected: text = "reconnected"
        }
        deliveries.withLock { $0[name, default: []].append(text) }
    }

    func texts(_ name: String) -> [String] { deliveries.withLock { $0[name] ?? [] } }
}
