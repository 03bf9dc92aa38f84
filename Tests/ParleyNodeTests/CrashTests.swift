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
        if fault == .redis {
            try await ClientDriver.withPrivateRedis("crash") { url, arguments in try await run(fault, redisURL: url, arguments) }
        } else {
            try await run(fault, redisURL: TestServices.redisURL, [])
        }
    }

    func run(_ fault: Fault, redisURL: String, _ extra: [String]) async throws {
        try await TestServices.withSchema { postgres, schema in
            let arguments = ["--mode", fault.rawValue, "--kills", "3", "--log", "/tmp/parley-crash-\(fault.rawValue).log"] + extra
            var environment = ClientDriver.environment(node: "crash-\(fault.rawValue)", schema: schema, redisURL: redisURL)
            environment.merge(["PARLEY_LEASE_TTL_MS": "2000", "PARLEY_BATCH_SIZE": "200", "PARLEY_BATCH_TIMEOUT_MS": "3000",
                               "PARLEY_LOG_LEVEL": "notice"]) { $1 }
            guard let report = try await ClientDriver.run("crash_chat.py", arguments, environment: environment) else { return }
            let acknowledged = try await ClientDriver.verifyStored(report, in: postgres)
            #expect(acknowledged > 100, "the run acknowledged \(acknowledged) messages: too few to mean anything")
            print("crash test (\(fault.rawValue)): \(acknowledged) acknowledged messages in \(report["channels"]?.objectValue?.count ?? 0) channels, "
                  + "\(report["stats"]?.jsonText ?? "")")
        }
    }
}
