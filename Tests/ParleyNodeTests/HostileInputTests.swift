import Foundation
import ParleyCore
import ParleyTestSupport
import Testing

/// Hostile input against a real `parley serve` process (`Tests/clients/hostile.py`):
/// malformed frames, wrong types, 1 MiB payloads and 2 MiB frames, NUL and control
/// characters, tampered, expired and foreign tokens, malformed path ids, 3,000 joins of random
/// channel ids, a sign-in flood. Every one is answered with its stable code; afterwards no
/// channel server, lease or fence key exists for a channel nobody could join, the node's RSS
/// stayed bounded and `/readyz` is 200.
@Suite("Hostile input against a real node")
struct HostileInputTests {
    @Test func everyHostileRequestGetsItsStableCodeAndNothingGrows() async throws {
        try await TestServices.withSchema { _, schema in
            var environment = ClientDriver.environment(node: "hostile", schema: schema)
            environment["PARLEY_LOG_LEVEL"] = "error"
            guard let report = try await ClientDriver.run("hostile.py", ["--log", "/tmp/parley-hostile.log"],
                                                          environment: environment) else { return }
            print("hostile input: \(report["codes"]?.jsonText ?? ""); RSS KiB before/after \(report["rss_kib"]?.jsonText ?? "")")
        }
    }

    /// Issue 14.10: no built-in secret to forge tokens with: `parley serve` refuses to start
    /// without one, saying how to give one.
    @Test func theNodeRefusesToStartWithoutATokenSecret() async throws {
        let parley = TestServices.repositoryRoot.appendingPathComponent(".build/debug/parley").path
        guard FileManager.default.isExecutableFile(atPath: parley) else {
            Issue.record("needs the debug build of parley")
            return
        }
        do {
            _ = try await TestServices.run("/usr/bin/env", ["-u", "PARLEY_TOKEN_SECRET", parley, "serve", "--http-port", "1"])
            Issue.record("the node started without a token secret")
        } catch let failure as TestServices.ProcessFailure {
            #expect(failure.description.contains("no token secret: set PARLEY_TOKEN_SECRET"), "\(failure)")
        }
    }
}
