import Foundation
import NIOPosix
import ParleyCore
import ParleySockets

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
            let socket = try TCP.connect(host: host, port: port, timeout: timeout)
            defer { socket.close() }
            try TCP.write(socket, Array("zPING\0".utf8))
            guard try TCP.readReply(socket) == "PONG" else { throw ClamdError("clamd did not answer PONG") }
        }
    }

    public func shutdown() async { try? await threads.shutdownGracefully() }

    static func scanBlocking(_ path: String, host: String, port: Int, timeout: Duration) throws -> String? {
        guard let file = FileHandle(forReadingAtPath: path) else { throw ClamdError("cannot read \(path)") }
        defer { try? file.close() }
        let socket = try TCP.connect(host: host, port: port, timeout: timeout)
        defer { socket.close() }
        try TCP.write(socket, Array("zINSTREAM\0".utf8))
        while true {
            let chunk = [UInt8](file.readData(ofLength: 256 * 1024))
            let length = UInt32(chunk.count).bigEndian
            try TCP.write(socket, withUnsafeBytes(of: length) { Array($0) } + chunk)
            if chunk.isEmpty { break }
        }
        let reply = try TCP.readReply(socket)
        if reply.hasSuffix(" OK") { return nil }
        if reply.hasSuffix(" FOUND") {
            return String(reply.dropFirst("stream: ".count).dropLast(" FOUND".count))
        }
        throw ClamdError("clamd: \(reply.prefix(200))")
    }
}

/// clamd's side of a blocking socket: failures say they are clamd's.
enum TCP {
    static func connect(host: String, port: Int, timeout: Duration) throws -> BlockingSocket {
        try clamd { () throws(SocketFailure) in try BlockingSocket.connect(host: host, port: port, timeout: timeout) }
    }

    static func write(_ socket: BlockingSocket, _ bytes: [UInt8]) throws {
        try clamd { () throws(SocketFailure) in try socket.write(bytes) }
    }

    /// One NUL-terminated reply.
    static func readReply(_ socket: BlockingSocket) throws -> String {
        var reply: [UInt8] = []
        while !reply.contains(0) {
            reply += try clamd { () throws(SocketFailure) in try socket.read(maximum: 1024) }
            guard reply.count < 64 * 1024 else { throw ClamdScanner.ClamdError("clamd's reply is too long") }
        }
        return String(decoding: reply.prefix { $0 != 0 }, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private static func clamd<T>(_ body: () throws(SocketFailure) -> T) throws(ClamdScanner.ClamdError) -> T {
        do { return try body() } catch { throw ClamdScanner.ClamdError("clamd: \(error)") }
    }
}
