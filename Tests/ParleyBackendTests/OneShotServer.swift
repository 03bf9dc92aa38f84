import Foundation

/// Accepts one connection on 127.0.0.1, writes `reply`, and closes it (on a thread of its own).
/// `readsRequest`: first reads an HTTP request (its head, then `Content-Length` bytes).
final class OneShotServer: Sendable {
    let port: Int

    init(reply: String, readsRequest: Bool = false) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw -> Int? in
                guard bind(fd, raw, length) == 0, listen(fd, 1) == 0, getsockname(fd, raw, &length) == 0 else { return nil }
                return Int(UInt16(bigEndian: pointer.pointee.sin_port))
            }
        }
        guard let bound else {
            close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        port = bound
        Thread {
            defer { close(fd) }
            let client = accept(fd, nil, nil)
            guard client >= 0 else { return }
            if readsRequest { Self.readRequest(client) }
            let bytes = Array(reply.utf8)
            _ = bytes.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            close(client)
        }.start()
    }

    private static func readRequest(_ fd: Int32) {
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        var expected: Int?
        while expected.map({ received.count < $0 }) ?? true {
            let count = recv(fd, &chunk, chunk.count, 0)
            guard count > 0 else { return }
            received += chunk.prefix(count)
            if expected == nil, let end = received.firstRange(of: Array("\r\n\r\n".utf8)) {
                let head = String(decoding: received[..<end.lowerBound], as: UTF8.self).lowercased()
                let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                expected = end.upperBound + length
            }
        }
    }
}
