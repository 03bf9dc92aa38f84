import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import ParleyCore
import ParleyGateway
import ParleyRuntime
import ParleyWiring
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
        let node = try await Node.start(configuration: configuration, backends: backends, logger: logger)
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
            // Ready once the probe through the bus came back (at once, here).
            #expect(await TestServices.eventually { (try? await client.execute(uri: "/readyz", method: .get) { $0.status }) == .ok })
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .ok)
                let health = try JSONDecoder().decode(Health.self, from: Data(buffer: response.body))
                #expect(health.checks == ["redis": "ok", "postgres": "ok", "cluster": "ok", "leases": "ok", "bus": "ok"])
            }
        }
    }

    /// Redis killed under a running node: `/readyz` fails at once and names it; the heartbeat
    /// and the lease renewals fail with it (the node cannot prove it is in the cluster).
    @Test func readyzFailsAndNamesTheBackendThatDoesNotAnswer() async throws {
        let redis = try await PrivateRedis()
        try await withNode(redisURL: redis.url) { client in
            #expect(await TestServices.eventually { (try? await client.execute(uri: "/readyz", method: .get) { $0.status }) == .ok })
            redis.kill()
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let health = try JSONDecoder().decode(Health.self, from: Data(buffer: response.body))
                #expect(health.status == "unavailable")
                #expect(health.checks?["redis"]?.contains("127.0.0.1:\(redis.port)") == true, "\(health.checks ?? [:])")
                #expect(health.checks?["postgres"] == "ok")
            }
            #expect(await TestServices.eventually {
                let checks: [String: String]? = try? await client.execute(uri: "/readyz", method: .get) { response in
                    try JSONDecoder().decode(Health.self, from: Data(buffer: response.body)).checks ?? [:]
                }
                return checks?["cluster"] != "ok"
            }, "the heartbeat is not confirmed once it is older than its TTL")
        }
    }

    /// Issue 15.1: a node name belongs to one live process; a second one with that name refuses
    /// to start, naming the holder.
    @Test func aSecondNodeWithALiveNodesNameRefusesToStart() async throws {
        let logger = Logger(label: "test")
        let configuration = NodeHarness.configuration()
        let first = try Backends.connect(configuration, logger: logger)
        let second = try Backends.connect(configuration, logger: logger)
        let running = try await Node.start(configuration: configuration, backends: first, logger: logger)
        let heartbeat = Task { try await running.membership.run() }
        let started = ContinuousClock.now
        do {
            _ = try await Node.start(configuration: configuration, backends: second, logger: logger)
            Issue.record("the second node started")
        } catch let error as ClusterMembership.NameTaken {
            #expect("\(error)".contains("test-node") && "\(error)".contains(running.identity.incarnation))
        }
        // It waited one heartbeat TTL (a crashed predecessor's name would have freed itself).
        #expect(ContinuousClock.now - started >= configuration.heartbeatTTL)
        heartbeat.cancel()
        await first.shutdown()
        await second.shutdown()
    }

    /// Issue 14.8: a PostgreSQL that hangs (SIGSTOP: connections open, no answer) makes
    /// `/readyz` answer 503 within its timeout instead of hanging with it.
    @Test func readyzAnswersWhilePostgresHangs() async throws {
        let postgres = try await PrivatePostgres()
        try await withTimeout(.seconds(60)) {
            try await withNode(databaseURL: postgres.url) { client in
                // Ready once the probe through the bus came back.
                #expect(await TestServices.eventually { (try? await client.execute(uri: "/readyz", method: .get) { $0.status }) == .ok })
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
                // Back once PostgreSQL answers again (its connections reconnect with backoff).
                #expect(await TestServices.eventually(within: .seconds(30)) {
                    (try? await client.execute(uri: "/readyz", method: .get) { $0.status }) == .ok
                })
            }
        }
    }
}
