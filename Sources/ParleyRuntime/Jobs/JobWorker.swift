import Logging
import ParleyCore
import ServiceLifecycle
import Synchronization

/// What a job's handler made of its run.
public enum JobOutcome: Sendable, Equatable {
    /// Done; the worker completes the claim.
    case succeeded
    /// Done, and the handler completed the claim itself in the transaction of its effects.
    case completedByHandler
    /// The claim turned out to be another worker's: nothing more to do here.
    case stale
    /// Failed; try again after the queue's backoff (dead after the last attempt).
    case retry(String)
    /// Failed for good (a receiver that refuses, a payload that cannot work): dead at once.
    case dead(String)
    /// Not now: run again after this long, without counting a failed attempt.
    case later(Duration)
}

/// One node's workers on one queue of the shared `JobQueue`: claims what it has room for
/// (at most `concurrency` at once, highest priority first), keeps each claim's visibility
/// lease while its handler runs, and records the outcome. A handler whose claim was lost
/// (cancelled, or taken by another node after a stall) is cancelled.
public final class JobWorker: Service, Sendable {
    public typealias Handler = @Sendable (Job) async -> JobOutcome

    public struct Settings: Sendable {
        public var concurrency: Int
        /// How long a claim is held without renewal; renewed every third of it.
        public var visibility: Duration
        /// How often the queue is asked for work when idle.
        public var poll: Duration
        public var backoff: Backoff
        /// Completed jobs older than this are deleted.
        public var retention: Duration

        public init(concurrency: Int = 10, visibility: Duration = .seconds(30), poll: Duration = .milliseconds(250),
                    backoff: Backoff = Backoff(initial: .seconds(1), maximum: .seconds(600), multiplier: 2, jitter: 0.5),
                    retention: Duration = .seconds(86_400)) {
            self.concurrency = concurrency
            self.visibility = visibility
            self.poll = poll
            self.backoff = backoff
            self.retention = retention
        }
    }

    public struct Stats: Sendable, Hashable {
        public var claimed = 0
        public var completed = 0
        public var retried = 0
        public var dead = 0
        public var snoozed = 0
        /// Runs whose claim was lost or cancelled while they ran.
        public var lost = 0
        public var running = 0
        /// The most runs in progress at once since the start.
        public var mostRunning = 0
        public var errors = 0
    }

    private struct Run: Sendable {
        let claim: JobClaim
        let task: Task<Void, Never>
    }

    public let queueName: String
    private let queue: any JobQueue
    /// Who claims (the node's incarnation): the claims' `locked_by`.
    public let identity: String
    private let settings: Settings
    private let handlers: [String: Handler]
    private let logger: Logger
    private let running = Mutex<[Int64: Run]>([:])
    private let counters = Mutex(Stats())
    private let poked = Atomic(false)
    private let napping = Mutex<Task<Void, Never>?>(nil)
    /// Whether the last claim failed (its warning is logged once, not at every poll).
    private let failing = Atomic(false)

    public init(queue: any JobQueue, name: String, worker: String, settings: Settings, handlers: [String: Handler],
                logger: Logger = Logger(label: "parley.jobs")) {
        self.queue = queue
        self.queueName = name
        self.identity = worker
        self.settings = settings
        self.handlers = handlers
        var logger = logger
        logger[metadataKey: "queue"] = "\(name)"
        self.logger = logger
    }

    public func stats() -> Stats {
        var stats = counters.withLock { $0 }
        stats.running = running.withLock { $0.count }
        return stats
    }

    /// Asks the queue for work now (a job was just added, or a run finished).
    public func poke() {
        poked.store(true, ordering: .releasing)
        napping.withLock { $0 }?.cancel()
    }

    /// Cancels the run of job `id` if it runs here.
    public func cancelRun(of id: Int64) {
        running.withLock { $0[id] }?.task.cancel()
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var lastRenewal = ContinuousClock.now
            var lastPrune = ContinuousClock.now - .seconds(3600)
            while !Task.isCancelled {
                await self.claimWhatFits()
                if ContinuousClock.now - lastRenewal >= self.settings.visibility / 3 {
                    lastRenewal = .now
                    await self.renew()
                }
                if ContinuousClock.now - lastPrune >= .seconds(3600) {
                    lastPrune = .now
                    if let pruned = try? await self.queue.prune(queue: self.queueName, olderThan: self.settings.retention), pruned > 0 {
                        self.logger.info("pruned finished jobs", metadata: ["count": "\(pruned)"])
                    }
                }
                await self.nap()
            }
        }
        // Stopping: runs in progress get a moment to finish; the rest are left to their leases.
        let deadline = ContinuousClock.now + .seconds(5)
        while running.withLock({ !$0.isEmpty }) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Sleeps for the poll interval or until poked.
    private func nap() async {
        if poked.exchange(false, ordering: .acquiringAndReleasing) { return }
        let poll = settings.poll
        let sleeper = Task { _ = try? await Task.sleep(for: poll) }
        napping.withLock { $0 = sleeper }
        // A poke between the check above and storing the sleeper must not be slept through.
        if poked.load(ordering: .acquiring) { sleeper.cancel() }
        await withTaskCancellationHandler { await sleeper.value } onCancel: { sleeper.cancel() }
        napping.withLock { $0 = nil }
        poked.store(false, ordering: .releasing)
    }

    private func claimWhatFits() async {
        let room = settings.concurrency - running.withLock { $0.count }
        guard room > 0 else { return }
        let jobs: [Job]
        do {
            jobs = try await queue.claim(queue: queueName, worker: identity, limit: room, visibility: settings.visibility)
        } catch {
            counters.withLock { $0.errors += 1 }
            if !failing.exchange(true, ordering: .relaxed) {
                logger.warning("claiming jobs failed; retrying at every poll", metadata: ["error": "\(error)"])
            }
            return
        }
        if failing.exchange(false, ordering: .relaxed) { logger.notice("claiming jobs works again") }
        for job in jobs { start(job) }
    }

    private func start(_ job: Job) {
        running.withLock { running in
            let task = Task { await self.perform(job) }
            running[job.id] = Run(claim: job.claim, task: task)
            let count = running.count
            counters.withLock {
                $0.claimed += 1
                $0.mostRunning = max($0.mostRunning, count)
            }
        }
    }

    private func perform(_ job: Job) async {
        let outcome: JobOutcome
        if let handler = handlers[job.kind] {
            outcome = await handler(job)
        } else {
            outcome = .dead("no handler for job kind \(job.kind)")
        }
        let cancelled = Task.isCancelled
        await record(outcome, of: job, cancelled: cancelled)
        running.withLock { _ = $0.removeValue(forKey: job.id) }
        poke()
    }

    private func record(_ outcome: JobOutcome, of job: Job, cancelled: Bool) async {
        if cancelled && outcome != .completedByHandler && outcome != .succeeded {
            counters.withLock { $0.lost += 1 }
            return
        }
        do {
            switch outcome {
            case .succeeded:
                let done = try await queue.complete(job.claim, worker: identity)
                counters.withLock { if done { $0.completed += 1 } else { $0.lost += 1 } }
            case .completedByHandler:
                counters.withLock { $0.completed += 1 }
            case .stale:
                counters.withLock { $0.lost += 1 }
            case .retry(let error):
                let delay = settings.backoff.delay(attempt: job.attempt - 1)
                _ = try await queue.fail(job.claim, worker: identity, error: error, retryIn: delay)
                let last = job.attempt >= job.maximumAttempts
                counters.withLock { if last { $0.dead += 1 } else { $0.retried += 1 } }
                logger.notice("job failed", metadata: ["job": "\(job.id)", "kind": "\(job.kind)", "attempt": "\(job.attempt)",
                                                       "dead": "\(last)", "error": "\(error)"])
            case .dead(let error):
                _ = try await queue.fail(job.claim, worker: identity, error: error, retryIn: nil)
                counters.withLock { $0.dead += 1 }
                logger.warning("job failed for good", metadata: ["job": "\(job.id)", "kind": "\(job.kind)", "error": "\(error)"])
            case .later(let delay):
                _ = try await queue.snooze(job.claim, worker: identity, for: delay)
                counters.withLock { $0.snoozed += 1 }
            }
        } catch {
            // The claim's lease runs out and another run takes the job: nothing is lost.
            counters.withLock { $0.errors += 1 }
            logger.warning("recording a job's outcome failed", metadata: ["job": "\(job.id)", "error": "\(error)"])
        }
    }

    /// Extends every claim in progress; a run whose claim is gone is cancelled.
    private func renew() async {
        let claims = running.withLock { $0.values.map(\.claim) }
        guard !claims.isEmpty else { return }
        do {
            let held = try await queue.extend(claims, worker: identity, visibility: settings.visibility)
            for claim in claims where !held.contains(claim.id) {
                logger.notice("a job's claim was lost; its run stops", metadata: ["job": "\(claim.id)"])
                cancelRun(of: claim.id)
            }
        } catch {
            counters.withLock { $0.errors += 1 }
            logger.warning("renewing job claims failed", metadata: ["error": "\(error)"])
        }
    }
}
