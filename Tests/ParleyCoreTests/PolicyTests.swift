import Foundation
import ParleyCore
import Synchronization
import Testing

@Suite("Policies")
struct PolicyTests {
    let t0 = Moment(nanoseconds: 5_000_000_000)

    @Test func batcherFlushesAtTheItemLimit() {
        var batcher = WriteBatcher<Int>(maximumItems: 3, maximumDelay: .seconds(5))
        guard case .wakeUp(let deadline) = batcher.append(1, at: t0) else { Issue.record("first item sets a deadline"); return }
        #expect(deadline == t0 + .seconds(5))
        #expect(batcher.append(2, at: t0) == nil)
        guard case .flush(let batch) = batcher.append(3, at: t0) else { Issue.record("third item flushes"); return }
        #expect(batch == [1, 2, 3])
        #expect(batcher.isEmpty && batcher.deadline == nil)
    }

    @Test func batcherFlushesAtTheDeadlineOfTheFirstItem() {
        var batcher = WriteBatcher<Int>(maximumItems: 10, maximumDelay: .milliseconds(100))
        _ = batcher.append(1, at: t0)
        _ = batcher.append(2, at: t0 + .milliseconds(90))
        #expect(batcher.tick(at: t0 + .milliseconds(99)) == nil)
        guard case .flush(let batch) = batcher.tick(at: t0 + .milliseconds(100)) else { Issue.record("deadline flushes"); return }
        #expect(batch == [1, 2])
        #expect(batcher.tick(at: t0 + .seconds(1)) == nil)
    }

    @Test func itemsBeyondAFullBatchAreDueAtOnce() {
        var batcher = WriteBatcher<Int>(maximumItems: 2, maximumDelay: .seconds(5))
        _ = batcher.append(1, at: t0)
        _ = batcher.append(2, at: t0)
        batcher.requeue([1, 2], retryAt: t0)
        guard case .flush(let first) = batcher.append(3, at: t0) else { Issue.record("over the limit flushes"); return }
        #expect(first == [1, 2])
        guard case .flush(let rest) = batcher.tick(at: t0) else { Issue.record("the leftover is due at once"); return }
        #expect(rest == [3])
        #expect(batcher.deadline == nil)
    }

    @Test func aBacklogIsWrittenInBatchesUpToTheLargest() {
        var batcher = WriteBatcher<Int>(maximumItems: 2, maximumDelay: .seconds(5), largestBatch: 5)
        // As the message buffer adds while its writer is busy.
        batcher.add(1, at: t0)
        #expect(batcher.deadline == t0 + .seconds(5) && batcher.tick(at: t0) == nil, "one item waits the delay")
        for n in 2...8 { batcher.add(n, at: t0 + .seconds(1)) }
        #expect(batcher.deadline == t0 + .seconds(1), "a full batch is due at once")
        guard case .flush(let first) = batcher.tick(at: t0 + .seconds(1)) else { Issue.record("the backlog is due"); return }
        #expect(first == [1, 2, 3, 4, 5], "the trigger stays at 2; a batch takes up to 5")
        guard case .flush(let rest) = batcher.tick(at: t0 + .seconds(1)) else { Issue.record("the rest is due at once"); return }
        #expect(rest == [6, 7, 8])
    }

    @Test func failedBatchGoesBackInFrontInOrder() {
        var batcher = WriteBatcher<Int>(maximumItems: 2, maximumDelay: .seconds(1))
        _ = batcher.append(1, at: t0)
        guard case .flush(let batch) = batcher.append(2, at: t0) else { return }
        _ = batcher.append(3, at: t0)
        batcher.requeue(batch, retryAt: t0 + .milliseconds(200))
        #expect(batcher.deadline == t0 + .milliseconds(200))
        guard case .flush(let retried) = batcher.tick(at: t0 + .milliseconds(200)) else { Issue.record("retry flushes"); return }
        #expect(retried == [1, 2])
        #expect(batcher.drain() == [3])
    }

    @Test func tokenBucketAllowsBurstsThenRefills() {
        var bucket = TokenBucket(capacity: 5, refillPerSecond: 10, now: t0)
        for _ in 0..<5 { #expect(bucket.take(at: t0) == .allowed) }
        #expect(bucket.take(at: t0) == .limited(retryAfter: .milliseconds(100)))
        #expect(bucket.take(at: t0 + .milliseconds(100)) == .allowed)
        #expect(bucket.take(at: t0 + .seconds(60)) == .allowed)
        #expect(bucket.tokens <= 5)
    }

    @Test func typingExpiresUnlessRenewed() {
        var typing = TypingTracker(timeout: .seconds(5))
        let started = typing.start("u1", at: t0)
        let renewed = typing.start("u1", at: t0 + .seconds(3))
        let other = typing.start("u2", at: t0 + .seconds(1))
        #expect(started && !renewed && other, "a renewal is not a change")
        #expect(typing.nextDeadline == t0 + .seconds(6))
        #expect(typing.expire(at: t0 + .seconds(6)) == ["u2"])
        let stopped = typing.stop("u1")
        let again = typing.stop("u1")
        #expect(stopped && !again)
        #expect(typing.typingUsers.isEmpty)
    }

    @Test func priorityQueueServesHighFirstThenOldestAndWaitsForDelays() {
        var queue = DelayedPriorityQueue<String>()
        queue.push("low-1", priority: 0)
        queue.push("high-1", priority: 10)
        queue.push("low-2", priority: 0)
        queue.push("high-retry", priority: 10, notBefore: t0 + .seconds(1))
        queue.push("high-2", priority: 10)
        #expect(queue.popReady(at: t0) == "high-1")
        #expect(queue.popReady(at: t0) == "high-2")
        #expect(queue.popReady(at: t0) == "low-1")
        #expect(queue.popReady(at: t0 + .seconds(1)) == "high-retry")
        #expect(queue.popReady(at: t0 + .seconds(1)) == "low-2")
        queue.push("later", priority: 1, notBefore: t0 + .seconds(9))
        #expect(queue.popReady(at: t0 + .seconds(2)) == nil)
        #expect(queue.nextReadyTime == t0 + .seconds(9))
        #expect(queue.count == 1)
    }
}


@Suite("Time limits")
struct TimeLimitTests {
    /// Issue 14.8: the caller gets `TimeoutError` at the deadline even though the call it
    /// abandons is blocked (and ignores cancellation) until long after.
    @Test func aTimeoutAnswersWithoutWaitingForABlockedCall() async throws {
        final class Flag: Sendable { let value = Atomic(false) }
        let finished = Flag()
        let blocked: @Sendable () async -> Void = {
            await withCheckedContinuation { continuation in
                Thread {
                    Thread.sleep(forTimeInterval: 10)
                    finished.value.store(true, ordering: .relaxed)
                    continuation.resume()
                }.start()
            }
        }
        await #expect(throws: TimeoutError.self) { try await withTimeout(.milliseconds(50)) { await blocked() } }
        let done = finished.value.load(ordering: .relaxed)
        #expect(!done, "answered while the call was still blocked")
        #expect(try await withTimeout(.seconds(5)) { 42 } == 42)
        await #expect(throws: CancellationError.self) {
            let task = Task { try await withTimeout(.seconds(30)) { await blocked(); return 1 } }
            task.cancel()
            _ = try await task.value
        }
    }
}

@Suite("Connection pool bounds")
struct ConnectionPoolBoundTests {
    final class Connection: PooledConnection {
        var isBroken: Bool { false }
        func isStillUsable() -> Bool { true }
    }
    struct Refused: Error, Equatable { let reason: String }

    /// Issue 14.9: callers beyond `maximumWaiters` are refused at once instead of queueing.
    @Test func waitersBeyondTheLimitAreRefusedAtOnce() async throws {
        let pool = ConnectionPool<Connection>(size: 1, backoff: Backoff(initial: .milliseconds(10), maximum: .milliseconds(10)),
                                              maximumWaiters: 2, connect: { Connection() },
                                              unavailable: { Refused(reason: $0) }, shutdownError: CancellationError())
        let (holding, hold) = AsyncStream<Void>.makeStream()
        let (gate, open) = AsyncStream<Void>.makeStream()
        async let holder: Void = pool.withConnection { _ in
            hold.yield()
            for await _ in gate { break }
        }
        for await _ in holding { break }
        async let first: Int = pool.withConnection { _ in 1 }
        async let second: Int = pool.withConnection { _ in 2 }
        while pool.waiting < 2 { try await Task.sleep(for: .milliseconds(5)) }
        await #expect(throws: Refused.self) { _ = try await pool.withConnection { _ in 3 } }
        open.yield()
        try await holder
        #expect(try await first + second == 3, "the two within the limit were served")
    }
}

@Suite("Keyed rate limiter")
struct KeyedRateLimiterTests {
    @Test func eachKeyBurstsThenWaitsAndMemoryIsBounded() {
        var limiter = KeyedRateLimiter(capacity: 3, refillPerSecond: 1, maximumKeys: 100)
        let t0 = Moment(nanoseconds: 1_000_000_000)
        for _ in 0..<3 { #expect(limiter.take("ann", at: t0) == .allowed) }
        #expect(limiter.take("ann", at: t0) == .limited(retryAfter: .seconds(1)))
        #expect(limiter.take("bob", at: t0) == .allowed, "keys are independent")
        #expect(limiter.take("ann", at: t0 + .seconds(1)) == .allowed)
        for n in 0..<10_000 { _ = limiter.take("address-\(n)", at: t0 + .milliseconds(Int64(n))) }
        #expect(limiter.keys <= 100)
    }
}
