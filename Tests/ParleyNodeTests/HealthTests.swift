import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import ParleyGateway
import ParleyRuntime
import Testing

@Suite("Node health endpoints")
struct HealthTests {
    static var redisURL: String { ProcessInfo.processInfo.environment["PARLEY_TEST_REDIS_URL"] ?? "redis://127.0.0.1:6380" }
    static var databaseURL: String {
        ProcessInfo.processInfo.environment["PARLEY_TEST_DATABASE_URL"] ?? "postgres://parley@127.0.0.1:5433/parley"
    }

    struct Health: Decodable {
        let status: String
        let node: String
        let checks: [String: String]?
    }

    func withNode(redisURL: String = redisURL, _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let configuration = NodeConfiguration(nodeName: "health-test", httpPort: 0, redisURL: redisURL,
                                              databaseURL: Self.databaseURL, readinessTimeout: .seconds(1))
        let logger = Logger(label: "test")
        let backends = try Backends.connect(configuration, logger: logger)
        let app = buildApplication(configuration: configuration, backends: backends, logger: logger)
        try await app.test(.live) { client in try await body(client) }
        await backends.shutdown()
    }

    @Test func healthzAndReadyzAnswerWhenBackendsDo() async throws {
        try await withNode { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
                let health = try JSONDecoder().decode(Health.self, from: Data(buffer: response.body))
                #expect(health.status == "ok")
                #expect(health.node == "health-test")
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
}
