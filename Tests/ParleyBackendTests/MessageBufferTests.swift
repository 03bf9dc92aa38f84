import Logging
import ParleyCore
import ParleyRuntime
import ServiceLifecycle
import ParleyTestSupport
import Testing

@Suite("Message buffer")
struct MessageBufferTests {
    static func message(_ seq: Int64) -> MessageView {
        MessageView(id: "m\(seq)", channelID: "c", seq: seq, userID: "u", body: "b", createdAt: 0)
    }

    @Test func writesAtTheBatchSizeAndAfterTheDelayWhileRunning() async throws {
        let store = MemoryMessageStore()
        _ = try await store.claim(channel: "c", fence: 1)
        let leases = MemoryLeaseStore()
        let buffer = MessageBuffer(store: store, log: MemoryMessageLog(leases: leases), batchSize: 3, batchDelay: .milliseconds(200),
                                   largestBatch: 3)
        let group = ServiceGroup(services: [buffer], gracefulShutdownSignals: [], logger: Logger(label: "test"))
        async let running: Void = group.run()
        for seq in Int64(1)...4 { await buffer.enqueue(Self.message(seq), fence: 1) }
        #expect(await TestServices.eventually { try! await store.lastSeq(channel: "c") >= 3 }, "a full batch is written")
        #expect(await TestServices.eventually { try! await store.lastSeq(channel: "c") == 4 }, "the rest after the delay")
        await buffer.enqueue(Self.message(5), fence: 1)
        await group.triggerGracefulShutdown()
        try await running
        #expect(try await store.lastSeq(channel: "c") == 5, "graceful shutdown drains")
        let stats = await buffer.stats()
        #expect(stats.rows == 5 && stats.batches == 3 && stats.pending == 0)
    }

    /// A draining node's `flush` makes everything pending due at once (not after the batch
    /// delay) and returns when the store has it.
    @Test func flushWritesEverythingPendingNow() async throws {
        let store = MemoryMessageStore()
        _ = try await store.claim(channel: "c", fence: 1)
        let buffer = MessageBuffer(store: store, log: MemoryMessageLog(leases: MemoryLeaseStore()), batchSize: 100,
                                   batchDelay: .seconds(60))
        let group = ServiceGroup(services: [buffer], gracefulShutdownSignals: [], logger: Logger(label: "test"))
        async let running: Void = group.run()
        for seq in Int64(1)...7 { await buffer.enqueue(Self.message(seq), fence: 1) }
        try await Task.sleep(for: .milliseconds(100))
        #expect(try await store.lastSeq(channel: "c") == 0, "nothing is due yet")
        #expect(await buffer.flush(within: .seconds(5)))
        #expect(try await store.lastSeq(channel: "c") == 7)
        #expect(await buffer.stats().pending == 0)
        await group.triggerGracefulShutdown()
        try await running
    }
}
