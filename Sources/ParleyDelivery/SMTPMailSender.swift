import Foundation
import NIOPosix
import ParleyCore
#if canImport(Glibc)
import Glibc
#endif

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

/// One SMTP session on a blocking socket.
private struct SMTPConversation {
    let configuration: SMTPMailSender.Configuration
    private let fd: Int32

    init(_ configuration: SMTPMailSender.Configuration) throws {
        self.configuration = configuration
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(configuration.host, "\(configuration.port)", &hints, &list) == 0, let first = list else {
            throw DeliveryError.retryable("cannot resolve \(configuration.host)")
        }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { throw DeliveryError.retryable("socket: \(String(cString: strerror(errno)))") }
        let seconds = max(1, Int(configuration.timeout.milliseconds / 1000))
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw DeliveryError.retryable("connect to \(configuration.host):\(configuration.port): \(why)")
        }
        self.fd = fd
    }

    func send(_ message: MailMessage) throws {
        defer { close(fd) }
        var reader = LineReader(fd: fd)
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
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw DeliveryError.retryable("send: \(String(cString: strerror(errno)))") }
            bytes = bytes.dropFirst(sent)
        }
    }
}

/// Reads SMTP replies (`250-…` continuation lines up to the final `250 …`).
private struct LineReader {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(fd: Int32) { self.fd = fd }

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
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = recv(fd, &chunk, chunk.count, 0)
            guard count > 0 else { throw DeliveryError.retryable("the SMTP server closed the connection or timed out") }
            buffer += chunk.prefix(count)
        }
    }
}
