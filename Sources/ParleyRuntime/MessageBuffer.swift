import DequeModule
import Logging
import ParleyCore
import ServiceLifecycle
import Synchronization

/// Writes accepted messages to the store in batches (DESIGN §1, §2 step 6): at `batchSize`
/// messages or `batchDelay` after the first, one statement per batch, then trims the log.
///
/// Accepting never waits for the store: `enqueue` only queues. While the store is down the
/// batch goes back in front and is retried with backoff (the log still holds every message);
/// on graceful shutdown everything pending is written before `run` returns.
public actor MessageBuffer: MessageSink, Service {
    public struct Stats: Sendable, Hashable {
        public var batches = 0
        public var rows = 0
        public var retries = 0
        public var errors = 0
        public var pending = 0
        /// Age of the oldest message not yet stored, in milliseconds.
        public var lagMilliseconds: Int64 = 0
        public var lastError: String?
    }

    private let store: any MessageStore
    private let log: any MessageLog
    private let clock: any ParleyClock
    private let logger: Logger
    private var batcher: WriteBatcher<MessageView>
    private var backoff: BackoffState
    private var counters = Stats()
    /// Messages of the batch being written.
    private var writing = 0
    /// Arrival times of pending messages, oldest first (for the lag).
    private var oldestPending: Deque<Moment> = []
    private let pollInterval: Duration
    private nonisolated let stopping = Mutex(false)

    /// Writes start at `batchSize` messages or `batchDelay` after the first; one statement
    /// takes up to `largestBatch` pending messages.
    public init(store: any MessageStore, log: any MessageLog, batchSize: Int = 10, batchDelay: Duration = .seconds(5),
                largestBatch: Int = 500,
                retry: Backoff = Backoff(initial: .milliseconds(200), maximum: .seconds(5)),
                clock: any ParleyClock = SystemClock(), pollInterval: Duration = .milliseconds(20),
                logger: Logger = Logger(label: "parley.buffer")) {
        self.store = store
        self.log = log
        self.clock = clock
        self.logger = logger
        self.pollInterval = pollInterval
        batcher = WriteBatcher(maximumItems: batchSize, maximumDelay: batchDelay, largestBatch: largestBatch)
        backoff = BackoffState(policy: retry)
    }

    public func enqueue(_ message: MessageView) {
        let now = clock.now()
        oldestPending.append(now)
        batcher.add(message, at: now)
    }

    public func stats() -> Stats {
        var stats = counters
        stats.pending = batcher.count + writing
        stats.lagMilliseconds = oldestPending.first.map { (clock.now() - $0).milliseconds } ?? 0
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
    }

    /// Writes everything pending, a batch at a time, retrying while the store is down
    /// (bounded: 10 failed attempts). A failed batch goes back in front, so order holds.
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
    private func write(_ batch: [MessageView]) async -> Bool {
        // Still pending until the store has them (stats must not say 0 mid-write).
        writing = batch.count
        defer { writing = 0 }
        do {
            _ = try await store.insert(batch)
            counters.batches += 1
            counters.rows += batch.count
            oldestPending.removeFirst(min(batch.count, oldestPending.count))
            if backoff.attempts > 0 { logger.info("message store is back", metadata: ["rows": "\(batch.count)"]) }
            backoff.recordSuccess()
            var highest: [String: Int64] = [:]
            for message in batch { highest[message.channelID] = max(highest[message.channelID] ?? 0, message.seq) }
            // A failed trim only leaves entries the store already has: harmless.
            try? await log.trim(through: highest)
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
