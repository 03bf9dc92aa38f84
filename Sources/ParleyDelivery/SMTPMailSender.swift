import Foundation
import NIOPosix
import ParleyCore
import ParleySockets

/// Sends mail to an SMTP server (a relay on the operator's network: `smtp://host:port`), one
/// connection per message, with blocking sockets on threads of its own (never the cooperative
/// pool). The conversation is RFC 5321's plain one — EHLO, MAIL FROM, RCPT TO, DATA, QUIT — with
/// no TLS or AUTH: point it at a local relay (postfix, an SES/SMTP sidecar) that has them.
/// A 4xx reply or a broken connection is retried; a 5xx reply is a refusal.
public final class SMTPMailSender: MailSender {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        public var from: String
        public var timeout: Duration

        /// From `smtp://host[:port]`.
        public init(url: String, from: String, timeout: Duration = .seconds(10)) throws {
            guard let components = URLComponents(string: url), components.scheme == "smtp", let host = components.host else {
                throw DeliveryError.permanent("PARLEY_SMTP_URL must look like smtp://host:port, not \(url)")
            }
            self.host = host
            self.port = components.port ?? 25
            self.from = from
            self.timeout = timeout
        }
    }

    private let configuration: Configuration
    private let threads: NIOThreadPool

    public init(_ configuration: Configuration, threads: Int = 2) {
        self.configuration = configuration
        self.threads = NIOThreadPool(numberOfThreads: threads)
        self.threads.start()
    }

    public func send(_ message: MailMessage) async throws {
        let configuration = configuration
        try await threads.runIfActive { try SMTPConversation(configuration).send(message) }
    }

    public func shutdown() async {
        try? await threads.shutdownGracefully()
    }

    /// The message as RFC 5322 text: headers (a non-ASCII subject as an RFC 2047 word) and a
    /// base64 body, CRLF line ends.
    static func text(of message: MailMessage, from: String, date: Date = Date()) -> String {
        let subject = message.subject.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
        let encodedSubject = subject.allSatisfy(\.isASCII) ? subject : "=?UTF-8?B?\(Data(subject.utf8).base64EncodedString())?="
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        let body = Data(message.text.utf8).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn,
                                                                          .endLineWithLineFeed])
        return ["From: \(from)", "To: \(message.to)", "Subject: \(encodedSubject)", "Date: \(formatter.string(from: date))",
                "Message-ID: \(message.messageID)", "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
                "Content-Transfer-Encoding: base64", "", body].joined(separator: "\r\n")
    }
}

/// One SMTP session on a blocking socket. Every socket failure can pass (retried).
private struct SMTPConversation {
    let configuration: SMTPMailSender.Configuration
    private let socket: BlockingSocket

    init(_ configuration: SMTPMailSender.Configuration) throws {
        self.configuration = configuration
        socket = try retryable { () throws(SocketFailure) in
            try BlockingSocket.connect(host: configuration.host, port: configuration.port, timeout: configuration.timeout)
        }
    }

    func send(_ message: MailMessage) throws {
        defer { socket.close() }
        var reader = LineReader(socket: socket)
        try expect(220, reader.reply())
        try command("EHLO parley", expect: 250, &reader)
        try command("MAIL FROM:<\(address(configuration.from))>", expect: 250, &reader)
        try command("RCPT TO:<\(address(message.to))>", expect: 250, &reader)
        try command("DATA", expect: 354, &reader)
        // Dot-stuffing: a line starting with "." gets another.
        let text = SMTPMailSender.text(of: message, from: configuration.from).components(separatedBy: "\r\n")
            .map { $0.hasPrefix(".") ? "." + $0 : $0 }.joined(separator: "\r\n")
        try write(text + "\r\n.\r\n")
        try expect(250, reader.reply())
        try? command("QUIT", expect: 221, &reader)
    }

    /// The bare address (no CR, LF, angle brackets).
    private func address(_ text: String) -> String {
        String(text.filter { !"\r\n<>".contains($0) })
    }

    private func command(_ line: String, expect code: Int, _ reader: inout LineReader) throws {
        try write(line + "\r\n")
        try expect(code, reader.reply(), after: line)
    }

    private func expect(_ code: Int, _ reply: (code: Int, text: String), after command: String = "greeting") throws {
        guard reply.code != code && !(code == 250 && reply.code == 251) else { return }
        let why = "\(command.prefix(40)) → \(reply.code) \(reply.text)"
        throw reply.code >= 500 ? DeliveryError.permanent(why) : DeliveryError.retryable(why)
    }

    private func write(_ text: String) throws {
        try retryable { () throws(SocketFailure) in try socket.write(Array(text.utf8)) }
    }
}

private func retryable<T>(_ body: () throws(SocketFailure) -> T) throws(DeliveryError) -> T {
    do { return try body() } catch { throw .retryable(error.description) }
}

/// Reads SMTP replies (`250-…` continuation lines up to the final `250 …`).
private struct LineReader {
    let socket: BlockingSocket
    private var buffer: [UInt8] = []

    init(socket: BlockingSocket) { self.socket = socket }

    mutating func reply() throws -> (code: Int, text: String) {
        while true {
            let line = try self.line()
            guard line.count >= 3, let code = Int(line.prefix(3)) else { throw DeliveryError.retryable("not SMTP: \(line.prefix(80))") }
            if line.count == 3 || line[line.index(line.startIndex, offsetBy: 3)] != "-" { return (code, String(line.dropFirst(4))) }
        }
    }

    private mutating func line() throws -> String {
        while true {
            if let end = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<end], as: UTF8.self).trimmingCharacters(in: .newlines)
                buffer.removeFirst(end + 1)
                return line
            }
            guard buffer.count < 64 * 1024 else { throw DeliveryError.retryable("SMTP reply line too long") }
            buffer += try retryable { () throws(SocketFailure) in try socket.read() }
        }
    }
}
