#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import NIOPosix
import ServiceLifecycle

/// Gives memory back to the system after many sockets closed. glibc's allocator keeps what
/// freed sockets used in its arenas (10,000 closed connections left a node at 3× its RSS from
/// before they opened, with a tenth of that in use); `malloc_trim` returns the free pages.
/// It runs on NIO's thread pool (it walks every arena), when the open sockets fell by half and
/// by at least `threshold` since the highest count seen after the last trim.
final class MemoryReturner: Service {
    private let sockets: SocketSweeper
    private let threshold: Int
    private let logger: Logger

    init(sockets: SocketSweeper, threshold: Int = 500, logger: Logger) {
        self.sockets = sockets
        self.threshold = threshold
        self.logger = logger
    }

    func run() async throws {
        var high = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            let open = sockets.count
            high = max(high, open)
            guard high - open >= max(threshold, high / 2) else { continue }
            high = open
            guard let trim = Self.mallocTrim else { continue }
            let before = Self.residentBytes()
            _ = try? await NIOThreadPool.singleton.runIfActive { trim(0) }
            logger.debug("memory returned after sockets closed",
                         metadata: ["rss_before": "\(before)", "rss_after": "\(Self.residentBytes())", "sockets": "\(open)"])
        }
    }

    /// glibc's `malloc_trim` (not in Swift's Glibc module; absent under another C library).
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        #if canImport(Glibc)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
        #else
        return nil
        #endif
    }()

    /// This process's resident set (from /proc/self/statm), in bytes.
    static func residentBytes() -> Int {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let pages = statm.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
