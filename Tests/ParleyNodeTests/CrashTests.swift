import Foundation
import ParleyCore
import ParleyPostgres
import ParleyTestSupport
import Testing

/// A real `parley serve` process under load from reconnecting, resending clients
/// (`Tests/clients/crash_chat.py`), crashed mid-run: the node `kill -9`ed three times, its
/// Redis `kill -9`ed three times (append-only, `appendfsync always`), or the node frozen with
/// SIGSTOP past its lease TTL three times. Afterwards every acknowledged message is in
/// PostgreSQL exactly once with its acknowledged `seq`, every channel's `seq`s are gap-free, and
/// (checked by the driver) every socket received every `seq` of its channel exactly once.
@Suite("A node crashed under load loses nothing acknowledged", .serialized)
struct CrashTests {
    enum Fault: String, CaseIterable, Sendable { case node, redis, pause }

    @Test(arguments: Fault.allCases)
    func everyAcknowledgedMessageIsStoredOnceAndEverySocketGetsEverySeqOnce(fault: Fault) async throws {
        try await TestServices.withSchema { postgres, schema in
            var redisURL = TestServices.redisURL
            var arguments = ["--mode", fault.rawValue, "--kills", "3", "--log", "/tmp/parley-crash-\(fault.rawValue).log"]
            var redisFolder: URL?
            if fault == .redis {
                let redisPort = Int.random(in: 20_000..<30_000)
                let folder = FileManager.default.temporaryDirectory.appendingPathComponent("parley-crash-redis-\(UUID())")
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                redisFolder = folder
                redisURL = "redis://127.0.0.1:\(redisPort)"
                arguments += ["--redis-port", "\(redisPort)", "--redis-dir", folder.path]
            }
            defer { if let redisFolder { try? FileManager.default.removeItem(at: redisFolder) } }
            var environment = ClientDriver.environment(node: "crash-\(fault.rawValue)", schema: schema, redisURL: redisURL)
            environment.merge(["PARLEY_LEASE_TTL_MS": "2000", "PARLEY_BATCH_SIZE": "200", "PARLEY_BATCH_TIMEOUT_MS": "3000",
                               "PARLEY_LOG_LEVEL": "notice"]) { $1 }
            guard let report = try await ClientDriver.run("crash_chat.py", arguments, environment: environment) else { return }
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
            #expect(acknowledged > 100, "the run acknowledged \(acknowledged) messages: too few to mean anything")
            print("crash test (\(fault.rawValue)): \(acknowledged) acknowledged messages in \(channels.count) channels, "
                  + "\(report["stats"]?.jsonText ?? "")")
        }
    }
}
