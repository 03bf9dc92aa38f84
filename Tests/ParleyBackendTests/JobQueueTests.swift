import Logging
import ParleyCore
import ParleyPostgres
import ParleyRuntime
import ParleyTestSupport
import Synchronization
import Testing

/// Issue 19: the job queue the nodes share, on a real PostgreSQL.
@Suite("Job queue in PostgreSQL")
struct JobQueueTests {
    static func job(_ kind: String, priority: Int = 0, attempts: Int = 3, delay: Duration = .zero) -> NewJob {
        NewJob(queue: "q", kind: kind, payload: ["kind": .string(kind)], priority: priority, delay: delay, maximumAttempts: attempts)
    }

    @Test func claimsGoByPriorityAndNeverTwiceAtOnce() async throws {
        try await TestServices.withSchema(poolSize: 4) { postgres, _ in
            try await PostgresMigrator(client: postgres).migrate()
            let queue = PostgresJobQueue(client: postgres)
            _ = try await queue.enqueue([Self.job("low"), Self.job("high", priority: 10), Self.job("later", priority: 99, delay: .seconds(60))])
            let first = try await queue.claim(queue: "q", worker: "a/1", limit: 1, visibility: .seconds(30))
            #expect(first.map(\.kind) == ["high"], "the highest priority that is due")
            #expect(first.first?.attempt == 1)
            // 200 jobs, four claimers at once: each job is claimed exactly once.
            _ = try await queue.enqueue((0..<200).map { Self.job("bulk-\($0)") })
            let claimed = try await withThrowingTaskGroup(of: [Int64].self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        var mine: [Int64] = []
                        while true {
                            let jobs = try await queue.claim(queue: "q", worker: "w/\(worker)", limit: 7, visibility: .seconds(30))
                            if jobs.isEmpty { return mine }
                            mine += jobs.map(\.id)
                        }
                    }
                }
                return try await group.reduce(into: [Int64]()) { $0 += $1 }
            }
            #expect(claimed.count == 201 && Set(claimed).count == 201, "low and the 200, each once: \(claimed.count)")
            #expect(try await queue.counts(queue: "q") == [.running: 202, .available: 1])
        }
    }

    @Test func aDeadWorkersClaimIsTakenAgainAndItsLateAnswerIsRefused() async throws {
        try await TestServices.withSchema { postgres, _ in
            try await PostgresMigrator(client: postgres).migrate()
            let queue = PostgresJobQueue(client: postgres)
            _ = try await queue.enqueue([Self.job("x")])
            let stalled = try #require(try await queue.claim(queue: "q", worker: "a/1", limit: 5, visibility: .milliseconds(300)).first)
            #expect(try await queue.claim(queue: "q", worker: "b/1", limit: 5, visibility: .seconds(30)).isEmpty, "held while leased")
            try await Task.sleep(for: .milliseconds(500))
            let retaken = try #require(try await queue.claim(queue: "q", worker: "b/1", limit: 5, visibility: .seconds(30)).first)
            #expect(retaken.id == stalled.id && retaken.attempt == 2)
            #expect(try await !queue.complete(stalled.claim, worker: "a/1"), "the stalled worker's answer comes too late")
            #expect(try await queue.extend([stalled.claim], worker: "a/1", visibility: .seconds(30)).isEmpty)
            #expect(try await queue.extend([retaken.claim], worker: "b/1", visibility: .seconds(30)) == [retaken.id])
            #expect(try await queue.complete(retaken.claim, worker: "b/1"))
            #expect(try await !queue.complete(retaken.claim, worker: "b/1"), "once")
            #expect(try await queue.counts(queue: "q") == [.completed: 1])
        }
    }

    /// A claim that lapses on the job's last allowed attempt makes the job dead (its worker
    /// vanished mid-run as often as it may): the next poll buries it in the same statement that
    /// claims the other due jobs, and does not run it again.
    @Test func aClaimThatLapsesOnTheLastAttemptIsDead() async throws {
        try await TestServices.withSchema { postgres, _ in
            try await PostgresMigrator(client: postgres).migrate()
            let queue = PostgresJobQueue(client: postgres)
            let ids = try await queue.enqueue([Self.job("once", attempts: 1), Self.job("twice", attempts: 2)])
            let claimed = try await queue.claim(queue: "q", worker: "a/1", limit: 5, visibility: .milliseconds(300))
            #expect(claimed.count == 2)
            try await Task.sleep(for: .milliseconds(500))
            let again = try await queue.claim(queue: "q", worker: "b/1", limit: 5, visibility: .seconds(30))
            #expect(again.map(\.id) == [ids[1]], "only the job with an attempt left runs again")
            #expect(again.first?.attempt == 2)
            #expect(try await queue.counts(queue: "q") == [.dead: 1, .running: 1])
            #expect(try await queue.retry(id: ids[0]), "a dead letter, which can be retried")
        }
    }

    @Test func failuresBackOffThenDieAndADeadJobCanBeRetried() async throws {
        try await TestServices.withSchema { postgres, _ in
            try await PostgresMigrator(client: postgres).migrate()
            let queue = PostgresJobQueue(client: postgres)
            let id = try #require(try await queue.enqueue([Self.job("flaky", attempts: 2)]).first)
            let first = try #require(try await queue.claim(queue: "q", worker: "a/1", limit: 1, visibility: .seconds(30)).first)
            #expect(try await queue.fail(first.claim, worker: "a/1", error: "503", retryIn: .milliseconds(400)))
            #expect(try await queue.claim(queue: "q", worker: "a/1", limit: 1, visibility: .seconds(30)).isEmpty, "not before its backoff")
            try await Task.sleep(for: .milliseconds(500))
            let second = try #require(try await queue.claim(queue: "q", worker: "a/1", limit: 1, visibility: .seconds(30)).first)
            #expect(second.attempt == 2)
            #expect(try await queue.fail(second.claim, worker: "a/1", error: "503 again", retryIn: .milliseconds(1)))
            #expect(try await queue.counts(queue: "q") == [.dead: 1], "out of attempts")
            #expect(try await queue.retry(id: id))
            #expect(try await !queue.retry(id: id), "only a dead job")
            let third = try #require(try await queue.claim(queue: "q", worker: "a/1", limit: 1, visibility: .seconds(30)).first)
            #expect(third.attempt == 3 && third.maximumAttempts == 4, "as many attempts again")
            // Snoozing does not use up an attempt.
            #expect(try await queue.snooze(third.claim, worker: "a/1", for: .milliseconds(1)))
            try await Task.sleep(for: .milliseconds(20))
            let fourth = try #require(try await queue.claim(queue: "q", worker: "a/1", limit: 1, visibility: .seconds(30)).first)
            #expect(fourth.maximumAttempts - fourth.attempt == 1)
            #expect(try await queue.cancel(id: id))
            #expect(try await queue.extend([fourth.claim], worker: "a/1", visibility: .seconds(30)).isEmpty, "a cancelled run is no longer held")
        }
    }

    /// The worker on the real queue: never more than its concurrency at once, a handler's
    /// failure retried until it succeeds, a cancelled job's run stopped.
    @Test func aWorkerRunsAtMostItsConcurrencyRetriesAndStopsACancelledRun() async throws {
        try await TestServices.withSchema(poolSize: 4) { postgres, _ in
            try await PostgresMigrator(client: postgres).migrate()
            let queue = PostgresJobQueue(client: postgres)
            final class Tally: Sendable {
                let running = Atomic(0), most = Atomic(0), done = Atomic(0), failures = Atomic(0), cancelled = Atomic(0)
            }
            let tally = Tally()
            let handlers: [String: JobWorker.Handler] = [
                "sleep": { _ in
                    let now = tally.running.add(1, ordering: .relaxed).newValue
                    _ = tally.most.max(now, ordering: .relaxed)
                    try? await Task.sleep(for: .milliseconds(100))
                    tally.running.subtract(1, ordering: .relaxed)
                    tally.done.add(1, ordering: .relaxed)
                    return .succeeded
                },
                "flaky": { job in
                    if job.attempt < 3 {
                        tally.failures.add(1, ordering: .relaxed)
                        return .retry("not yet")
                    }
                    return .succeeded
                },
                "forever": { _ in
                    while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(20)) }
                    tally.cancelled.add(1, ordering: .relaxed)
                    return .retry("cancelled")
                },
            ]
            let settings = JobWorker.Settings(concurrency: 3, visibility: .seconds(1), poll: .milliseconds(20),
                                              backoff: Backoff(initial: .milliseconds(10), maximum: .milliseconds(20), multiplier: 2, jitter: 0))
            let worker = JobWorker(queue: queue, name: "q", worker: "w/1", settings: settings, handlers: handlers)
            let forever = try #require(try await queue.enqueue([Self.job("forever", priority: 5)]).first)
            _ = try await queue.enqueue((0..<12).map { _ in Self.job("sleep") } + [Self.job("flaky", attempts: 5)])
            let running = Task { try await worker.run() }
            #expect(await TestServices.eventually { tally.done.load(ordering: .relaxed) == 12 })
            #expect(tally.most.load(ordering: .relaxed) <= 2, "two slots besides the one the endless job holds")
            #expect(try await queue.cancel(id: forever))
            #expect(await TestServices.eventually { tally.cancelled.load(ordering: .relaxed) == 1 }, "the cancelled run was stopped")
            #expect(await TestServices.eventually { (try? await queue.counts(queue: "q")) == [.completed: 13, .cancelled: 1] })
            #expect(tally.failures.load(ordering: .relaxed) == 2)
            let stats = worker.stats()
            #expect(stats.completed == 13 && stats.retried == 2 && stats.lost == 1 && stats.mostRunning == 3, "\(stats)")
            running.cancel()
            _ = try? await running.value
        }
    }
}
