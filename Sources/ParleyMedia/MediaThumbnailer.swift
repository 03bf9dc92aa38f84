import Foundation
import NIOPosix
import ParleyCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Thumbnails with the tools operators have: libvips' `vipsthumbnail` for images (it shrinks
/// while decoding, so a large image costs little memory), ffmpeg's first frame for videos (the
/// poster frame). Each runs as a child process, waited for on threads of its own; a cancelled
/// or timed-out run kills its child.
public final class MediaThumbnailer: Thumbnailer {
    private let threads: NIOThreadPool
    private let timeout: Duration

    public init(timeout: Duration = .seconds(60), threads: Int = 2) {
        self.timeout = timeout
        self.threads = NIOThreadPool(numberOfThreads: threads)
        self.threads.start()
    }

    public func shutdown() async { try? await threads.shutdownGracefully() }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public func thumbnail(of path: String, contentType: String, to output: String, size: Int) async throws {
        let arguments: [String]
        if contentType.hasPrefix("image/") {
            // `[0]` of an animated GIF: its first frame.
            arguments = ["vipsthumbnail", path, "--size", "\(size)x\(size)", "-o", output + "[Q=85,strip]"]
        } else if contentType.hasPrefix("video/") {
            arguments = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", path, "-frames:v", "1",
                         "-vf", "scale=w='min(\(size),iw)':h='min(\(size),ih)':force_original_aspect_ratio=decrease", "-q:v", "4",
                         "-f", "image2", output]
        } else {
            throw Failure(description: "no thumbnail for \(contentType)")
        }
        let killed = KillSwitch()
        let pid = try ChildProcess.spawn(arguments)
        let timeout = timeout
        let status = try await withTaskCancellationHandler {
            try await threads.runIfActive { ChildProcess.wait(pid, timeout: timeout, killed: killed) }
        } onCancel: {
            killed.flip()
        }
        if killed.isOn { throw CancellationError() }
        guard let status, status == 0 else {
            throw Failure(description: "\(arguments[0]) \(status.map { "exited with \($0)" } ?? "timed out") on \(contentType)")
        }
        guard FileManager.default.fileExists(atPath: output) else { throw Failure(description: "\(arguments[0]) wrote no thumbnail") }
    }
}

/// A child process with no input and its output discarded.
enum ChildProcess {
    static func spawn(_ arguments: [String]) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, arguments[0], &actions, nil, argv, environ)
        guard spawned == 0 else {
            throw MediaThumbnailer.Failure(description: "cannot run \(arguments[0]): \(String(cString: strerror(spawned)))")
        }
        return pid
    }

    /// The exit status; nil when it ran past `timeout` or `killed` was set (it is killed then).
    static func wait(_ pid: pid_t, timeout: Duration, killed: KillSwitch) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        var status: Int32 = 0
        while true {
            let done = waitpid(pid, &status, WNOHANG)
            if done == pid { return status & 0x7f == 0 ? (status >> 8) & 0xff : -1 }
            if done == -1 && errno != EINTR { return -1 }
            if killed.isOn || ContinuousClock.now > deadline {
                kill(pid, SIGKILL)
                while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
                return nil
            }
            usleep(5_000)
        }
    }
}

/// Set when a run is cancelled: its waiter kills the child.
final class KillSwitch: Sendable {
    private let value = Atomic(false)
    func flip() { value.store(true, ordering: .relaxed) }
    var isOn: Bool { value.load(ordering: .relaxed) }
}
