import Foundation
import HummingbirdTesting
import ParleyCore
import ParleyTestSupport
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
                // Throws with the script's output when it exits non-zero.
                let output = try await Task.detached {
                    try await TestServices.run(python, [Self.root.appendingPathComponent("Tests/clients/phxsocket_chat.py").path, String(port)])
                }.value
                #expect(output.contains("phxsocket: ok"), "phxsocket script: \(output)")
            }
        }
    }
}
