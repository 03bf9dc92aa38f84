import Foundation
import ParleyPostgres
import ParleyTestSupport
import Testing

@Suite("PostgreSQL client against a real PostgreSQL")
struct PostgresClientTests {
    struct Meta: Codable, Equatable, Sendable {
        let tags: [String]
        let weight: Int
    }

    @Test func everyTypeRoundTripsThroughParametersAndResults() async throws {
        try await TestServices.withSchema { postgres, _ in
            try await postgres.query("""
                CREATE TABLE sample (t text, i int, b bigint, f boolean, at timestamptz, id uuid, raw bytea, meta jsonb, missing text)
                """)
            let at = Date(timeIntervalSince1970: 1_795_000_000.123456)
            let id = UUID()
            let raw: [UInt8] = [0, 1, 2, 92, 120, 255, 10, 9]
            let meta = Meta(tags: ["a", "ü"], weight: 3)
            let text = "tab\tnewline\n'quote' \"double\" \\ ünïcode ✓"
            try await postgres.query("INSERT INTO sample VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                                     text, Int32(-7), Int64(9_000_000_000), true, at, id, raw, PostgresJSON(meta), String?.none)
            let row = try await postgres.query("SELECT * FROM sample")[0]
            #expect(try row.decode(String.self, "t") == text)
            #expect(try row.decode(Int32.self, "i") == -7)
            #expect(try row.decode(Int64.self, "b") == 9_000_000_000)
            #expect(try row.decode(Bool.self, "f") == true)
            #expect(abs(try row.decode(Date.self, "at").timeIntervalSince(at)) < 0.000_002)
            #expect(try row.decode(UUID.self, "id") == id)
            #expect(try row.decode([UInt8].self, "raw") == raw)
            #expect(try row.decode(PostgresJSON<Meta>.self, "meta").value == meta)
            #expect(try row.decode(String?.self, "missing") == nil)
            #expect(row.isNull(at: 8))
            do {
                _ = try row.decode(String.self, "missing")
                Issue.record("NULL must not decode as a non-optional String")
            } catch let error as PostgresError {
                #expect(error == .decoding(column: "missing", reason: "NULL where String was expected"))
            }
        }
    }

    @Test func uniqueViolationIsReportedAsSuch() async throws {
        try await TestServices.withSchema { postgres, _ in
            try await postgres.query("CREATE TABLE people (email text PRIMARY KEY)")
            try await postgres.query("INSERT INTO people VALUES ($1)", "a@example.com")
            do {
                try await postgres.query("INSERT INTO people VALUES ($1)", "a@example.com")
                Issue.record("a duplicate key must be refused")
            } catch let error as PostgresError {
                #expect(error.isUniqueViolation)
                #expect(error.sqlState == "23505")
                #expect(!error.isConnectionError)
                guard case .server(_, _, _, let constraint) = error else { Issue.record("got \(error)"); return }
                #expect(constraint == "people_pkey")
            }
            // The connection is still good after a statement error.
            #expect(try await postgres.query("SELECT count(*) FROM people")[0].decode(Int.self, at: 0) == 1)
        }
    }

    @Test func transactionCommitsOrRollsBackWhole() async throws {
        struct Abort: Error {}
        try await TestServices.withSchema { postgres, _ in
            try await postgres.query("CREATE TABLE ledger (n int)")
            try await postgres.transaction { transaction in
                try await transaction.query("INSERT INTO ledger VALUES (1)")
                try await transaction.query("INSERT INTO ledger VALUES (2)")
            }
            await #expect(throws: Abort.self) {
                try await postgres.transaction { transaction in
                    try await transaction.query("INSERT INTO ledger VALUES (3)")
                    throw Abort()
                }
            }
            await #expect(throws: PostgresError.self) {
                try await postgres.transaction { transaction in
                    try await transaction.query("INSERT INTO ledger VALUES (4)")
                    try await transaction.query("INSERT INTO ledger VALUES ('not a number')")
                }
            }
            let values = try await postgres.query("SELECT n FROM ledger ORDER BY n").map { try $0.decode(Int.self, at: 0) }
            #expect(values == [1, 2])
        }
    }

    @Test func copyLoadsTenThousandRowsWithAwkwardText() async throws {
        try await TestServices.withSchema { postgres, _ in
            try await postgres.query("CREATE TABLE lines (n int PRIMARY KEY, body text, raw bytea, note text)")
            let rows: [[any PostgresEncodable]] = (1...10_000).map { n in
                [n, "line \(n)\twith tab\nnewline \\ backslash\r", [UInt8(n % 256), 0, 92], n % 3 == 0 ? String?.none : "note"]
            }
            let copied = try await postgres.copy(into: "lines", columns: ["n", "body", "raw", "note"], rows: rows)
            #expect(copied == 10_000)
            let row = try await postgres.query("SELECT body, raw, note FROM lines WHERE n = 9999")[0]
            #expect(try row.decode(String.self, at: 0) == "line 9999\twith tab\nnewline \\ backslash\r")
            #expect(try row.decode([UInt8].self, at: 1) == [UInt8(9999 % 256), 0, 92])
            #expect(try row.decode(String?.self, at: 2) == nil)
            let nulls = try await postgres.query("SELECT count(*) FROM lines WHERE note IS NULL")[0].decode(Int.self, at: 0)
            #expect(nulls == 3333)
            await #expect(throws: PostgresError.self) {
                try await postgres.copy(into: "lines", columns: ["n", "body", "raw", "note"], rows: [rows[0]])
            }
            #expect(try await postgres.query("SELECT 1")[0].decode(Int.self, at: 0) == 1)
        }
    }

    @Test func migrationsRunTwiceAndConcurrentlyWithoutError() async throws {
        try await TestServices.withSchema(poolSize: 1) { postgres, schema in
            let clients = try (0..<4).map { _ in
                PostgresClient(try PostgresConfiguration(url: TestServices.databaseURL, poolSize: 1, searchPath: schema))
            }
            let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
                for client in clients { group.addTask { try await PostgresMigrator(client: client).migrate() } }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            #expect(applied.sorted() == Migration.all.map(\.version))
            #expect(try await PostgresMigrator(client: postgres).migrate() == [])
            #expect(try await PostgresMigrator(client: postgres).appliedVersions() == Migration.all.map(\.version))
            let tables = try await postgres.query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1", schema
            ).map { try $0.decode(String.self, at: 0) }
            #expect(Set(tables).isSuperset(of: ["channels", "messages", "notifications", "reactions", "read_receipts",
                                                "uploads", "users", "workspaces", "workspace_members", "channel_members"]))
            for client in clients { await client.shutdown() }
        }
    }

    @Test func refusedConnectionAndUnknownRoleGiveOneLineErrors() async throws {
        let refused = PostgresClient(try PostgresConfiguration(url: "postgres://parley@127.0.0.1:1/parley", poolSize: 1))
        do {
            try await refused.ping()
            Issue.record("nothing listens on port 1")
        } catch let error as PostgresError {
            guard case .connectionFailed(let endpoint, let reason) = error else { Issue.record("got \(error)"); return }
            #expect(endpoint == "127.0.0.1:1/parley")
            #expect(reason.contains("refused"))
            #expect(!error.description.contains("\n"))
        }
        await refused.shutdown()
        let stranger = TestServices.databaseURL.replacingOccurrences(of: "parley@", with: "nobody:secret@")
        let denied = PostgresClient(try PostgresConfiguration(url: stranger, poolSize: 1))
        do {
            try await denied.ping()
            Issue.record("an unknown role must be refused")
        } catch let error as PostgresError {
            #expect(error.description.contains("role \"nobody\" does not exist"))
            #expect(!error.description.contains("secret"))
        }
        await denied.shutdown()
        #expect(throws: PostgresError.self) { try PostgresConfiguration(url: "not a url") }
    }
}
