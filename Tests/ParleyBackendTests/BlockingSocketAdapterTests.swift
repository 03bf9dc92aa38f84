import Foundation
import ParleyCore
import ParleyDelivery
import ParleyMedia
import ParleyTestSupport
import Testing

/// The two adapters that speak to local daemons on blocking sockets (ClamAV's clamd, an SMTP
/// server) through the one socket helper they share: the real clamd answers, and every way a
/// daemon can fail comes back as the adapter's own error, saying where — retried or final as
/// the protocol says.
@Suite("Blocking-socket adapters (clamd, SMTP)")
struct BlockingSocketAdapterTests {
    static let clamdURL = ProcessInfo.processInfo.environment["PARLEY_TEST_CLAMD_URL"] ?? "tcp://127.0.0.1:3311"

    @Test func clamdScansAndARefusedConnectionSaysWhere() async throws {
        let scanner = try ClamdScanner(url: Self.clamdURL, timeout: .seconds(10))
        defer { Task { await scanner.shutdown() } }
        try await scanner.ping()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("parley-scan-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let eicar = directory.appendingPathComponent("eicar.txt"), clean = directory.appendingPathComponent("clean.txt")
        try Data(#"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"#.utf8).write(to: eicar)
        try Data(repeating: 0x61, count: 600_000).write(to: clean)  // more than two INSTREAM chunks
        #expect(try await scanner.scan(file: eicar.path)?.uppercased().contains("EICAR") == true)
        #expect(try await scanner.scan(file: clean.path) == nil)

        let port = TestServices.freePort()
        let nobody = try ClamdScanner(url: "tcp://127.0.0.1:\(port)", timeout: .seconds(2))
        defer { Task { await nobody.shutdown() } }
        do {
            try await nobody.ping()
            Issue.record("a ping to a closed port answered")
        } catch {
            #expect("\(error)".hasPrefix("clamd: connect to 127.0.0.1:\(port):"), "\(error)")
        }
    }

    @Test func smtpFailuresAreRetriedOrFinalAsTheServerSays() async throws {
        func send(to port: Int) async -> DeliveryError? {
            let sender = SMTPMailSender(try! .init(url: "smtp://127.0.0.1:\(port)", from: "parley@example.org", timeout: .seconds(2)))
            defer { Task { await sender.shutdown() } }
            do {
                try await sender.send(MailMessage(to: "bob@example.org", subject: "hi", text: "hello", messageID: "<t@parley>"))
                return nil
            } catch {
                return error as? DeliveryError
            }
        }
        let closed = TestServices.freePort()
        guard case .retryable(let why)? = await send(to: closed) else { Issue.record("nobody listening: not retryable"); return }
        #expect(why.contains("connect to 127.0.0.1:\(closed)"), "\(why)")

        let refusing = try OneShotServer(reply: "554 no service here\r\n")
        guard case .permanent(let refusal)? = await send(to: refusing.port) else { Issue.record("a 554 greeting: not final"); return }
        #expect(refusal.contains("554"), "\(refusal)")

        let hangingUp = try OneShotServer(reply: "220 hello\r\n")
        guard case .retryable(let hangUp)? = await send(to: hangingUp.port) else { Issue.record("a hang-up: not retryable"); return }
        #expect(hangUp.contains("closed the connection"), "\(hangUp)")
    }
}
