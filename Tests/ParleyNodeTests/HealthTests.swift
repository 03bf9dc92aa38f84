import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import ParleyCore
import ParleyGateway
import ParleyRuntime
import ParleyTestSupport
import Testing

@Suite("Node health endpoints")
struct HealthTests {
    struct Health: Decodable {
        let status: String
        let node: String
        let checks: [String: String]?
    }

    func withNode(redisURL: String = NodeHarness.redisURL, databaseURL: String = NodeHarness.databaseURL, _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let logger = Logger(label: "test")
        let configuration = NodeHarness.configuration(redisURL: redisURL, databaseURL: databaseURL)
        let backends = try Backends.connect(configuration, logger: logger)
        let node = await Node.start(configuration: configuration, backends: backends, logger: logger)
        try await buildApplication(node: node).test(.live) { client in try await body(client) }
        await backends.shutdown()
    }

    @Test func healthzAndReadyzAnswerWhenBackendsDo() async throws {
        try await withNode { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
                let health = try JSONDecoder().decode(Health.self, from: Data(buffer: response.body))
                #expect(health.status == "ok")
                #expect(health.node == "test-node")
            }
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .ok)
                let health = try JSONDecoder().decode(Health.self, from: Data(buffer: response.body))
                #expect(health.checks == ["redis": "ok", "postgres": "ok"])
            }
        }
    }

    @Test func readyzFailsAndNamesTheBackendThatDoesNotAnswer() async throws {
        try await withNode(redisURL: "redis://127.0.0.1:1") { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let health = try JSONDecoder().decode(Health.self, from: Data(buffer: response.body))
                #expect(health.status == "unavailable")
                #expect(health.checks?["redis"]?.contains("127.0.0.1:1") == true)
                #expect(health.checks?["postgres"] == "ok")
            }
        }
    }

    /// Issue 14.8: a PostgreSQL that hangs (SIGSTOP: connections open, no answer) makes
    /// `/readyz` answer 503 within its timeout instead of hanging with it.
    @Test func readyzAnswersWhilePostgresHangs() async throws {
        let postgres = try await PrivatePostgres()
        try await withTimeout(.seconds(60)) {
            try await withNode(databaseURL: postgres.url) { client in
                try await client.execute(uri: "/readyz", method: .get) { response in #expect(response.status == .ok) }
                try await postgres.freeze()
                do {
                    try await client.execute(uri: "/readyz", method: .get) { response in
                        #expect(response.status == .serviceUnavailable)
                        let health = try JSONDecoder().decode(Health.self, from: Data(buffer: response.body))
                        #expect(health.checks?["postgres"]?.contains("timed out") == true, "\(health.checks ?? [:])")
                        #expect(health.checks?["redis"] == "ok")
                    }
                } catch {
                    Issue.record("readyz: \(error)")
                }
                try await postgres.freeze(false)
                #expect(await TestServices.eventually {
                    (try? await client.execute(uri: "/readyz", method: .get) { $0.status }) == .ok
                })
            }
        }
    }
}
