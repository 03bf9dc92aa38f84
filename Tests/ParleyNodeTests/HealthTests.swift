import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import ParleyGateway
import ParleyRuntime
import Testing

@Suite("Node health endpoints")
struct HealthTests {
    struct Health: Decodable {
        let status: String
        let node: String
        let checks: [String: String]?
    }

    func withNode(redisURL: String = NodeHarness.redisURL, _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let logger = Logger(label: "test")
        let configuration = NodeHarness.configuration(redisURL: redisURL)
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
}
