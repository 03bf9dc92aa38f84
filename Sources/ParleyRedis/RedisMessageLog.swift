import ParleyCore

/// `MessageLog` in Redis: one stream per channel with entry ids `{seq}-0`, a de-duplication
/// hash with a TTL, and the append script that fences at the log.
public struct RedisMessageLog: MessageLog {
    public let client: RedisClient
    public let keys: RedisKeyspace
    /// How long a `client_msg_id` is remembered in Redis (PostgreSQL's unique key covers longer).
    public let dedupeTTL: Duration

    public init(client: RedisClient, keys: RedisKeyspace, dedupeTTL: Duration = .seconds(24 * 3600)) {
        self.client = client
        self.keys = keys
        self.dedupeTTL = dedupeTTL
    }

    public func append(_ message: MessageView, holder: String) async throws -> LogAppendOutcome {
        let channel = message.channelID
        let reply = try await client.evaluate(
            .appendToLog, keys: [keys.lease(.channel(channel)), keys.log(channel: channel), keys.dedupe(channel: channel)],
            arguments: [holder, message.seq, message.clientMessageID ?? "", message.json.jsonBytes, message.id,
                        dedupeTTL.milliseconds])
        guard let parts = reply.array, let verdict = parts.first?.string else {
            throw RedisError.unexpectedReply("append script answered \(reply)")
        }
        switch verdict {
        case "ok": return .appended
        case "not_owner": return .notOwner
        case "stale_seq": return .staleSeq
        case "duplicate" where parts.count == 3:
            guard let seq = parts[1].int, let id = parts[2].string else { break }
            return .duplicate(seq: seq, id: id)
        default: break
        }
        throw RedisError.unexpectedReply("append script answered \(reply)")
    }

    public func entries(channel: String, after: Int64, limit: Int) async throws -> [MessageView] {
        let reply = try await client.execute("XRANGE", keys.log(channel: channel), "(\(after)-0", "+", "COUNT", limit)
        return try (reply.array ?? []).map { entry in
            guard let fields = entry.array?.last?.array, fields.count == 2, let bytes = fields[1].bytes else {
                throw RedisError.unexpectedReply("log entry \(entry)")
            }
            do {
                return try MessageView(json: JSONParser.parse(bytes))
            } catch {
                throw RedisError.unexpectedReply("log entry is not a message: \(error)")
            }
        }
    }

    public func lastSeq(channel: String) async throws -> Int64? {
        let reply = try await client.execute("XREVRANGE", keys.log(channel: channel), "+", "-", "COUNT", 1)
        guard let id = reply.array?.first?.array?.first?.string, let dash = id.firstIndex(of: "-") else { return nil }
        return Int64(id[..<dash])
    }

    public func trim(through: [String: Int64]) async throws {
        // XTRIM MINID keeps entries with ids >= the given id; one pipeline for all channels.
        let replies = try await client.pipeline(through.map { channel, seq in
            RedisCommand("XTRIM", [keys.log(channel: channel), "MINID", "\(seq + 1)-0"])
        })
        if let error = replies.lazy.compactMap(\.errorMessage).first { throw RedisError.reply(error) }
    }
}
