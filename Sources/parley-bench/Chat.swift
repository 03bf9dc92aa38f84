import Foundation
import Histogram
import ParleyCore
import ParleyRedis
import Synchronization

/// Many channels, several senders in each, `rate` messages/s in all: acknowledged messages/s
/// (acknowledged = in the Redis log), send→ack and send→deliver latency, the buffer's lag to
/// PostgreSQL, and what each message costs in Redis commands and PostgreSQL statements.
struct ChatLoad: Sendable {
    var channels: Int
    var sendersPerChannel: Int
    var rate: Int
    var seconds: Int
    var sockets: Int { channels * sendersPerChannel }
}

enum Chat {
    /// Socket n joins channel n mod C on node (n + n / C) mod N: a channel's members are on
    /// different nodes, and each node holds members of every channel.
    static func run(_ load: ChatLoad, api: BenchAPI, cluster: ClusterTarget, redis: RedisClient, redisURL: String,
                    report: inout Report) async throws {
        guard Double(load.rate) / Double(load.sockets) <= 9.5 else {
            throw BenchAPI.Failure(description: "\(load.rate)/s over \(load.sockets) sockets exceeds the node's 10/s per socket; add channels or senders")
        }
        let users = try await api.signUp(count: max(2, load.sendersPerChannel), prefix: "chat")
        let (_, channels) = try await api.workspace(owner: users[0], members: users, channels: load.channels)
        let deliveries = LatencyRecorder()
        let sockets = try await inBatches(load.sockets) { n in
            let channel = channels[n % load.channels]
            let node = n + n / load.channels
            let client = PhoenixBenchClient(baseURL: cluster.wsURL(forNode: node), token: users[n / load.channels % users.count].token) { text in
                if text.contains("\"message_created\"") { deliveries.record(carriedIn: text) }
            }
            let joined = await client.join("channel:\(channel)")
            guard joined.status == "ok" else { throw BenchAPI.Failure(description: "join: \(joined.response.jsonText) \(client.error ?? "")") }
            return (client, channel, cluster.placed ? cluster.nodes[node % cluster.count].name : nil)
        }
        // Each channel's server starts with its first message (one without a send time, which
        // is not counted); then which sends are forwarded: those from a socket on a node that
        // does not own the channel.
        _ = try await inBatches(load.channels) { n in
            let first = await sockets[n].0.request("channel:\(channels[n])", "new_message", ["body": "first"], joinRef: "channel:\(channels[n])")
            guard first.status == "ok" else { throw BenchAPI.Failure(description: "first message: \(first.response.jsonText)") }
        }
        let owners = try await cluster.owners(of: channels, redis: redis)

        let commandsBefore = try await commandStats(redis)
        let metricsBefore = await cluster.metrics(api)
        let maxLag = Mutex<Double>(0)
        let sampler = Task {
            while !Task.isCancelled {
                let lag = await cluster.metrics(api).values.compactMap { $0["parley_buffer_lag_milliseconds"] }.max() ?? 0
                maxLag.withLock { $0 = max($0, lag) }
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
        let cpu = cluster.cpuMeter()
        let acks = LatencyRecorder()
        let localAcks = LatencyRecorder(), forwardedAcks = LatencyRecorder()
        let refusals = Mutex<[String: Int]>([:])
        let sequence = Atomic<Int>(0)
        let start = nowNanos()
        let (acked, failed) = await publishOnSchedule(rate: load.rate, seconds: load.seconds, publishers: load.sockets) { p in
            let (client, channel, node) = sockets[p]
            let sentAt = nowNanos()
            let id = sequence.add(1, ordering: .relaxed).newValue
            let reply = await client.request("channel:\(channel)", "new_message",
                                             ["body": .string("t=\(sentAt) chat message \(id)"), "client_msg_id": .string("b\(id)")],
                                             joinRef: "channel:\(channel)")
            guard reply.status == "ok" else {
                refusals.withLock { $0[reply.response["reason"]?.stringValue ?? reply.status, default: 0] += 1 }
                return false
            }
            acks.record(sentAt: sentAt)
            if let node, let owner = owners[channel] { (node == owner ? localAcks : forwardedAcks).record(sentAt: sentAt) }
            return true
        }
        let sendSeconds = Double(nowNanos() - start) / 1e9
        let serverCPU = cpu.used
        sampler.cancel()
        await waitFor(acked * load.sendersPerChannel) { deliveries.count }
        // The buffer catches up: its lag once sending stops.
        let drainStart = nowNanos()
        var pending = 1.0
        while pending > 0, nowNanos() - drainStart < 30_000_000_000 {
            pending = await cluster.metrics(api).values.reduce(0) { $0 + ($1["parley_buffer_pending"] ?? 0) }
            if pending > 0 { try? await Task.sleep(for: .milliseconds(100)) }
        }
        let drainSeconds = Double(nowNanos() - drainStart) / 1e9
        let metricsAfter = await cluster.metrics(api)
        let commandsAfter = try await commandStats(redis)
        for (client, _, _) in sockets { client.close() }

        let ackedPerSecond = Double(acked) / sendSeconds
        let fsync = try await redis.execute("CONFIG", "GET", "appendfsync").array?.last?.string ?? "?"
        report.add("nodes", "nodes", cluster.count)
        report.add("Redis appendfsync", "redis_appendfsync", text: fsync)
        report.add("sockets (channels × senders)", "sockets", text: "\(load.sockets) (\(load.channels) × \(load.sendersPerChannel))")
        report.add("offered rate", "offered_per_s", Double(load.rate), unit: "msg/s")
        report.add("acknowledged", "acked", acked)
        report.add("refused", "refused", text: failed == 0 ? "0" : refusals.withLock { $0 }.map { "\($0.key) \($0.value)" }.sorted().joined(separator: ", "))
        report.add("acknowledged messages/s", "acked_per_s", ackedPerSecond, digits: 1)
        report.latency("send→ack", "ack_latency", acks.histogram)
        if cluster.count > 1 && cluster.placed {
            report.latency("  sent on the owner's node", "ack_latency_local", localAcks.histogram)
            report.latency("  forwarded to the owner", "ack_latency_forwarded", forwardedAcks.histogram)
        }
        report.latency("send→deliver", "deliver_latency", deliveries.histogram)
        report.add("deliveries", "delivered", deliveries.count)
        report.add("buffer lag to PostgreSQL, max while sending", "buffer_lag_max_ms", maxLag.withLock { $0 }, unit: "ms")
        report.add("buffer drained after sending stopped in", "buffer_drain_s", drainSeconds, unit: "s", digits: 2)

        // Cost per message.
        let delta = commandsAfter.merging(commandsBefore.mapValues { -$0 }) { $0 + $1 }.filter { $0.value > 0 && $0.key != "info" }
        let perMessage = delta.mapValues { Double($0) / Double(max(acked, 1)) }
        let listing = perMessage.filter { $0.value >= 0.005 }.sorted { $0.value > $1.value }
            .map { String(format: "%@ %.2f", $0.key, $0.value) }.joined(separator: ", ")
        report.add("Redis commands per message (incl. inside scripts)", "redis_commands_per_msg",
                   perMessage.values.reduce(0, +), digits: 2)
        report.add("  by command", "redis_commands_by_command", text: listing)
        let grew = { (name: String) in ClusterTarget.growth(name, from: metricsBefore, to: metricsAfter) }
        let batches = grew("parley_buffer_batches_total"), statements = grew("parley_postgres_statements_total")
        let rows = grew("parley_buffer_rows_total")
        if cluster.count > 1 {
            let forwarded = grew("parley_forwarded_requests_total")
            report.add("forwarded writes", "forwarded", Int(forwarded))
            report.add("forwarded write, mean at the forwarding node", "forwarded_mean_ms",
                       grew("parley_forwarded_requests_milliseconds_total") / max(forwarded, 1), unit: "ms", digits: 2)
            report.add("bus envelopes sent per message", "bus_sent_per_msg", grew("parley_bus_published_total") / Double(max(acked, 1)), digits: 2)
            report.add("bus envelopes received per message", "bus_received_per_msg", grew("parley_bus_received_total") / Double(max(acked, 1)), digits: 2)
        }
        if let serverCPU {
            report.add("nodes' CPU per 1000 acknowledged messages", "cpu_ms_per_1000_acked",
                       1_000_000 * serverCPU / Double(max(acked, 1)), unit: "ms", digits: 1)
        }
        report.add("PostgreSQL batches", "pg_batches", Int(batches))
        report.add("PostgreSQL rows per batch", "pg_rows_per_batch", rows / max(batches, 1), digits: 1)
        report.add("PostgreSQL statements per batch", "pg_statements_per_batch", statements / max(batches, 1), digits: 2)

        // The ceiling: the same top-level command mix run by redis-benchmark, pipelined.
        // Each trim is one EVALSHA of the trim script (with one XTRIM inside); the rest are appends.
        let trims = perMessage["xtrim"] ?? 0
        let ceiling = try await RedisCeiling.measure(redis: redis, redisURL: redisURL,
                                                     appendsPerMessage: max(0, (perMessage["evalsha"] ?? 1) - trims),
                                                     trimsPerMessage: trims)
        report.add("redis-benchmark EVALSHA append script (pipelined)", "ceiling_evalsha_per_s", ceiling.evalsha, unit: "/s")
        report.add("redis-benchmark XTRIM (pipelined)", "ceiling_xtrim_per_s", ceiling.xtrim, unit: "/s")
        report.add("Redis ceiling for this mix", "ceiling_msgs_per_s", ceiling.messages, unit: "msg/s")
        report.add("acknowledged / ceiling", "fraction_of_ceiling", 100 * ackedPerSecond / ceiling.messages, unit: "%", digits: 1)
    }

    /// `INFO commandstats` as command → calls.
    static func commandStats(_ redis: RedisClient) async throws -> [String: Int] {
        let text = try await redis.execute("INFO", "commandstats").string ?? ""
        var calls: [String: Int] = [:]
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_") {
            let name = line.dropFirst("cmdstat_".count).prefix { $0 != ":" }
            guard let field = line.split(separator: ",").first?.split(separator: "=").last, let count = Int(field) else { continue }
            calls[String(name).lowercased()] = count
        }
        return calls
    }
}

/// What Redis alone can do with Parley's command mix: `redis-benchmark` (pipelined, 16
/// connections) runs the append script with the node's arguments and shapes, and the trim,
/// each on its own; the messages/s ceiling combines them by how often a message needs each.
enum RedisCeiling {
    struct Figures {
        var evalsha: Double
        var xtrim: Double
        var messages: Double
    }

    static let database = 15

    static func measure(redis: RedisClient, redisURL: String, appendsPerMessage: Double, trimsPerMessage: Double) async throws -> Figures {
        let configuration = try RedisConfiguration(url: redisURL, poolSize: 1)
        let scratch = RedisClient(try RedisConfiguration(url: "redis://\(configuration.password.map { ":\($0)@" } ?? "")\(configuration.host):\(configuration.port)/\(database)", poolSize: 1))
        defer { Task { await scratch.shutdown() } }
        guard (try await scratch.execute("DBSIZE").int ?? 1) == 0 else {
            throw BenchAPI.Failure(description: "Redis database \(database) is not empty; the ceiling run uses it as scratch space")
        }
        let script = RedisScript.appendToLog
        _ = try await scratch.execute("SCRIPT", "LOAD", script.source)
        _ = try await scratch.execute("SET", "bench:lease", "bench-holder")
        // A message as the node logs it (same fields and size).
        let message = JSONValue.object([
            "id": .string(UUID().uuidString.lowercased()), "channel_id": .string(UUID().uuidString.lowercased()),
            "user_id": .string(UUID().uuidString.lowercased()), "seq": 1, "body": "t=1234567890123 chat message 12345",
            "client_msg_id": "b12345", "thread_root_id": .null, "entities": .array([]),
            "inserted_at": "2026-11-23T12:00:00.000Z", "edited_at": .null,
        ]).jsonText
        let base = ["-h", configuration.host, "-p", String(configuration.port), "--dbnum", String(database),
                    "-c", "16", "-P", "32", "-r", "100000000", "--csv"] + (configuration.password.map { ["-a", $0] } ?? [])
        let figures = Result {
            try (run(base + ["-n", "200000", "EVALSHA", script.sha, "5", "bench:lease", "bench:log:{__rand_int__}",
                             "bench:dedupe:{__rand_int__}", "bench:dedupe-trimmed:{__rand_int__}",
                             "bench:dedupe-trimmed-old:{__rand_int__}", "bench-holder", "1", "u:c__rand_int__", message,
                             UUID().uuidString.lowercased()]),
                 run(base + ["-n", "200000", "XTRIM", "bench:log:{__rand_int__}", "MINID", "2-0"]))
        }
        _ = try await scratch.execute("FLUSHDB")
        let (evalsha, xtrim) = try figures.get()
        let secondsPerMessage = appendsPerMessage / evalsha + trimsPerMessage / xtrim
        return Figures(evalsha: evalsha, xtrim: xtrim, messages: 1 / secondsPerMessage)
    }

    /// Runs redis-benchmark; returns its requests per second.
    private static func run(_ arguments: [String]) throws -> Double {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["redis-benchmark"] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        // --csv: "test","rps" and six latency columns, then a row per test whose quoted name
        // (the command line, unescaped) may itself hold commas: read rps from the end.
        let fields = text.split(whereSeparator: \.isNewline).last?.split(separator: ",") ?? []
        guard fields.count >= 8,
              let rps = Double(fields[fields.count - 7].trimmingCharacters(in: CharacterSet(charactersIn: "\""))) else {
            throw BenchAPI.Failure(description: "redis-benchmark gave no figure: \(text.prefix(300))")
        }
        return rps
    }
}
