import ParleyCore

/// `MessageLog` in Redis: one stream per channel with entry ids `{seq}-0`, de-duplication
/// hashes (the stream's messages, and those trimmed within the last one or two graces), and
/// the append and trim scripts.
public struct RedisMessageLog: MessageLog {
    public let client: RedisClient
    public let keys: RedisKeyspace
    public let trimGrace: Duration

    public init(client: RedisClient, keys: RedisKeyspace, trimGrace: Duration = .seconds(10)) {
        self.client = client
        self.keys = keys
        self.trimGrace = trimGrace
    }

    private func dedupeKeys(_ channel: String) -> [String] {
        [keys.dedupe(channel: channel), keys.trimmedDedupe(channel: channel), keys.olderTrimmedDedupe(channel: channel)]
    }

    public func append(_ message: MessageView, holder: String) async throws -> LogAppendOutcome {
        let channel = message.channelID
        let reply = try await client.evaluate(
            .appendToLog, keys: [keys.lease(.channel(channel)), keys.log(channel: channel)] + dedupeKeys(channel),
            arguments: [holder, message.seq, message.dedupeField ?? "", message.json.jsonBytes, message.id])
        guard let parts = reply.array, let verdict = parts.first?.string else {
            throw RedisError.unexpectedReply("append script answered \(reply)")
        }
        switch verdict {
        case "ok": return .appended
        case "not_owner": return .notOwner
        case "stale_seq": return .staleSeq
        case "duplicate" where parts.count == 3:
            guard let seq = parts[1].string.flatMap({ Int64($0) }) ?? parts[1].int, let id = parts[2].string else { break }
            return .duplicate(seq: seq, id: id)
        default: break
        }
        throw RedisError.unexpectedReply("append script answered \(reply)")
    }

    public func entries(channel: String, after: Int64, through: Int64, limit: Int) async throws -> [MessageView] {
        guard after < through else { return [] }
        let end = through == .max ? "+" : "\(through)-0"
        return try Self.messages(try await client.execute("XRANGE", keys.log(channel: channel), "(\(after)-0", end, "COUNT", limit))
    }

    public func entries(channel: String, before: Int64, limit: Int) async throws -> [MessageView] {
        guard before > 1 else { return [] }
        let newest = try await client.execute("XREVRANGE", keys.log(channel: channel), "(\(before)-0", "-", "COUNT", limit)
        return try Self.messages(newest).reversed()
    }

    public func lastSeq(channel: String) async throws -> Int64? {
        let reply = try await client.execute("XREVRANGE", keys.log(channel: channel), "+", "-", "COUNT", 1)
        guard let id = reply.array?.first?.array?.first?.string, let dash = id.firstIndex(of: "-") else { return nil }
        return Int64(id[..<dash])
    }

    public func trim(through: [String: Int64]) async throws {
        guard !through.isEmpty else { return }
        let replies = try await client.pipeline(through.map { channel, seq in
            .evalSHA(.trimLog, keys: [keys.log(channel: channel)] + dedupeKeys(channel), arguments: [seq, trimGrace.milliseconds])
        })
        if let error = replies.lazy.compactMap(\.errorMessage).first { throw RedisError.reply(error) }
    }

    public func channelsWithEntries() async throws -> [String] {
        let pattern = keys.log(channel: "*")
        let head = keys.logHead
        var cursor = "0"
        var found: [String] = []
        repeat {
            let reply = try await client.execute("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string else {
                throw RedisError.unexpectedReply("SCAN answered \(reply)")
            }
            cursor = next
            let names = parts[1].array?.compactMap(\.string) ?? []
            guard !names.isEmpty else { continue }
            let lengths = try await client.pipeline(names.map { RedisCommand("XLEN", [$0]) })
            for (name, length) in zip(names, lengths) where (length.int ?? 0) > 0 && name.hasPrefix(head) {
                found.append(String(name.dropFirst(head.count).dropLast()))
            }
        } while cursor != "0"
        return found
    }

    /// Messages from an `XRANGE` reply: entries `[id, ['m', json, …]]`.
    static func messages(_ reply: RedisValue) throws -> [MessageView] {
        try (reply.array ?? []).map { entry in
            guard let fields = entry.array?.last?.array, fields.count >= 2, let bytes = fields[1].bytes else {
                throw RedisError.unexpectedReply("log entry \(entry)")
            }
            do {
                return try MessageView(json: JSONParser.parse(bytes))
            } catch {
                throw RedisError.unexpectedReply("log entry is not a message: \(error)")
            }
        }
    }
}
