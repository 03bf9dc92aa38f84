import Foundation
import ParleyPostgres
import Testing

@Suite("PostgreSQL client across a server restart")
struct PostgresRestartTests {
    @Test func poolRecoversAfterPostgresRestarts() async throws {
        let port = Int.random(in: 40_000..<50_000)
        let folder = TestServices.repositoryRoot.appendingPathComponent("var/test-postgres-\(port)").path
        let services = TestServices.repositoryRoot.appendingPathComponent("cluster/services").path
        let environment = ["PARLEY_SERVICES_DIR": folder, "PARLEY_SERVICES_PG_PORT": "\(port)"]
        try TestServices.run(services, ["start", "postgres"], environment: environment)
        defer {
            _ = try? TestServices.run(services, ["stop", "postgres"], environment: environment)
            try? FileManager.default.removeItem(atPath: folder)
        }
        let postgres = PostgresClient(try PostgresConfiguration(url: "postgres://parley@127.0.0.1:\(port)/parley", poolSize: 3))
        try await postgres.query("CREATE TABLE visits (n int)")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for n in 0..<3 { group.addTask { try await postgres.query("INSERT INTO visits VALUES ($1)", n) } }
            try await group.waitForAll()
        }

        try TestServices.run(services, ["stop", "postgres"], environment: environment)
        do {
            try await postgres.ping()
            Issue.record("the server is stopped")
        } catch let error as PostgresError {
            #expect(error.isConnectionError, "a stopped server is a connection error, got \(error)")
        }
        try TestServices.run(services, ["start", "postgres"], environment: environment)
        #expect(await TestServices.eventually { (try? await postgres.ping()) != nil })
        let count = try await postgres.query("SELECT count(*) FROM visits")[0].decode(Int.self, at: 0)
        #expect(count == 3)
        await postgres.shutdown()
    }
}
