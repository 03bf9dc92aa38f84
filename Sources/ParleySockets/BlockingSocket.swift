#if canImport(Glibc)
import Glibc
#endif

/// What went wrong on a blocking socket, said with the peer's address.
public struct SocketFailure: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// A TCP connection on a blocking socket, for the adapters that speak a small protocol to a
/// local daemon (SMTP, clamd) on threads of their own — never on the cooperative pool. Every
/// send and receive gives up after the time-out; the caller closes it.
public struct BlockingSocket: Sendable {
    public let fd: Int32
    /// `host:port`, for messages.
    public let peer: String

    /// Resolves `host`, connects, and sets the send and receive time-outs (whole seconds, at
    /// least one).
    public static func connect(host: String, port: Int, timeout: Duration) throws(SocketFailure) -> BlockingSocket {
        let peer = "\(host):\(port)"
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, "\(port)", &hints, &list) == 0, let first = list else {
            throw SocketFailure("cannot resolve \(host)")
        }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { throw SocketFailure("socket: \(Self.lastError)") }
        let seconds = max(1, Int(timeout.components.seconds))
        var limit = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        guard Glibc.connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let why = Self.lastError
            Glibc.close(fd)
            throw SocketFailure("connect to \(peer): \(why)")
        }
        return BlockingSocket(fd: fd, peer: peer)
    }

    /// Sends all of `bytes` (no SIGPIPE if the peer went away).
    public func write(_ bytes: [UInt8]) throws(SocketFailure) {
        var rest = bytes[...]
        while !rest.isEmpty {
            let sent = rest.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw SocketFailure("send to \(peer): \(Self.lastError)") }
            rest = rest.dropFirst(sent)
        }
    }

    /// What arrived, at most `maximum` bytes; throws when the peer closed or the time-out passed.
    public func read(maximum: Int = 4096) throws(SocketFailure) -> [UInt8] {
        var chunk = [UInt8](repeating: 0, count: maximum)
        let count = recv(fd, &chunk, chunk.count, 0)
        guard count > 0 else { throw SocketFailure("\(peer) closed the connection or did not answer in time") }
        return Array(chunk.prefix(count))
    }

    public func close() { Glibc.close(fd) }

    private static var lastError: String { String(cString: strerror(errno)) }
}
