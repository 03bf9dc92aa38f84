/// Durable background work shared by the nodes (the role Oban plays for Elixir): jobs wait in
/// a queue by priority and due time; a worker claims a few under a visibility lease, keeps the
/// lease while it works, and completes or fails each. A worker that dies loses its claims when
/// their leases run out and another node takes them again. The attempt number is the claim's
/// fencing token: a stale worker cannot complete or fail a job another worker took since.
public struct Job: Sendable, Hashable {
    public let id: Int64
    public let queue: String
    public let kind: String
    public let payload: JSONValue
    public let priority: Int
    /// 1 for the first run.
    public let attempt: Int
    public let maximumAttempts: Int

    public init(id: Int64, queue: String, kind: String, payload: JSONValue, priority: Int, attempt: Int, maximumAttempts: Int) {
        self.id = id
        self.queue = queue
        self.kind = kind
        self.payload = payload
        self.priority = priority
        self.attempt = attempt
        self.maximumAttempts = maximumAttempts
    }

    public var claim: JobClaim { JobClaim(id: id, attempt: attempt) }
}

/// A worker's hold on one run of a job.
public struct JobClaim: Sendable, Hashable {
    public let id: Int64
    public let attempt: Int

    public init(id: Int64, attempt: Int) {
        self.id = id
        self.attempt = attempt
    }
}

/// A job to add.
public struct NewJob: Sendable, Hashable {
    public var queue: String
    public var kind: String
    public var payload: JSONValue
    /// Higher runs first.
    public var priority: Int
    /// How long from now until it may run.
    public var delay: Duration
    public var maximumAttempts: Int

    public init(queue: String, kind: String, payload: JSONValue, priority: Int = 0, delay: Duration = .zero,
                maximumAttempts: Int = 8) {
        self.queue = queue
        self.kind = kind
        self.payload = payload
        self.priority = priority
        self.delay = delay
        self.maximumAttempts = maximumAttempts
    }
}

public enum JobState: String, Sendable, CaseIterable {
    /// Waiting for its due time or a worker.
    case available
    /// Claimed; its lease has not run out.
    case running
    case completed
    /// Failed its last allowed attempt (or failed for good): kept for a person to look at.
    case dead
    case cancelled
}

/// A job as listed (dead letters, a user's jobs).
public struct JobRecord: Sendable, Hashable {
    public let id: Int64
    public let kind: String
    public let state: JobState
    public let attempt: Int
    public let lastError: String?
    public let payload: JSONValue

    public init(id: Int64, kind: String, state: JobState, attempt: Int, lastError: String?, payload: JSONValue) {
        self.id = id
        self.kind = kind
        self.state = state
        self.attempt = attempt
        self.lastError = lastError
        self.payload = payload
    }

    public var json: JSONValue {
        ["id": .int(id), "kind": .string(kind), "state": .string(state.rawValue), "attempt": .int(Int64(attempt)),
         "last_error": lastError.map { .string($0) } ?? .null, "payload": payload]
    }
}

public protocol JobQueue: Sendable {
    func enqueue(_ jobs: [NewJob]) async throws -> [Int64]
    /// Up to `limit` jobs of `queue` that are due (or whose worker's lease ran out), highest
    /// priority first, each claimed by `worker` for `visibility`. Never the same run twice.
    func claim(queue: String, worker: String, limit: Int, visibility: Duration) async throws -> [Job]
    /// Extends the leases of `claims` still held by `worker`; returns the ids still held.
    func extend(_ claims: [JobClaim], worker: String, visibility: Duration) async throws -> Set<Int64>
    /// Marks the run done; false when the claim was no longer this worker's.
    func complete(_ claim: JobClaim, worker: String) async throws -> Bool
    /// The run failed: due again after `retryIn`, or dead when nil or out of attempts.
    /// False when the claim was no longer this worker's.
    func fail(_ claim: JobClaim, worker: String, error: String, retryIn: Duration?) async throws -> Bool
    /// Puts the run back to run again after `delay`, without counting it as a failed attempt
    /// (a recipient's do-not-disturb). False when the claim was no longer this worker's.
    func snooze(_ claim: JobClaim, worker: String, for delay: Duration) async throws -> Bool
    /// Cancels a job that has not completed; a running one's worker finds out when it renews.
    func cancel(id: Int64) async throws -> Bool
    /// Makes a dead job available again with a fresh set of attempts.
    func retry(id: Int64) async throws -> Bool
    /// How many jobs of `queue` are in each state.
    func counts(queue: String) async throws -> [JobState: Int]
    /// Deletes jobs of `queue` that completed or were cancelled more than `age` ago.
    func prune(queue: String, olderThan age: Duration) async throws -> Int
}
