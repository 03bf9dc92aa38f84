import ArgumentParser
import Foundation
import ParleyCore
import ParleyPostgres
import ParleyRedis
import ParleyRuntime
import ParleyWiring

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Benchmarks of this node's backends.",
                                                    subcommands: [StoreBench.self])
}

/// `parley bench store`: message rows into PostgreSQL three ways, Redis commands two ways.
struct StoreBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Insert message rows one per INSERT, per multi-row INSERT, per COPY; Redis commands single vs pipelined.")
    @OptionGroup var backends: BackendOptions
    @Option(help: "Rows (and Redis commands) per method.") var rows = 50_000
    @Option(help: "Rows per batch for the batched and COPY methods, commands per pipeline.") var batch = 500

    func run() async throws {
        var configuration = NodeConfiguration()
        try backends.apply(to: &configuration)
        guard rows > 0, batch > 0, batch * 7 <= 65_535 else { throw ValidationError("rows and batch must be positive, batch ≤ 9362") }
        let schema = "bench_\(ProcessInfo.processInfo.processIdentifier)"
        let admin = PostgresClient(try PostgresConfiguration(url: configuration.databaseURL, poolSize: 1))
        let postgres = PostgresClient(try PostgresConfiguration(url: configuration.databaseURL, poolSize: 1, searchPath: schema))
        let redis = RedisClient(try RedisConfiguration(url: configuration.redisURL, poolSize: 1))
        do {
            try await admin.simpleQuery("CREATE SCHEMA \(schema)")
            let results = try await measure(postgres: postgres, redis: redis, prefix: "\(configuration.redisPrefix):bench:\(schema)")
            try await admin.simpleQuery("DROP SCHEMA \(schema) CASCADE")
            print(results)
        } catch {
            try? await admin.simpleQuery("DROP SCHEMA IF EXISTS \(schema) CASCADE")
            await admin.shutdown(); await postgres.shutdown(); await redis.shutdown()
            throw failOnStartup(error)
        }
        await admin.shutdown(); await postgres.shutdown(); await redis.shutdown()
    }

    private func measure(postgres: PostgresClient, redis: RedisClient, prefix: String) async throws -> String {
        try await PostgresMigrator(client: postgres).migrate()
        let user = UUID(), workspace = UUID()
        try await postgres.query("INSERT INTO users (id, email, display_name, password_hash) VALUES ($1, $2, 'bench', '-')",
                                 user, "bench-\(user)@example.com")
        try await postgres.query("INSERT INTO workspaces (id, name, slug) VALUES ($1, 'bench', $2)", workspace, "bench-\(workspace)")
        func newChannel(_ name: String) async throws -> UUID {
            let channel = UUID()
            try await postgres.query("INSERT INTO channels (id, workspace_id, name, kind) VALUES ($1, $2, $3, 'public')",
                                     channel, workspace, name)
            return channel
        }
        func row(_ channel: UUID, _ seq: Int) -> [any PostgresEncodable] {
            [UUID(), channel, seq, user, "benchmark message number \(seq) with a body of ordinary length", "c-\(seq)", Date()]
        }
        let columns = ["id", "channel_id", "seq", "user_id", "body", "client_msg_id", "created_at"]
        print("store bench: \(rows) rows per method, batches of \(batch)")

        let singleChannel = try await newChannel("single")
        let single = try await rate(rows) {
            for seq in 1...rows {
                try await postgres.query("INSERT INTO messages (id, channel_id, seq, user_id, body, client_msg_id, created_at) "
                                         + "VALUES ($1, $2, $3, $4, $5, $6, $7)", row(singleChannel, seq))
            }
        }
        print(String(format: "  postgres  one INSERT per row       %10.0f rows/s", single))

        let batchedChannel = try await newChannel("batched")
        let batched = try await rate(rows) {
            for start in stride(from: 1, through: rows, by: batch) {
                let seqs = start..<min(start + batch, rows + 1)
                let values = seqs.indices.map { index in
                    let base = (index - start) * columns.count
                    return "(" + (1...columns.count).map { "$\(base + $0)" }.joined(separator: ", ") + ")"
                }
                try await postgres.query("INSERT INTO messages (\(columns.joined(separator: ", "))) VALUES "
                                         + values.joined(separator: ", ") + " ON CONFLICT (channel_id, seq) DO NOTHING",
                                         seqs.flatMap { row(batchedChannel, $0) })
            }
        }
        print(String(format: "  postgres  multi-row INSERT/batch   %10.0f rows/s", batched))

        let copyChannel = try await newChannel("copy")
        let copied = try await rate(rows) {
            for start in stride(from: 1, through: rows, by: batch) {
                let seqs = start..<min(start + batch, rows + 1)
                try await postgres.copy(into: "messages", columns: columns, rows: seqs.map { row(copyChannel, $0) })
            }
        }
        print(String(format: "  postgres  COPY per batch           %10.0f rows/s", copied))
        let counted = try await postgres.query("SELECT count(*) FROM messages")[0].decode(Int.self, at: 0)
        guard counted == rows * 3 else { throw ValidationError("expected \(rows * 3) rows, found \(counted)") }

        let key = "\(prefix):stream"
        let redisSingle = try await rate(rows) {
            for seq in 1...rows {
                try await redis.execute("XADD", key, "\(seq)-0", "body", "benchmark message \(seq)")
            }
        }
        print(String(format: "  redis     XADD one at a time       %10.0f cmds/s", redisSingle))
        try await redis.execute("DEL", key)
        let redisPipelined = try await rate(rows) {
            for start in stride(from: 1, through: rows, by: batch) {
                let commands = (start..<min(start + batch, rows + 1)).map {
                    RedisCommand("XADD", key, "\($0)-0", "body", "benchmark message \($0)")
                }
                let replies = try await redis.pipeline(commands)
                if let failure = replies.first(where: { $0.errorMessage != nil }) { throw RedisError.reply(failure.errorMessage!) }
            }
        }
        print(String(format: "  redis     XADD pipelined           %10.0f cmds/s", redisPipelined))
        try await redis.execute("DEL", key)
        print(String(format: "redis-bench: single=%.0f pipelined=%.0f", redisSingle, redisPipelined))
        return String(format: "store-bench: single=%.0f batched=%.0f copy=%.0f", single, batched, copied)
    }

    private func rate(_ count: Int, _ body: () async throws -> Void) async throws -> Double {
        let start = ContinuousClock.now
        try await body()
        return Double(count) / (ContinuousClock.now - start).seconds
    }
}
