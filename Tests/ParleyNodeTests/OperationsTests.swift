import Foundation
import ParleyTestSupport
import Testing

/// How operators run Parley: `docker-compose.yml` and `cluster/up --nodes 3` must describe the
/// same topology (`Tests/clients/topology_check.py` compares the compose file with
/// `cluster/up --plan`, and `haproxy -c` takes the shared config with both environments).
/// The cluster scripts themselves — `cluster/up` of three nodes behind HAProxy, draining on
/// SIGTERM, a rolling restart and the one-minute chaos run — run after these tests in
/// `cluster/test` (`cluster/chaos`), on their own Redis, PostgreSQL and ports.
@Suite("Operations: the compose file and cluster/up agree")
struct OperationsTests {
    static let root = TestServices.repositoryRoot
    static let python = root.appendingPathComponent(".venv/bin/python").path
    static let check = root.appendingPathComponent("Tests/clients/topology_check.py").path

    @Test func composeDescribesTheTopologyClusterUpStarts() async throws {
        let output = try await TestServices.run(Self.python, [Self.check])
        #expect(output.contains("topology: ok"), "\(output)")
    }

    /// The check can fail: a compose file whose second node listens elsewhere and whose Redis
    /// syncs once a second is told apart, difference by difference.
    @Test func aComposeFileThatDriftedIsRefused() async throws {
        let original = try String(contentsOf: Self.root.appendingPathComponent("docker-compose.yml"), encoding: .utf8)
        let drifted = original
            .replacingOccurrences(of: "PARLEY_HTTP_PORT: \"4002\"", with: "PARLEY_HTTP_PORT: \"4012\"")
            .replacingOccurrences(of: "\"--appendfsync\", \"always\"", with: "\"--appendfsync\", \"everysec\"")
            .replacingOccurrences(of: "PARLEY_NODE_3: node-3:4003", with: "PARLEY_NODE_3: node-3:4004")
        #expect(drifted != original)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("parley-compose-\(UUID()).yml")
        try drifted.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        do {
            let output = try await TestServices.run(Self.python, [Self.check, "--compose", file.path])
            Issue.record("the drifted compose file passed: \(output)")
        } catch let failure as TestServices.ProcessFailure {
            let text = failure.description
            #expect(text.contains("node-2 PARLEY_HTTP_PORT"), "\(text)")
            #expect(text.contains("redis appendfsync"), "\(text)")
            #expect(text.contains("haproxy PARLEY_NODE_3"), "\(text)")
        }
    }
}
