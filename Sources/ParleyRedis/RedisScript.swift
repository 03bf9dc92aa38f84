import Crypto

/// A Lua script run by SHA1 (`EVALSHA`), loaded into Redis on `NOSCRIPT` automatically.
public struct RedisScript: Sendable, Hashable {
    public let source: String
    /// Lowercase hex SHA1 of `source`, the name Redis knows it by.
    public let sha: String

    public init(_ source: String) {
        self.source = source
        self.sha = Insecure.SHA1.hash(data: Array(source.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}

extension RedisCommand {
    /// `EVALSHA` of `script` with `keys` and `arguments`; the client loads the script when
    /// Redis answers `NOSCRIPT` and sends the command again.
    public static func evalSHA(_ script: RedisScript, keys: [String], arguments: [any RedisArgument] = []) -> RedisCommand {
        var command = RedisCommand("EVALSHA", [script.sha, keys.count] + keys + arguments)
        command.script = script
        return command
    }
}

extension RedisValue {
    var isNoScript: Bool { errorMessage?.hasPrefix("NOSCRIPT") == true }
}
