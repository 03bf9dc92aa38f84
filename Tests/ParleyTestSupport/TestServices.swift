import Foundation
#if canImport(Glibc)
import Glibc
#endif
import ParleyPostgres
import ParleyRedis

/// The shared servers `cluster/test` starts, and private ones for tests that stop servers.
public enum TestServices {
    public static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    public static var redisURL: String {
        ProcessInfo.processInfo.environment["PARLEY_TEST_REDIS_URL"] ?? "redis://127.0.0.1:6380"
    }

    public static var databaseURL: String {
        ProcessInfo.processInfo.environment["PARLEY_TEST_DATABASE_URL"] ?? "postgres://parley@127.0.0.1:5433/parley"
    }

    /// A key prefix no other test uses.
    public static func uniquePrefix(_ name: String = "test") -> String { "parley-test:\(name):\(UUID().uuidString.prefix(8))" }

    public static func redis(url: String = redisURL, poolSize: Int = 2) throws -> RedisClient {
        RedisClient(try RedisConfiguration(url: url, poolSize: poolSize))
    }

    /// Runs `body` with a client whose `search_path` is a fresh schema, dropped afterwards.
    public static func withSchema<R: Sendable>(url: String = databaseURL, poolSize: Int = 2,
                                        _ body: (PostgresClient, String) async throws -> R) async throws -> R {
        let schema = "test_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
        let admin = PostgresClient(try PostgresConfiguration(url: url, poolSize: 1))
        try await admin.simpleQuery("CREATE SCHEMA \(schema)")
        let client = PostgresClient(try PostgresConfiguration(url: url, poolSize: poolSize, searchPath: schema))
        do {
            let result = try await body(client, schema)
            await client.shutdown()
            try await admin.simpleQuery("DROP SCHEMA \(schema) CASCADE")
            await admin.shutdown()
            return result
        } catch {
            await client.shutdown()
            try? await admin.simpleQuery("DROP SCHEMA \(schema) CASCADE")
            await admin.shutdown()
            throw error
        }
    }

    /// Runs a command to completion on a thread of its own (never blocking the cooperative
    /// pool, which the node under test needs: a blocked pool freezes every test of the
    /// process); throws with its output when it fails.
    @discardableResult
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try runBlocking(executable, arguments, environment: environment) }) }.start()
        }
    }

    /// A TCP port on 127.0.0.1 that nothing listens on now, below the kernel's ephemeral range:
    /// a server a test stops and starts again on its port (a private Redis) must not find it
    /// taken meanwhile by some client socket's ephemeral port, which a port the kernel picked
    /// (or any in that range) can be.
    public static func freePort() -> Int {
        let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))?
            .split(whereSeparator: \.isWhitespace).compactMap { Int($0) } ?? []
        let ephemeralStart = range.first ?? 32768
        if ephemeralStart > 12_000 {
            for _ in 0..<200 {
                let port = Int.random(in: 10_000..<ephemeralStart)
                if bindable(port) { return port }
            }
        }
        return bindable(0) ? kernelPort() : Int.random(in: 10_000..<12_000)
    }

    /// Whether 127.0.0.1:`port` can be bound now.
    private static func bindable(_ port: Int) -> Bool {
        withBoundSocket(port) { _ in true } ?? false
    }

    private static func kernelPort() -> Int {
        withBoundSocket(0) { $0 } ?? Int.random(in: 10_000..<12_000)
    }

    /// Binds a socket to 127.0.0.1:`port` and gives `body` the port it got; nil when the bind failed.
    private static func withBoundSocket<R>(_ port: Int, _ body: (Int) -> R) -> R? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw -> Int? in
                guard bind(fd, raw, length) == 0, getsockname(fd, raw, &length) == 0 else { return nil }
                return Int(UInt16(bigEndian: pointer.pointee.sin_port))
            }
        }
        return bound.map(body)
    }

    /// Starts `executable` in the background (its output discarded, inheriting none of our
    /// descriptors); returns its pid, for the caller to kill and reap.
    public static func spawn(_ executable: String, _ arguments: [String]) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        markDescriptorsCloseOnExec()
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard spawned == 0 else {
            throw ProcessFailure(command: executable, output: "cannot start: \(String(cString: strerror(spawned)))")
        }
        return pid
    }

    /// `run`, blocking the caller's thread (for `deinit`s).
    ///
    /// posix_spawn and waitpid rather than Foundation's `Process`, whose `waitUntilExit` can
    /// miss the exit of a child whose own children (a server it started) live on. Output goes
    /// to a file, not a pipe, for the same reason, and the child inherits no other descriptor.
    @discardableResult
    public static func runBlocking(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> String {
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("parley-test-\(UUID()).out").path
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        markDescriptorsCloseOnExec()
        let merged = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard spawned == 0 else {
            throw ProcessFailure(command: executable, output: "cannot start: \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        let exited = status & 0x7f == 0
        guard exited && (status >> 8) & 0xff == 0 else {
            throw ProcessFailure(command: ([executable] + arguments).joined(separator: " "), output: text)
        }
        return text
    }

    /// Nothing of ours leaks into a child: a server it leaves running (pg_ctl's postgres)
    /// would otherwise hold our sockets open after we close them, and their peers would never
    /// see them close. (glibc's `posix_spawn_file_actions_addclosefrom_np` is not visible
    /// from Swift.)
    private static func markDescriptorsCloseOnExec() {
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        for case let fd? in descriptors.map({ Int32($0) }) where fd > 2 {
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    public struct ProcessFailure: Error, CustomStringConvertible {
        let command: String
        let output: String
        public var description: String { "\(command) failed: \(output)" }
    }

    /// Polls `condition` every 50 ms until it holds or `limit` passes.
    public static func eventually(within limit: Duration = .seconds(10), _ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return await condition()
    }
}

/// A redis-server of a test's own, on a free port, which the test may stop and start.
public final class PrivateRedis: @unchecked Sendable {
    public let port: Int
    public let password: String?
    private var pid: pid_t?

    public init(password: String? = nil) async throws {
        self.port = TestServices.freePort()
        self.password = password
        try await start()
    }

    public var url: String { "redis://\(password.map { ":\($0)@" } ?? "")127.0.0.1:\(port)" }

    public func start() async throws {
        var arguments = ["redis-server", "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        if let password { arguments += ["--requirepass", password] }
        pid = try TestServices.spawn("/usr/bin/env", arguments)
        let probe = ["-p", "\(port)"] + (password.map { ["-a", $0, "--no-auth-warning"] } ?? []) + ["ping"]
        for _ in 0..<100 {
            if (try? await TestServices.run("/usr/bin/env", ["redis-cli"] + probe))?.contains("PONG") == true { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestServices.ProcessFailure(command: "redis-server on \(port)", output: "did not start")
    }

    /// Kills the server (as a crash would: no clean shutdown) and reaps it. (Not Foundation's
    /// `Process.waitUntilExit`, which was seen to wait forever on a cooperative thread here,
    /// freezing every test of the process; `waitpid` after SIGKILL returns at once.)
    public func kill() {
        guard let pid else { return }
        Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        self.pid = nil
    }

    deinit { kill() }
}

/// A PostgreSQL cluster of a test's own (via `cluster/services` with another port and
/// folder), which the test may stop and start.
public final class PrivatePostgres: Sendable {
    public let port: Int
    private let environment: [String: String]
    private let folder: String
    private static let services = TestServices.repositoryRoot.appendingPathComponent("cluster/services").path

    public init() async throws {
        port = TestServices.freePort()
        folder = TestServices.repositoryRoot.appendingPathComponent("var/test-postgres-\(port)").path
        environment = ["PARLEY_SERVICES_DIR": folder, "PARLEY_SERVICES_PG_PORT": "\(port)"]
        try await start()
    }

    public var url: String { "postgres://parley@127.0.0.1:\(port)/parley" }

    public func start() async throws { try await TestServices.run(Self.services, ["start", "postgres"], environment: environment) }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the server and every backend of it: connections
    /// stay open and nothing answers, as with a hung server.
    public func freeze(_ frozen: Bool = true) async throws {
        let signal = frozen ? "STOP" : "CONT"
        try await TestServices.run("/bin/sh", ["-c", """
            main=$(pgrep -f -- "-p \(port) " | head -1); [ -n "$main" ] || exit 1
            kill -\(signal) $main $(pgrep -P $main)
            """])
    }
    public func stop() async throws { try await TestServices.run(Self.services, ["stop", "postgres"], environment: environment) }

    deinit {
        _ = try? TestServices.runBlocking(Self.services, ["stop", "postgres"], environment: environment)
        try? FileManager.default.removeItem(atPath: folder)
    }
}

extension TestServices {
    /// Migrates and inserts a user, a workspace and a channel for messages to reference.
    public static func seedChannel(_ postgres: PostgresClient) async throws -> (channel: String, user: String) {
        try await PostgresMigrator(client: postgres).migrate()
        let user = UUID().uuidString.lowercased(), workspace = UUID().uuidString.lowercased(), channel = UUID().uuidString.lowercased()
        try await postgres.query("INSERT INTO users (id, email, display_name, password_hash) VALUES ($1::uuid, $2, 'u', '-')",
                                 user, "\(user)@example.com")
        try await postgres.query("INSERT INTO workspaces (id, name, slug) VALUES ($1::uuid, 'w', $1)", workspace)
        try await postgres.query("INSERT INTO channels (id, workspace_id, name, kind) VALUES ($1::uuid, $2::uuid, 'general', 'public')",
                                 channel, workspace)
        return (channel, user)
    }
}
