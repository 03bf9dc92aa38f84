import CLibpq
import Foundation
import ParleyCore
#if canImport(Glibc)
import Glibc
#endif

/// One blocking libpq connection.
///
/// Every method blocks the calling thread, so it is only called from a thread of the
/// client's `NIOThreadPool`. A connection is used by one thread at a time: the pool hands it over.
final class PostgresConnection: PooledConnection, @unchecked Sendable {
    private let connection: OpaquePointer
    let endpoint: String
    private(set) var isBroken = false

    private init(connection: OpaquePointer, endpoint: String) {
        self.connection = connection
        self.endpoint = endpoint
    }

    deinit { PQfinish(connection) }

    /// Connects, then sets UTC / ISO dates (and the search path when configured).
    static func connect(_ configuration: PostgresConfiguration) throws -> PostgresConnection {
        let keywords = ["dbname", "connect_timeout", "application_name"]
        let values = [configuration.url, String(max(1, configuration.connectTimeout.milliseconds / 1000)), "parley"]
        let raw = withCStrings(keywords) { keywordPointers in
            withCStrings(values) { valuePointers in
                PQconnectdbParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let raw else {
            throw PostgresError.connectionFailed(endpoint: configuration.endpoint, reason: "out of memory")
        }
        guard PQstatus(raw) == CONNECTION_OK else {
            let reason = String(cString: PQerrorMessage(raw)).trimmingTrailingNewlines
                .replacingNewlines
            PQfinish(raw)
            throw PostgresError.connectionFailed(endpoint: configuration.endpoint, reason: reason)
        }
        let connection = PostgresConnection(connection: raw, endpoint: configuration.endpoint)
        var setup = "SET TIME ZONE 'UTC'; SET DateStyle = 'ISO'; SET bytea_output = 'hex'; SET client_min_messages = 'warning';"
        if let limit = configuration.statementTimeout {
            setup += " SET statement_timeout = \(max(1, limit.milliseconds));"
        }
        if let path = configuration.searchPath {
            setup += " SET search_path TO \"\(path.replacingOccurrences(of: "\"", with: "\"\""))\";"
        }
        try connection.simpleQuery(setup)
        return connection
    }

    /// Runs one statement with parameters; results come back in text format.
    func query(_ sql: String, _ binds: [PostgresBind]) throws -> PostgresRows {
        let result = withParameters(binds) { count, types, values, lengths, formats in
            PQexecParams(connection, sql, count, types, values, lengths, formats, 0)
        }
        return try consume(result)
    }

    /// Runs one or more statements without parameters (migrations, `BEGIN`, …).
    @discardableResult
    func simpleQuery(_ sql: String) throws -> PostgresRows {
        try consume(PQexec(connection, sql))
    }

    /// Runs `COPY … FROM STDIN` with `data` (COPY text format) and returns the rows copied.
    func copy(_ sql: String, data: [UInt8]) throws -> Int {
        let start = PQexec(connection, sql)
        guard PQresultStatus(start) == PGRES_COPY_IN else { _ = try consume(start); throw lost("COPY did not start") }
        PQclear(start)
        let chunk = 1 << 20
        var offset = 0
        while offset < data.count {
            let end = min(offset + chunk, data.count)
            let sent = data[offset..<end].withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { PQputCopyData(connection, $0.baseAddress, Int32($0.count)) }
            }
            guard sent == 1 else { throw lost("COPY data could not be sent") }
            offset = end
        }
        guard PQputCopyEnd(connection, nil) == 1 else { throw lost("COPY could not be finished") }
        var copied = 0
        var failure: (any Error)?
        while let result = PQgetResult(connection) {
            do { copied = try consume(result).affectedRows } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
        return copied
    }

    /// An idle connection has nothing to read (nothing is LISTENed for); if its socket is
    /// readable, the server sent a termination notice (a restart's FATAL) or closed it, which
    /// libpq would only notice on the next query.
    func isStillUsable() -> Bool {
        guard !isBroken, PQstatus(connection) == CONNECTION_OK else { return false }
        var descriptor = pollfd(fd: PQsocket(connection), events: Int16(POLLIN), revents: 0)
        return Glibc.poll(&descriptor, 1, 0) == 0
    }

    private func consume(_ result: OpaquePointer?) throws -> PostgresRows {
        guard let result else { throw lost(String(cString: PQerrorMessage(connection))) }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return rows(of: result)
        default:
            if PQstatus(connection) != CONNECTION_OK {
                throw lost(String(cString: PQresultErrorMessage(result)))
            }
            func field(_ code: Character) -> String? {
                PQresultErrorField(result, Int32(code.asciiValue!)).map { String(cString: $0) }
            }
            throw PostgresError.server(sqlState: field("C") ?? "XX000",
                                       message: field("M") ?? String(cString: PQresultErrorMessage(result)).trimmingTrailingNewlines,
                                       detail: field("D"), constraint: field("n"))
        }
    }

    private func rows(of result: OpaquePointer) -> PostgresRows {
        let fieldCount = Int(PQnfields(result))
        let columns = (0..<fieldCount).map { String(cString: PQfname(result, Int32($0))) }
        let oids = (0..<fieldCount).map { UInt32(PQftype(result, Int32($0))) }
        var rows: [PostgresRow] = []
        let rowCount = Int(PQntuples(result))
        rows.reserveCapacity(rowCount)
        for row in 0..<Int32(rowCount) {
            var cells: [[UInt8]?] = []
            cells.reserveCapacity(fieldCount)
            for column in 0..<Int32(fieldCount) {
                if PQgetisnull(result, row, column) == 1 {
                    cells.append(nil)
                } else {
                    let length = Int(PQgetlength(result, row, column))
                    let value = PQgetvalue(result, row, column)!
                    cells.append(Array(UnsafeRawBufferPointer(start: value, count: length)))
                }
            }
            rows.append(PostgresRow(columns: columns, oids: oids, cells: cells))
        }
        let affected = Int(String(cString: PQcmdTuples(result))) ?? rowCount
        return PostgresRows(columns: columns, rows: rows, affectedRows: affected)
    }

    private func lost(_ reason: String) -> PostgresError {
        isBroken = true
        return .connectionLost(endpoint: endpoint, reason: reason.trimmingTrailingNewlines.replacingNewlines)
    }

    private func withParameters<R>(_ binds: [PostgresBind],
                                   _ body: (Int32, UnsafePointer<Oid>?, UnsafePointer<UnsafePointer<CChar>?>?,
                                            UnsafePointer<Int32>?, UnsafePointer<Int32>?) -> R) -> R {
        let storage = binds.map { bind in bind.bytes.map { bytes -> UnsafeMutablePointer<CChar> in
            // Text parameters are read as C strings: terminate them.
            let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count + 1)
            bytes.withUnsafeBufferPointer { source in
                source.withMemoryRebound(to: CChar.self) { pointer.initialize(from: $0.baseAddress!, count: bytes.count) }
            }
            (pointer + bytes.count).initialize(to: 0)
            return pointer
        } }
        defer { for pointer in storage { pointer?.deallocate() } }
        let values: [UnsafePointer<CChar>?] = storage.map { $0.map { UnsafePointer($0) } }
        let types = binds.map { Oid($0.oid) }
        let lengths = binds.map { Int32($0.bytes?.count ?? 0) }
        let formats = binds.map { Int32($0.isBinary ? 1 : 0) }
        return body(Int32(binds.count), types, values, lengths, formats)
    }
}

private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let pointers = strings.map { strdup($0) }
    defer { pointers.forEach { free($0) } }
    let terminated: [UnsafePointer<CChar>?] = pointers.map { UnsafePointer($0) } + [nil]
    return terminated.withUnsafeBufferPointer { body($0.baseAddress!) }
}

extension String {
    var replacingNewlines: String {
        split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
    }
}
