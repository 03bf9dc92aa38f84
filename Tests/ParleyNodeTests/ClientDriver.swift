import Foundation
import ParleyCore
import ParleyPostgres
import ParleyTestSupport
import Testing

/// Runs a Python driver of `Tests/clients` that starts a real `parley serve` (the debug
/// build) and prints one JSON report line with its `problems`.
enum ClientDriver {
    /// The node's settings: its own port, Redis prefix and PostgreSQL schema.
    static func environment(node: String, schema: String, redisURL: String = TestServices.redisURL) -> [String: String] {
        [
            "PARLEY_HTTP_PORT": "\(TestServices.freePort())", "PARLEY_NODE_NAME": node,
            "PARLEY_REDIS_URL": redisURL, "PARLEY_REDIS_PREFIX": TestServices.uniquePrefix(node),
            "PARLEY_DATABASE_URL": TestServices.databaseURL + "?options=-csearch_path%3D\(schema)",
            "PARLEY_TOKEN_SECRET": "driver-test-secret-driver-test-secret-01", "PARLEY_BCRYPT_COST": "4",
            "PARLEY_DELIVERY_ALLOWED_NETWORKS": "127.0.0.0/8",
            "PARLEY_CLAMD_URL": ProcessInfo.processInfo.environment["PARLEY_TEST_CLAMD_URL"] ?? "tcp://127.0.0.1:3311",
            "PARLEY_BLOB_DIR": FileManager.default.temporaryDirectory.appendingPathComponent("parley-blobs-\(node)-\(UUID())").path,
        ]
    }

    /// A port and an empty folder for a redis-server the driver runs itself (`--redis-port`,
    /// `--redis-dir`); the folder is removed after `body`.
    static func withPrivateRedis<R>(_ name: String, _ body: (_ url: String, _ arguments: [String]) async throws -> R) async throws -> R {
        let port = TestServices.freePort()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("parley-\(name)-redis-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        return try await body("redis://127.0.0.1:\(port)", ["--redis-port", "\(port)", "--redis-dir", folder.path])
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

    /// Checks PostgreSQL against the report's acknowledgements (`channels`: id → cmid → seq):
    /// each channel holds exactly the acknowledged messages at their seqs, gap-free from 1, no
    /// `client_msg_id` twice. Returns how many messages were acknowledged.
    @discardableResult
    static func verifyStored(_ report: JSONValue, in postgres: PostgresClient) async throws -> Int {
        let channels = try #require(report["channels"]?.objectValue)
        var acknowledged = 0
        for (channel, acks) in channels {
            let rows = try await postgres.query("SELECT seq, client_msg_id FROM messages WHERE channel_id = $1::uuid ORDER BY seq",
                                                channel)
            let stored = try rows.map { (try $0.decode(Int64.self, at: 0), try $0.decode(String.self, at: 1)) }
            #expect(stored.map(\.0) == (0..<stored.count).map { Int64($0 + 1) }, "channel \(channel): seqs gap-free from 1")
            let expected = (acks.objectValue ?? [:]).mapValues { $0.intValue ?? -1 }
            let storedByID = Dictionary(stored.map { ($0.1, $0.0) }, uniquingKeysWith: { first, _ in first })
            #expect(stored.count == storedByID.count, "channel \(channel): a client_msg_id stored twice")
            #expect(storedByID == expected, "channel \(channel): PostgreSQL holds exactly the acknowledged messages at their seqs")
            acknowledged += expected.count
        }
        return acknowledged
    }
}
