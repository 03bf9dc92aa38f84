import Foundation
import ParleyCore
import ParleyTestSupport
import Testing

/// Runs a Python driver of `Tests/clients` that starts a real `parley serve` (the debug
/// build) and prints one JSON report line with its `problems`.
enum ClientDriver {
    /// The node's settings: its own port, Redis prefix and PostgreSQL schema.
    static func environment(node: String, schema: String, redisURL: String = TestServices.redisURL) -> [String: String] {
        [
            "PARLEY_HTTP_PORT": "\(Int.random(in: 30_000..<40_000))", "PARLEY_NODE_NAME": node,
            "PARLEY_REDIS_URL": redisURL, "PARLEY_REDIS_PREFIX": TestServices.uniquePrefix(node),
            "PARLEY_DATABASE_URL": TestServices.databaseURL + "?options=-csearch_path%3D\(schema)",
            "PARLEY_TOKEN_SECRET": "driver-test-secret-driver-test-secret-01", "PARLEY_BCRYPT_COST": "4",
        ]
    }

    /// The driver's report, after expecting it found no problems; nil (with an issue recorded)
    /// when it could not run.
    static func run(_ script: String, _ arguments: [String], environment: [String: String]) async throws -> JSONValue? {
        let root = TestServices.repositoryRoot
        let python = root.appendingPathComponent(".venv/bin/python").path
        let parley = root.appendingPathComponent(".build/debug/parley").path
        guard FileManager.default.isExecutableFile(atPath: python), FileManager.default.isExecutableFile(atPath: parley) else {
            Issue.record("needs .venv (cluster/test makes it) and the debug build of parley")
            return nil
        }
        let output: String
        do {
            output = try await TestServices.run(python, [root.appendingPathComponent("Tests/clients/\(script)").path, "--parley", parley]
                                                    + arguments, environment: environment)
        } catch {
            Issue.record("\(script) failed: \(error)")
            return nil
        }
        let line = try #require(output.split(separator: "\n").last { $0.hasPrefix("{") }, "no report in: \(output)")
        let report = try JSONParser.parse(String(line))
        #expect(report["problems"]?.arrayValue?.isEmpty == true, "\(report["problems"] ?? .null)")
        return report
    }
}
