import Foundation
import ParleyCore
import ParleyTestSupport
import Testing

/// Several real `parley serve` processes (three, a fourth joining) on one Redis and one
/// PostgreSQL (each test its own Redis prefix and schema), under load from reconnecting,
/// resending clients homed on different nodes (`Tests/clients/cluster_chat.py`), through the
/// faults a cluster lives with. After each run PostgreSQL holds exactly the acknowledged
/// messages at their seqs, gap-free; the driver checks that every socket received every seq of
/// its channel once and in order, and prints what it measured (failover, handoff, presence).
@Suite("Cluster: several nodes, one Redis, one PostgreSQL", .serialized)
struct ClusterTests {
    enum Scenario: String, CaseIterable, Sendable { case chat, kill, join, pause, redis, presence, names }

    @Test(arguments: Scenario.allCases)
    func threeNodesServeEveryChannelFromAnyNodeThroughFaults(scenario: Scenario) async throws {
        if scenario == .redis {
            try await ClientDriver.withPrivateRedis("cluster") { url, arguments in try await run(scenario, redisURL: url, arguments) }
        } else {
            try await run(scenario, redisURL: TestServices.redisURL, [])
        }
    }

    func run(_ scenario: Scenario, redisURL: String, _ extra: [String]) async throws {
        try await TestServices.withSchema { postgres, schema in
            let log = "/tmp/parley-cluster-\(scenario.rawValue).log"
            try? FileManager.default.removeItem(atPath: log)
            var environment = ClientDriver.environment(node: "cluster", schema: schema, redisURL: redisURL)
            environment["PARLEY_LOG_LEVEL"] = "notice"
            guard let report = try await ClientDriver.run("cluster_chat.py", ["--scenario", scenario.rawValue, "--log", log] + extra,
                                                          environment: environment) else { return }
            let acknowledged = try await ClientDriver.verifyStored(report, in: postgres)
            if ![.presence, .names].contains(scenario) {
                #expect(acknowledged > 100, "the run acknowledged \(acknowledged) messages: too few to mean anything")
            }
            print("cluster test (\(scenario.rawValue)): \(acknowledged) acknowledged; measured \(report["measured"]?.jsonText ?? "{}"); "
                  + "stats \(report["stats"]?.jsonText ?? "")")
        }
    }
}
