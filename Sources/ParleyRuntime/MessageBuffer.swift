import DequeModule
import Logging
import ParleyCore
import ServiceLifecycle
import Synchronization

/// Writes accepted messages to the store in batches (DESIGN §1, §2 step 6): at `batchSize`
/// messages or `batchDelay` after the first, one statement per batch, then trims the log
/// through each channel's contiguous persisted prefix — never past a message the store lacks.
///
/// Accepting never waits for the store: `enqueue` only queues. While the store is down the
/// batch goes back in front and is retried with backoff (the log still holds every message);
/// the backlog is bounded (`maximumPending`; past it `hasRoom` is false and the channel
/// refuses new messages rather than growing memory). Rows carry their owner's fence: a batch
/// of a channel that another node owns now is refused by the store and dropped here (the new
/// owner recovered it from the log). On graceful shutdown everything pending is written.
public actor MessageBuffer: MessageSink, Service {
    public struct Stats: Sendable, Hashable {
        public var batches = 0
        public var rows = 0
        public var retries = 0
        public var errors = 0
        public var pending = 0
        /// Rows dropped because their owner's fence was stale.
        public var fencedOut = 0
        /// Times a message was refused because the backlog was full.
        public var refusedFull = 0
        /// Age of the oldest message not yet stored, in milliseconds.
        public var lagMilliseconds: Int64 = 0
        public var lastError: String?
    }

    struct Pending: Sendable {
        let message: MessageView
        let fence: Int64
        let arrived: Moment
    }

    private let store: any MessageStore
    private let log: any MessageLog
    private let clock: any ParleyClock
    private let logger: Logger
    private var batcher: WriteBatcher<Pending>
    private var backoff: BackoffState
    private var counters = Stats()
    private var prefix = PersistedPrefix()
    /// The batch being written (still pending until the store has it).
    private var writing: [Pending] = []
    private let pollInterval: Duration
    public nonisolated let maximumPending: Int
    private nonisolated let pendingCount = Atomic<Int>(0)
    private nonisolated let refusals = Atomic<Int>(0)
    private nonisolated let stopping = Mutex(false)
    /// Set by `flush`: everything pending is due now.
    private var urgent = false

    /// Writes start at `batchSize` messages or `batchDelay` after the first; one statement
    /// takes up to `largestBatch` pending messages; at most `maximumPending` wait.
    public init(store: any MessageStore, log: any MessageLog, batchSize: Int = 10, batchDelay: Duration = .seconds(5),
                largestBatch: Int = 500, maximumPending: Int = 100_000,
                retry: Backoff = Backoff(initial: .milliseconds(200), maximum: .seconds(5)),
                clock: any ParleyClock = SystemClock(), pollInterval: Duration = .milliseconds(20),
                logger: Logger = Logger(label: "parley.buffer")) {
        self.store = store
        self.log = log
        self.clock = clock
        self.logger = logger
        self.pollInterval = pollInterval
        self.maximumPending = maximumPending
        batcher = WriteBatcher(maximumItems: batchSize, maximumDelay: batchDelay, largestBatch: largestBatch)
        backoff = BackoffState(policy: retry)
    }

    public nonisolated var hasRoom: Bool {
        guard pendingCount.load(ordering: .relaxed) < maximumPending else {
            refusals.add(1, ordering: .relaxed)
            return false
        }
        return true
    }

    public func enqueue(_ message: MessageView, fence: Int64) {
        pendingCount.add(1, ordering: .relaxed)
        let now = clock.now()
        batcher.add(Pending(message: message, fence: fence, arrived: now), at: now)
    }

    public func persisted(channel: String, through seq: Int64) {
        prefix.stored(channel, through: seq)
    }

    /// Stops tracking `channel` (its server stopped); rows still pending are written, not trimmed.
    public func forget(channel: String) { prefix.forget(channel) }

    public func stats() -> Stats {
        var stats = counters
        stats.pending = pendingCount.load(ordering: .relaxed)
        stats.refusedFull = refusals.load(ordering: .relaxed)
        let oldest = [writing.first?.arrived, batcher.first?.arrived].compactMap { $0 }.min()
        stats.lagMilliseconds = oldest.map { (clock.now() - $0).milliseconds } ?? 0
        return stats
    }

    /// Writes due batches every `pollInterval` until graceful shutdown, then drains.
    public nonisolated func run() async throws {
        await withGracefulShutdownHandler {
            while !stopping.withLock({ $0 }) && !Task.isCancelled {
                await writeDue()
                try? await Task.sleep(for: pollInterval)
            }
        } onGracefulShutdown: {
            self.stopping.withLock { $0 = true }
        }
        await drainAll()
    }

    private func writeDue() async {
        while backoff.mayAttempt(at: clock.now()), case .flush(let batch) = batcher.tick(at: clock.now()) {
            guard await write(batch) else { return }
        }
        if urgent, !batcher.isEmpty, backoff.mayAttempt(at: clock.now()) { _ = await write(batcher.drain()) }
    }

    /// Makes everything pending due at once (a draining node) and waits until the store has it
    /// or `timeout` passed (the write loop does the writing, so batches never overlap).
    /// Returns whether nothing is left pending.
    @discardableResult
    public func flush(within timeout: Duration) async -> Bool {
        urgent = true
        defer { urgent = false }
        let deadline = ContinuousClock.now + timeout
        while pendingCount.load(ordering: .relaxed) > 0 && ContinuousClock.now < deadline && !Task.isCancelled {
            try? await Task.sleep(for: pollInterval)
        }
        return pendingCount.load(ordering: .relaxed) == 0
    }

    /// Writes everything pending, a batch at a time, retrying while the store is down
    /// (bounded: 10 failed attempts; what is left stays in the log for the next owner).
    public func drainAll() async {
        var failures = 0
        while !batcher.isEmpty && failures < 10 {
            if await write(batcher.drain()) { continue }
            failures += 1
            try? await Task.sleep(for: backoff.policy.delay(attempt: failures))
        }
        if !batcher.isEmpty {
            logger.error("messages left unstored at shutdown; they remain in the log", metadata: ["count": "\(batcher.count)"])
        }
    }

    /// Writes one batch; on failure requeues it in front and backs off. Returns success.
    private func write(_ batch: [Pending]) async -> Bool {
        writing = batch
        defer { writing = [] }
        var fences: [String: Int64] = [:]
        for item in batch { fences[item.message.channelID] = max(fences[item.message.channelID] ?? 0, item.fence) }
        do {
            let refused = try await store.insert(batch.map(\.message), fences: fences)
            counters.batches += 1
            pendingCount.subtract(batch.count, ordering: .relaxed)
            if backoff.attempts > 0 { logger.info("message store is back", metadata: ["rows": "\(batch.count)"]) }
            backoff.recordSuccess()
            var seqs: [String: [Int64]] = [:]
            for item in batch where !refused.contains(item.message.channelID) {
                seqs[item.message.channelID, default: []].append(item.message.seq)
            }
            let kept = seqs.values.reduce(0) { $0 + $1.count }
            counters.rows += kept
            counters.fencedOut += batch.count - kept
            if !refused.isEmpty {
                logger.warning("rows of channels owned elsewhere now were refused; their new owner recovers them from the log",
                               metadata: ["channels": "\(refused.sorted())"])
            }
            var trim: [String: Int64] = [:]
            for (channel, written) in seqs {
                if let through = prefix.stored(channel, seqs: written) { trim[channel] = through }
            }
            // A failed trim only leaves entries the store already has: the next one covers them.
            try? await log.trim(through: trim)
            return true
        } catch {
            counters.errors += 1
            counters.retries += 1
            counters.lastError = "\(error)"
            let delay = backoff.recordFailure(at: clock.now())
            batcher.requeue(batch, retryAt: clock.now() + delay)
            if backoff.attempts == 1 {
                logger.warning("message store write failed; retrying", metadata: ["error": "\(error)", "retry_in_ms": "\(delay.milliseconds)"])
            }
            return false
        }
    }
}
