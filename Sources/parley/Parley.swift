import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ParleyCore
import ParleyDelivery
import ParleyGateway
import ParleyPostgres
import ParleyRuntime
import ParleyWiring
import ServiceLifecycle
import UnixSignals

@main
struct Parley: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley",
        abstract: "Parley: a real-time messaging backend that runs as a cluster of identical nodes.",
        version: ParleyVersion.current,
        subcommands: [Serve.self, Migrate.self, VapidKey.self, Version.self, Bench.self])
}

/// Logging to standard error at `level`, set up once per process.
func bootstrapLogging(level: String) -> Logger {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = Logger.Level(rawValue: level) ?? .info
        return handler
    }
    return Logger(label: "parley")
}

/// Turns a startup failure into one line on standard error and exit code 1.
func failOnStartup(_ error: any Error) -> ExitCode {
    let message = (error as? TimeoutError).map { "\($0)" } ?? "\(error)"
    FileHandle.standardError.write(Data("parley: error: \(message)\n".utf8))
    return ExitCode.failure
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a node: HTTP API, WebSocket endpoint, health checks.")
    @OptionGroup var node: NodeOptions
    @OptionGroup var backends: BackendOptions

    func run() async throws {
        Allocator.configure()
        var configuration = NodeConfiguration()
        try node.apply(to: &configuration)
        try backends.apply(to: &configuration)
        let logger = bootstrapLogging(level: try backends.resolvedLogLevel())
        let connected: Backends
        do {
            connected = try Backends.connect(configuration, logger: logger)
            try await connected.redis.ping()
            if configuration.migrateOnStart {
                let applied = try await PostgresMigrator(client: connected.postgres).migrate()
                if !applied.isEmpty { logger.info("migrations applied", metadata: ["versions": "\(applied)"]) }
            } else {
                try await connected.postgres.ping()
            }
        } catch {
            throw failOnStartup(error)
        }
        logger.info("parley node starting", metadata: [
            "node": "\(configuration.nodeName)", "http": "\(configuration.httpHost):\(configuration.httpPort)",
            "version": "\(ParleyVersion.current)"])
        if node.dev {
            logger.warning("--dev: a throwaway token secret was made up; tokens stop working when this process ends")
        }
        let node: Node
        do {
            node = try await Node.start(configuration: configuration, backends: connected, logger: logger)
        } catch {
            await connected.shutdown()
            throw failOnStartup(error)
        }
        do {
            try await run(node, logger: logger)
        } catch {
            await connected.shutdown()
            throw failOnStartup(error)
        }
        await connected.shutdown()
    }
}

extension Serve {
    /// Runs the node until SIGTERM or SIGINT, then drains it (`Node.drain`: `/readyz` fails,
    /// channels hand off, the buffer flushes, sockets close spread over the drain window) and
    /// stops its services. A second signal skips what is left of the drain; the shutdown
    /// deadline ends the process whatever it is doing (nothing acknowledged is only in this
    /// process: the next owners recover the logs).
    func run(_ node: Node, logger: Logger) async throws {
        let group = ServiceGroup(configuration: .init(services: [buildApplication(node: node)], logger: logger))
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let deadline = node.configuration.shutdownDeadline
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask {
                var draining: Task<Void, Never>?
                for await signal in signals {
                    if let draining {
                        logger.notice("second signal: stopping now", metadata: ["signal": "\(signal)"])
                        draining.cancel()
                        await group.triggerGracefulShutdown()
                        continue
                    }
                    logger.notice("draining on signal", metadata: ["signal": "\(signal)", "deadline_ms": "\(deadline.milliseconds)"])
                    Task.detached {
                        try? await Task.sleep(for: deadline)
                        logger.critical("the shutdown deadline passed; exiting now")
                        Foundation.exit(2)
                    }
                    draining = Task {
                        _ = await node.drain(window: node.configuration.drainWindow)
                        await group.triggerGracefulShutdown()
                    }
                }
            }
            // The node stopped (drained, or a service failed): stop listening for signals.
            try await tasks.next()
            tasks.cancelAll()
        }
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply the database migrations that are missing.")
    @OptionGroup var backends: BackendOptions

    func run() async throws {
        var configuration = NodeConfiguration()
        try backends.apply(to: &configuration)
        let logger = bootstrapLogging(level: try backends.resolvedLogLevel())
        let client: PostgresClient
        do {
            client = PostgresClient(try PostgresConfiguration(url: configuration.databaseURL, poolSize: 1), logger: logger)
        } catch {
            throw failOnStartup(error)
        }
        do {
            let migrator = PostgresMigrator(client: client)
            let applied = try await migrator.migrate()
            let all = try await migrator.appliedVersions()
            await client.shutdown()
            print(applied.isEmpty ? "migrations: up to date (versions \(all.map(String.init).joined(separator: ", ")))"
                                  : "migrations: applied \(applied.map(String.init).joined(separator: ", "))")
        } catch {
            await client.shutdown()
            throw failOnStartup(error)
        }
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")
    func run() { print("parley \(ParleyVersion.current)") }
}

struct VapidKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vapid-key",
        abstract: "Make a VAPID key for Web Push: give every node the private one (PARLEY_VAPID_PRIVATE_KEY); browsers subscribe with the public one (GET /api/push/key serves it).")

    func run() {
        let key = WebPushSender.newKey()
        print("PARLEY_VAPID_PRIVATE_KEY=\(key.privateKey)")
        print("# public key: \(key.publicKey)")
    }
}
