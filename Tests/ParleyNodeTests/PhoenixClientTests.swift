import Foundation
import HummingbirdTesting
import ParleyCore
import Testing

@Suite("Third-party Phoenix clients")
struct PhoenixClientTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// phxsocket (PyPI), unmodified, chats through a live node with the 1.0.0 serializer.
    @Test func phxsocketFromPyPIChatsUnmodified() async throws {
        let python = Self.root.appendingPathComponent(".venv/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: python) else {
            Issue.record("no .venv: run the tests with cluster/test, which installs the Python clients")
            return
        }
        try await withTimeout(.seconds(90)) {
            try await NodeHarness.withNode { client, _ in
                let port = client.port!
                let output = try await Task.detached {
                    try Self.run(python, [Self.root.appendingPathComponent("Tests/clients/phxsocket_chat.py").path, String(port)])
                }.value
                #expect(output.status == 0, "phxsocket script: \(output.text)")
                #expect(output.text.contains("phxsocket: ok"))
            }
        }
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, text: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("phx-\(UUID()).out")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: output) }
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        process.waitUntilExit()
        try handle.close()
        return (process.terminationStatus, (try? String(contentsOf: output, encoding: .utf8)) ?? "")
    }
}
