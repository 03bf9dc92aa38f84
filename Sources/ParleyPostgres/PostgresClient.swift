import Logging
import NIOPosix
import ParleyCore
import Synchronization

/// What can run statements: the client itself (each call on any pooled connection) or a
/// transaction (every call on its one connection).
public protocol PostgresQueryable: Sendable {
    /// Runs one statement with `$1…$n` parameters and returns its rows.
    @discardableResult
    func query(_ sql: String, _ parameters: [any PostgresEncodable]) async throws -> PostgresRows
    /// Runs `COPY table (columns) FROM STDIN` with `rows`; returns the number of rows copied.
    @discardableResult
    func copy(into table: String, columns: [String], rows: [[any PostgresEncodable]]) async throws -> Int
}

extension PostgresQueryable {
    @discardableResult
    public func query(_ sql: String, _ parameters: any PostgresEncodable...) async throws -> PostgresRows {
        try await query(sql, parameters)
    }
}

/// An async PostgreSQL client over a bounded pool of blocking libpq connections.
///
/// Blocking calls run on the client's own `NIOThreadPool`; connection loss makes calls fail
/// fast with `PostgresError.unavailable` while the pool reconnects with backoff (see
/// `ConnectionPool`), so the client recovers by itself after a server restart.
public final class PostgresClient: PostgresQueryable {
    public let configuration: PostgresConfiguration
    private let threadPool: NIOThreadPool
    private let pool: ConnectionPool<PostgresConnection>
    private let counter = StatementCounter()

    /// Statements sent so far (`BEGIN`/`COMMIT` included): the node's metrics report it.
    public var statementsSent: Int { counter.value.load(ordering: .relaxed) }

    public init(_ configuration: PostgresConfiguration, clock: any ParleyClock = SystemClock(),
                logger: Logger = Logger(label: "parley.postgres")) {
        self.configuration = configuration
        let threadPool = NIOThreadPool(numberOfThreads: configuration.poolSize)
        threadPool.start()
        self.threadPool = threadPool
        let endpoint = configuration.endpoint
        pool = ConnectionPool(
            size: configuration.poolSize, backoff: configuration.reconnectBackoff, clock: clock,
            connect: { try await threadPool.runIfActive { try PostgresConnection.connect(configuration) } },
            unavailable: { PostgresError.unavailable(endpoint: endpoint, reason: $0) },
            shutdownError: PostgresError.shutdown,
            onEvent: ConnectionPoolEvent.logger(logger, service: "postgres", endpoint: endpoint))
    }

    @discardableResult
    public func query(_ sql: String, _ parameters: [any PostgresEncodable]) async throws -> PostgresRows {
        try await pool.withConnection { connection in
            try await PostgresTransaction(connection: connection, threadPool: threadPool, counter: counter).query(sql, parameters)
        }
    }

    @discardableResult
    public func copy(into table: String, columns: [String], rows: [[any PostgresEncodable]]) async throws -> Int {
        try await pool.withConnection { connection in
            try await PostgresTransaction(connection: connection, threadPool: threadPool, counter: counter)
                .copy(into: table, columns: columns, rows: rows)
        }
    }

    /// Runs SQL text holding one or more statements, without parameters.
    public func simpleQuery(_ sql: String) async throws {
        try await pool.withConnection { connection in
            try await PostgresTransaction(connection: connection, threadPool: threadPool, counter: counter).simpleQuery(sql)
        }
    }

    /// Runs `body` inside `BEGIN … COMMIT` on one connection; if `body` throws, the
    /// transaction is rolled back and the error rethrown. Do not keep the transaction
    /// beyond `body`.
    public func transaction<R: Sendable>(_ body: (PostgresTransaction) async throws -> R) async throws -> R {
        try await pool.withConnection { connection in
            let transaction = PostgresTransaction(connection: connection, threadPool: threadPool, counter: counter)
            try await transaction.simpleQuery("BEGIN")
            do {
                let result = try await body(transaction)
                try await transaction.simpleQuery("COMMIT")
                return result
            } catch {
                if !connection.isBroken { try? await transaction.simpleQuery("ROLLBACK") }
                throw error
            }
        }
    }

    /// Answers when PostgreSQL does (`SELECT 1`).
    public func ping() async throws {
        try await query("SELECT 1")
    }

    public func shutdown() async {
        pool.shutdown()
        try? await threadPool.shutdownGracefully()
    }
}

/// Statements on one connection: inside `PostgresClient.transaction`, or one call of the client.
public struct PostgresTransaction: PostgresQueryable {
    let connection: PostgresConnection
    let threadPool: NIOThreadPool
    let counter: StatementCounter

    @discardableResult
    public func query(_ sql: String, _ parameters: [any PostgresEncodable]) async throws -> PostgresRows {
        let binds = parameters.map(\.postgresBind)
        counter.add()
        return try await threadPool.runIfActive { [connection] in try connection.query(sql, binds) }
    }

    @discardableResult
    public func copy(into table: String, columns: [String], rows: [[any PostgresEncodable]]) async throws -> Int {
        let sql = "COPY \(table) (\(columns.joined(separator: ", "))) FROM STDIN"
        let data = PostgresCopyText.encode(rows)
        counter.add()
        return try await threadPool.runIfActive { [connection] in try connection.copy(sql, data: data) }
    }

    /// Runs SQL text holding one or more statements, without parameters.
    public func simpleQuery(_ sql: String) async throws {
        counter.add()
        _ = try await threadPool.runIfActive { [connection] in try connection.simpleQuery(sql) }
    }
}

final class StatementCounter: Sendable {
    let value = Atomic<Int>(0)
    func add() { value.add(1, ordering: .relaxed) }
}

/// The text format of `COPY … FROM STDIN`: tab-separated columns, `\N` for NULL,
/// backslash escapes for backslash, tab, newline and carriage return.
enum PostgresCopyText {
    static func encode(_ rows: [[any PostgresEncodable]]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(rows.count * 64)
        for row in rows {
            for (index, value) in row.enumerated() {
                if index > 0 { out.append(UInt8(ascii: "\t")) }
                guard let text = value.copyText else {
                    out.append(contentsOf: Array("\\N".utf8))
                    continue
                }
                for byte in text.utf8 {
                    switch byte {
                    case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
                    case UInt8(ascii: "\t"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
                    case UInt8(ascii: "\n"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
                    case UInt8(ascii: "\r"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
                    default: out.append(byte)
                    }
                }
            }
            out.append(UInt8(ascii: "\n"))
        }
        return out
    }
}
