#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import NIOPosix
import ServiceLifecycle

/// Gives memory back to the system at once after many sockets closed. The `parley`
/// executable runs on jemalloc, whose background threads return freed pages after a decay
/// time; this purges every arena right away instead. Under glibc's allocator (a node built
/// into a test process), which keeps freed memory in its arenas — 10,000 closed connections
/// left a node at 3× its RSS from before they opened, with a tenth of that in use — it calls
/// `malloc_trim`. Either runs on NIO's thread pool, when the open sockets fell by half and by
/// at least `threshold` since the highest count seen after the last time.
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
            let before = Self.residentBytes()
            _ = try? await NIOThreadPool.singleton.runIfActive { Self.release() }
            logger.debug("memory returned after sockets closed",
                         metadata: ["rss_before": "\(before)", "rss_after": "\(Self.residentBytes())", "sockets": "\(open)"])
        }
    }

    /// Returns free pages to the system: jemalloc's purge of every arena, or glibc's trim.
    static func release() {
        if let mallctl = jemallocControl {
            // "arena.<MALLCTL_ARENAS_ALL>.purge"
            _ = mallctl("arena.4096.purge", nil, nil, nil, 0)
        } else if let trim = mallocTrim {
            _ = trim(0)
        }
    }

    /// jemalloc's `mallctl` when jemalloc is the process's allocator.
    private static let jemallocControl: (@convention(c) (UnsafePointer<CChar>?, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?,
                                                         UnsafeMutableRawPointer?, Int) -> Int32)? = symbol("mallctl")

    /// glibc's `malloc_trim` (not in Swift's Glibc module).
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = symbol("malloc_trim")

    private static func symbol<F>(_ name: String) -> F? {
        #if canImport(Glibc)
        guard let address = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
        return unsafeBitCast(address, to: F.self)
        #else
        return nil
        #endif
    }

    /// This process's resident set (from /proc/self/statm), in bytes.
    static func residentBytes() -> Int {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let pages = statm.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
