import ParleyCore

/// `JobQueue` in PostgreSQL's `jobs` table. Claims take due rows `FOR UPDATE SKIP LOCKED`, so
/// nodes claiming at once never take the same run and never wait for each other; a run is
/// identified by `(id, attempt)` and held by `locked_by` until `locked_until`, after which any
/// node may claim it again (the worker died). Finishing a run checks the three.
public struct PostgresJobQueue: JobQueue {
    public let client: PostgresClient

    public init(client: PostgresClient) { self.client = client }

    public func enqueue(_ jobs: [NewJob]) async throws -> [Int64] {
        guard !jobs.isEmpty else { return [] }
        var parameters: [any PostgresEncodable] = []
        var rows: [String] = []
        for job in jobs {
            let base = parameters.count
            rows.append("($\(base + 1), $\(base + 2), $\(base + 3)::jsonb, $\(base + 4)::int, "
                        + "now() + $\(base + 5)::bigint * interval '1 millisecond', $\(base + 6)::int)")
            parameters += [job.queue, job.kind, job.payload.jsonText, job.priority, job.delay.milliseconds, job.maximumAttempts]
        }
        return try await client.query("""
            INSERT INTO jobs (queue, kind, payload, priority, run_at, max_attempts) VALUES \(rows.joined(separator: ", ")) RETURNING id
            """, parameters).map { try $0.decode(Int64.self, at: 0) }
    }

    public func claim(queue: String, worker: String, limit: Int, visibility: Duration) async throws -> [Job] {
        guard limit > 0 else { return [] }
        // One statement per poll. A run whose worker vanished on its last allowed attempt is
        // dead, not run again (`buried`, executed whether or not anything reads it); the claim
        // takes the other due rows (the two sets are disjoint).
        let rows = try await client.query("""
            WITH buried AS (
                UPDATE jobs SET state = 'dead', finished_at = now(), locked_by = NULL, locked_until = NULL,
                                last_error = coalesce(last_error, 'its worker stopped answering on the last attempt')
                WHERE queue = $1 AND state = 'running' AND locked_until < now() AND attempt >= max_attempts
                RETURNING id),
            due AS (
                SELECT id FROM jobs
                WHERE queue = $1 AND ((state = 'available' AND run_at <= now())
                                      OR (state = 'running' AND locked_until < now() AND attempt < max_attempts))
                ORDER BY priority DESC, run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
            UPDATE jobs j SET state = 'running', attempt = j.attempt + 1, locked_by = $2,
                              locked_until = now() + $4::bigint * interval '1 millisecond'
            FROM due
            WHERE j.id = due.id
            RETURNING j.id, j.queue, j.kind, j.payload::text, j.priority, j.attempt, j.max_attempts
            """, queue, worker, limit, visibility.milliseconds)
        return try rows.map { row in
            Job(id: try row.decode(at: 0), queue: try row.decode(at: 1), kind: try row.decode(at: 2),
                payload: (try? JSONParser.parse(try row.decode(String.self, at: 3))) ?? .null,
                priority: try row.decode(at: 4), attempt: try row.decode(at: 5), maximumAttempts: try row.decode(at: 6))
        }.sorted { ($0.priority, $1.id) > ($1.priority, $0.id) }
    }

    public func extend(_ claims: [JobClaim], worker: String, visibility: Duration) async throws -> Set<Int64> {
        guard !claims.isEmpty else { return [] }
        var parameters: [any PostgresEncodable] = [worker, visibility.milliseconds]
        var rows: [String] = []
        for claim in claims {
            rows.append("($\(parameters.count + 1)::bigint, $\(parameters.count + 2)::int)")
            parameters += [claim.id, claim.attempt]
        }
        let held = try await client.query("""
            UPDATE jobs j SET locked_until = now() + $2::bigint * interval '1 millisecond'
            FROM (VALUES \(rows.joined(separator: ", "))) AS c (id, attempt)
            WHERE j.id = c.id AND j.attempt = c.attempt AND j.locked_by = $1 AND j.state = 'running'
            RETURNING j.id
            """, parameters)
        return Set(try held.map { try $0.decode(Int64.self, at: 0) })
    }

    public func complete(_ claim: JobClaim, worker: String) async throws -> Bool {
        try await Self.complete(claim, worker: worker, on: client)
    }

    /// Completes `claim` with the statements `executor` runs (a transaction's, so that the
    /// job's effects and its completion commit together).
    public static func complete(_ claim: JobClaim, worker: String, on executor: some PostgresQueryable) async throws -> Bool {
        !(try await executor.query("""
            UPDATE jobs SET state = 'completed', finished_at = now(), locked_by = NULL, locked_until = NULL
            WHERE id = $1 AND attempt = $2 AND locked_by = $3 AND state = 'running' RETURNING 1
            """, [claim.id, claim.attempt, worker])).isEmpty
    }

    public func fail(_ claim: JobClaim, worker: String, error: String, retryIn: Duration?) async throws -> Bool {
        !(try await client.query("""
            UPDATE jobs SET state = CASE WHEN $4::bigint IS NULL OR attempt >= max_attempts THEN 'dead' ELSE 'available' END,
                            run_at = CASE WHEN $4::bigint IS NULL THEN run_at ELSE now() + $4::bigint * interval '1 millisecond' END,
                            finished_at = CASE WHEN $4::bigint IS NULL OR attempt >= max_attempts THEN now() END,
                            last_error = left($3, 2000), locked_by = NULL, locked_until = NULL
            WHERE id = $1 AND attempt = $2 AND locked_by = $5 AND state = 'running' RETURNING 1
            """, claim.id, claim.attempt, error, retryIn?.milliseconds, worker)).isEmpty
    }

    public func snooze(_ claim: JobClaim, worker: String, for delay: Duration) async throws -> Bool {
        !(try await client.query("""
            UPDATE jobs SET state = 'available', run_at = now() + $4::bigint * interval '1 millisecond',
                            max_attempts = max_attempts + 1, locked_by = NULL, locked_until = NULL
            WHERE id = $1 AND attempt = $2 AND locked_by = $3 AND state = 'running' RETURNING 1
            """, claim.id, claim.attempt, worker, delay.milliseconds)).isEmpty
    }

    public func cancel(id: Int64) async throws -> Bool {
        !(try await client.query("""
            UPDATE jobs SET state = 'cancelled', finished_at = now(), locked_by = NULL, locked_until = NULL
            WHERE id = $1 AND state IN ('available', 'running', 'dead') RETURNING 1
            """, id)).isEmpty
    }

    public func retry(id: Int64) async throws -> Bool {
        // The attempt count goes on (it fences the runs); the job gets as many attempts again.
        !(try await client.query("""
            UPDATE jobs SET state = 'available', run_at = now(), max_attempts = attempt + max_attempts, finished_at = NULL
            WHERE id = $1 AND state = 'dead' RETURNING 1
            """, id)).isEmpty
    }

    public func counts(queue: String) async throws -> [JobState: Int] {
        var counts: [JobState: Int] = [:]
        for row in try await client.query("SELECT state, count(*) FROM jobs WHERE queue = $1 GROUP BY state", queue) {
            if let state = JobState(rawValue: try row.decode(String.self, at: 0)) { counts[state] = try row.decode(Int.self, at: 1) }
        }
        return counts
    }

    public func prune(queue: String, olderThan age: Duration) async throws -> Int {
        try await client.query("""
            DELETE FROM jobs WHERE queue = $1 AND state IN ('completed', 'cancelled')
              AND finished_at < now() - $2::bigint * interval '1 millisecond' RETURNING 1
            """, queue, age.milliseconds).count
    }
}
