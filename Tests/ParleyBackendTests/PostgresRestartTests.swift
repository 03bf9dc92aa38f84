import Foundation
import ParleyPostgres
import ParleyTestSupport
import Testing

@Suite("PostgreSQL client across a server restart")
struct PostgresRestartTests {
    @Test func poolRecoversAfterPostgresRestarts() async throws {
        let database = try await PrivatePostgres()
        let postgres = PostgresClient(try PostgresConfiguration(url: database.url, poolSize: 3))
        try await postgres.query("CREATE TABLE visits (n int)")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for n in 0..<3 { group.addTask { try await postgres.query("INSERT INTO visits VALUES ($1)", n) } }
            try await group.waitForAll()
        }

        try await database.stop()
        do {
            try await postgres.ping()
            Issue.record("the server is stopped")
        } catch let error as PostgresError {
            #expect(error.isConnectionError, "a stopped server is a connection error, got \(error)")
        }
        try await database.start()
        #expect(await TestServices.eventually { (try? await postgres.ping()) != nil })
        let count = try await postgres.query("SELECT count(*) FROM visits")[0].decode(Int.self, at: 0)
        #expect(count == 3)
        await postgres.shutdown()
    }

    /// Issue 14.8: the server cancels a statement that runs past `statement_timeout`.
    @Test func aStatementPastTheTimeoutIsCancelled() async throws {
        let postgres = PostgresClient(try PostgresConfiguration(url: TestServices.databaseURL, poolSize: 1,
                                                                statementTimeout: .milliseconds(200)))
        do {
            try await postgres.query("SELECT pg_sleep(5)")
            Issue.record("pg_sleep(5) ran to the end")
        } catch let error as PostgresError {
            #expect(error.sqlState == "57014", "query_canceled, got \(error)")
        }
        try await postgres.ping()
        await postgres.shutdown()
    }
}
