import Foundation
import NIOPosix
import ParleyCore
#if canImport(Glibc)
import Glibc
#endif

/// Scans files with ClamAV's daemon over its INSTREAM command (TCP): `zINSTREAM\0`, the file in
/// chunks each prefixed by its length (4 bytes, network order), a zero length, then one reply —
/// `stream: OK` or `stream: <signature> FOUND`. Blocking sockets, on threads of its own.
public final class ClamdScanner: ContentScanner {
    private let host: String
    private let port: Int
    private let timeout: Duration
    private let threads: NIOThreadPool

    /// `url`: `tcp://host:port`.
    public init(url: String, timeout: Duration = .seconds(60), threads: Int = 2) throws {
        guard let components = URLComponents(string: url), components.scheme == "tcp", let host = components.host,
              let port = components.port else {
            throw ClamdError("PARLEY_CLAMD_URL must look like tcp://host:port, not \(url)")
        }
        self.host = host
        self.port = port
        self.timeout = timeout
        self.threads = NIOThreadPool(numberOfThreads: threads)
        self.threads.start()
    }

    public struct ClamdError: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    public func scan(file path: String) async throws -> String? {
        let (host, port, timeout) = (host, port, timeout)
        return try await threads.runIfActive { try Self.scanBlocking(path, host: host, port: port, timeout: timeout) }
    }

    /// `PING` → `PONG`: clamd answers.
    public func ping() async throws {
        let (host, port, timeout) = (host, port, timeout)
        try await threads.runIfActive {
            let fd = try TCP.connect(host: host, port: port, timeout: timeout)
            defer { close(fd) }
            try TCP.write(fd, Array("zPING\0".utf8))
            guard try TCP.readReply(fd) == "PONG" else { throw ClamdError("clamd did not answer PONG") }
        }
    }

    public func shutdown() async { try? await threads.shutdownGracefully() }

    static func scanBlocking(_ path: String, host: String, port: Int, timeout: Duration) throws -> String? {
        guard let file = FileHandle(forReadingAtPath: path) else { throw ClamdError("cannot read \(path)") }
        defer { try? file.close() }
        let fd = try TCP.connect(host: host, port: port, timeout: timeout)
        defer { close(fd) }
        try TCP.write(fd, Array("zINSTREAM\0".utf8))
        while true {
            let chunk = [UInt8](file.readData(ofLength: 256 * 1024))
            let length = UInt32(chunk.count).bigEndian
            try TCP.write(fd, withUnsafeBytes(of: length) { Array($0) } + chunk)
            if chunk.isEmpty { break }
        }
        let reply = try TCP.readReply(fd)
        if reply.hasSuffix(" OK") { return nil }
        if reply.hasSuffix(" FOUND") {
            return String(reply.dropFirst("stream: ".count).dropLast(" FOUND".count))
        }
        throw ClamdError("clamd: \(reply.prefix(200))")
    }
}

/// Blocking TCP for the scanner.
enum TCP {
    static func connect(host: String, port: Int, timeout: Duration) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, "\(port)", &hints, &list) == 0, let first = list else {
            throw ClamdScanner.ClamdError("cannot resolve \(host)")
        }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { throw ClamdScanner.ClamdError("socket: \(String(cString: strerror(errno)))") }
        var limit = timeval(tv_sec: max(1, Int(timeout.milliseconds / 1000)), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        guard Glibc.connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw ClamdScanner.ClamdError("clamd at \(host):\(port): \(why)")
        }
        return fd
    }

    static func write(_ fd: Int32, _ bytes: [UInt8]) throws {
        var rest = bytes[...]
        while !rest.isEmpty {
            let sent = rest.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw ClamdScanner.ClamdError("clamd: send: \(String(cString: strerror(errno)))") }
            rest = rest.dropFirst(sent)
        }
    }

    /// One NUL-terminated reply.
    static func readReply(_ fd: Int32) throws -> String {
        var reply: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1024)
        while !reply.contains(0) {
            let count = recv(fd, &chunk, chunk.count, 0)
            guard count > 0 else { throw ClamdScanner.ClamdError("clamd closed the connection or timed out") }
            reply += chunk.prefix(count)
            guard reply.count < 64 * 1024 else { throw ClamdScanner.ClamdError("clamd's reply is too long") }
        }
        return String(decoding: reply.prefix { $0 != 0 }, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
