import CLibpq
import ParleyCore

/// Where and how to reach PostgreSQL: a libpq connection URL
/// (`postgres://user:password@host:port/database?…`) or `key=value` string, plus pool settings.
public struct PostgresConfiguration: Sendable, Hashable {
    public var url: String
    /// Connections in the pool.
    public var poolSize: Int
    public var connectTimeout: Duration
    /// When set, every connection runs `SET search_path` to it (tests use one schema each).
    public var searchPath: String?
    /// The server cancels a statement running longer than this (`statement_timeout`); nil: no limit.
    public var statementTimeout: Duration?
    public var reconnectBackoff: Backoff
    /// `host:port/database`, for messages (never the password).
    public let endpoint: String

    public init(url: String, poolSize: Int = 4, connectTimeout: Duration = .seconds(3), searchPath: String? = nil,
                statementTimeout: Duration? = .seconds(10), reconnectBackoff: Backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(2))) throws {
        var error: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(url, &error) else {
            let reason = error.map { String(cString: $0).trimmingTrailingNewlines } ?? "unparsable"
            if let error { PQfreemem(error) }
            throw PostgresError.invalidConfiguration("'\(Self.redacted(url))' is not a PostgreSQL URL: \(reason)")
        }
        defer { PQconninfoFree(options) }
        var values: [String: String] = [:]
        var option = options
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val { values[String(cString: keyword)] = String(cString: value) }
            option += 1
        }
        self.url = url
        self.poolSize = poolSize
        self.connectTimeout = connectTimeout
        self.searchPath = searchPath
        self.statementTimeout = statementTimeout
        self.reconnectBackoff = reconnectBackoff
        self.endpoint = "\(values["host"] ?? values["hostaddr"] ?? "localhost"):\(values["port"] ?? "5432")/\(values["dbname"] ?? values["user"] ?? "")"
    }

    /// `url` with any password replaced by `***`.
    static func redacted(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].firstIndex(of: "@") else { return url }
        let userInfo = url[scheme.upperBound..<at]
        guard let colon = userInfo.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }
}

extension String {
    var trimmingTrailingNewlines: String {
        var text = self
        while text.last?.isNewline == true { text.removeLast() }
        return text
    }
}
