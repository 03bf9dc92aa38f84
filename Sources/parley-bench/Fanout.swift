import AsyncHTTPClient
import Foundation
import Histogram
import ParleyCore
import ParleyRedis
import Synchronization

/// One channel, `subscribers` sockets on it, publishers at `rate` messages/s in all for
/// `seconds`: deliveries/s and publish→deliver latency. The same load runs against Parley
/// (Phoenix sockets, `new_message`) or nchan (raw WebSocket subscribers, HTTP publishes).
struct FanoutLoad: Sendable {
    var subscribers: Int
    var rate: Int
    var seconds: Int
    /// Per publisher socket: under Parley's per-socket limit of 10/s.
    static let perPublisher = 8
    var publishers: Int { max(1, (rate + Self.perPublisher - 1) / Self.perPublisher) }
}

struct FanoutResult: Sendable {
    var target: String
    var published = 0
    var failedPublishes = 0
    var expected = 0
    var delivered = 0
    var seconds = 0.0
    var deliver: Histogram<UInt64>
    var ack: Histogram<UInt64>?
    /// CPU the server's processes (every node, or every nginx) used from the first publish
    /// to the last delivery, and Redis's.
    var serverCPUSeconds: Double?
    var redisCPUSeconds: Double?
    /// Cluster bus traffic per publish (Parley on several nodes): envelopes the nodes
    /// published and received, and of those received the event's copies.
    var bus: (sent: Double, received: Double, eventCopies: Double, remoteNodes: Int)?

    var deliveriesPerSecond: Double { Double(delivered) / seconds }

    func add(to report: inout Report, prefix: String) {
        report.add("\(prefix) published", "\(prefix)_published", published)
        report.add("\(prefix) failed publishes", "\(prefix)_failed_publishes", failedPublishes)
        report.add("\(prefix) deliveries (of expected)", "\(prefix)_delivered", text: "\(delivered) of \(expected)")
        report.add("\(prefix) deliveries/s", "\(prefix)_deliveries_per_s", deliveriesPerSecond)
        report.latency("\(prefix) publish→deliver", "\(prefix)_deliver_latency", deliver)
        if let serverCPUSeconds {
            report.add("\(prefix) server CPU", "\(prefix)_server_cpu_s", serverCPUSeconds, unit: "s", digits: 2)
            report.add("\(prefix) server CPU per 1000 deliveries", "\(prefix)_cpu_ms_per_1000",
                       1_000_000 * serverCPUSeconds / Double(max(delivered, 1)), unit: "ms", digits: 2)
        }
        if let redisCPUSeconds {
            report.add("\(prefix) Redis CPU per 1000 deliveries", "\(prefix)_redis_cpu_ms_per_1000",
                       1_000_000 * redisCPUSeconds / Double(max(delivered, 1)), unit: "ms", digits: 2)
        }
        if let ack { report.latency("\(prefix) publish→ack", "\(prefix)_ack_latency", ack) }
        if let bus {
            report.add("\(prefix) bus envelopes sent per publish", "\(prefix)_bus_sent_per_publish", bus.sent, digits: 2)
            report.add("\(prefix) bus envelopes received per publish", "\(prefix)_bus_received_per_publish", bus.received, digits: 2)
            report.add("\(prefix) event copies per publish (remote nodes with subscribers: \(bus.remoteNodes))",
                       "\(prefix)_bus_event_copies_per_publish", bus.eventCopies, digits: 2)
        }
    }
}

/// Publishes on a fixed schedule from `publishers` tasks, `rate` per second in all, for
/// `seconds`. Returns (published, failed).
func publishOnSchedule(rate: Int, seconds: Int, publishers: Int,
                       _ publish: @escaping @Sendable (Int) async -> Bool) async -> (Int, Int) {
    let perPublisher = Double(rate) / Double(publishers)
    let interval = UInt64(1e9 / perPublisher)
    let start = nowNanos()
    let end = start + UInt64(seconds) * 1_000_000_000
    return await withTaskGroup(of: (Int, Int).self) { group in
        for p in 0..<publishers {
            group.addTask {
                var sent = 0, failed = 0
                // Publishers are spread over the interval so the load is smooth.
                var next = start + interval * UInt64(p) / UInt64(publishers)
                while next < end {
                    try? await sleep(untilNanos: next)
                    if await publish(p) { sent += 1 } else { failed += 1 }
                    next += interval
                }
                return (sent, failed)
            }
        }
        return await group.reduce(into: (0, 0)) { $0.0 += $1.0; $0.1 += $1.1 }
    }
}

/// Waits until `count()` reaches `expected` or `limit` passes.
func waitFor(_ expected: Int, limit: Duration = .seconds(10), _ count: () -> Int) async {
    let deadline = ContinuousClock.now + limit
    while count() < expected && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
}

enum Fanout {
    /// Subscribers spread over the nodes (socket n on node n mod N), publishers on the nodes
    /// that do not own the channel (their publishes are forwarded to the owner, which
    /// publishes each event once on the bus), or everything on the one node.
    static func parley(_ load: FanoutLoad, api: BenchAPI, cluster: ClusterTarget, redis: RedisClient) async throws -> FanoutResult {
        let users = try await api.signUp(count: max(2, min(10, load.subscribers)), prefix: "fan")
        let (_, channels) = try await api.workspace(owner: users[0], members: users, channels: 1)
        let topic = "channel:\(channels[0])"
        let deliveries = LatencyRecorder()
        let subscribers = try await inBatches(load.subscribers) { n in
            let client = PhoenixBenchClient(baseURL: cluster.wsURL(forNode: n), token: users[n % users.count].token) { text in
                if text.contains("\"message_created\"") { deliveries.record(carriedIn: text) }
            }
            let joined = await client.join(topic)
            guard joined.status == "ok" else { throw BenchAPI.Failure(description: "subscriber join: \(joined.response.jsonText) \(client.error ?? "")") }
            return client
        }
        // The channel's owner: its server starts with the first message (one without a send
        // time, which the subscribers do not count).
        let first = await subscribers[0].request(topic, "new_message", ["body": "first"], joinRef: topic)
        guard first.status == "ok" else { throw BenchAPI.Failure(description: "first message: \(first.response.jsonText)") }
        let owner = try await cluster.owners(of: channels, redis: redis)[channels[0]]
        let others = cluster.placed ? cluster.nodes.indices.filter { cluster.nodes[$0].name != owner } : []
        let publishers = try await inBatches(load.publishers) { n in
            let url = others.isEmpty ? cluster.wsURL(forNode: 0) : cluster.nodes[others[n % others.count]].wsURL
            let client = PhoenixBenchClient(baseURL: url, token: users[0].token) { _ in }
            let joined = await client.join(topic)
            guard joined.status == "ok" else { throw BenchAPI.Failure(description: "publisher join: \(joined.response.jsonText)") }
            return client
        }
        if let owner { print("fanout: the channel's owner is \(owner); publishers on \(others.map { cluster.nodes[$0].name })") }
        let acks = LatencyRecorder()
        let metricsBefore = await cluster.metrics(api)
        let cpu = cluster.cpuMeter()
        let redisCPU = ProcessCPU.Meter(pid: await redisPID(redis))
        let start = nowNanos()
        let (published, failed) = await publishOnSchedule(rate: load.rate, seconds: load.seconds, publishers: publishers.count) { p in
            let sentAt = nowNanos()
            let reply = await publishers[p].request(topic, "new_message", ["body": .string("t=\(sentAt)")], joinRef: topic)
            guard reply.status == "ok" else { return false }
            acks.record(sentAt: sentAt)
            return true
        }
        let expected = published * load.subscribers
        await waitFor(expected) { deliveries.count }
        let (serverCPU, redisUsed) = (cpu.used, redisCPU.used)
        let metricsAfter = await cluster.metrics(api)
        var result = FanoutResult(target: "parley", published: published, failedPublishes: failed, expected: expected,
                                  delivered: deliveries.count, seconds: Double(max(deliveries.lastAt, start + 1) - start) / 1e9,
                                  deliver: deliveries.histogram, ack: acks.histogram,
                                  serverCPUSeconds: serverCPU, redisCPUSeconds: redisUsed)
        if cluster.count > 1 {
            let grew = { (name: String) in ClusterTarget.growth(name, from: metricsBefore, to: metricsAfter) / Double(max(published, 1)) }
            // Received = the event's copies + forwarded requests (at the owner) + their replies
            // + the owner's own publications echoed back to it.
            let received = grew("parley_bus_received_total") - grew("parley_bus_ignored_total")
            let forwarded = grew("parley_forwarded_requests_total")
            let nodesWithSubscribers = Set((0..<load.subscribers).map { cluster.placed ? $0 % cluster.count : -1 })
            result.bus = (grew("parley_bus_published_total"), received, received - 2 * forwarded,
                          cluster.placed ? nodesWithSubscribers.filter { cluster.nodes[$0].name != owner }.count : cluster.count - 1)
        }
        for client in subscribers + publishers { client.close() }
        return result
    }

    /// nchan: `GET ws://…/sub/{channel}` subscribers, `POST http://…/pub/{channel}` publishers,
    /// spread over the instances (several nchan instances on one Redis are nchan's cluster).
    static func nchan(_ load: FanoutLoad, api: BenchAPI, urls: [String], serverPIDs: [Int32], redis: RedisClient) async throws -> FanoutResult {
        let channel = "bench-\(UUID().uuidString.prefix(8).lowercased())"
        let deliveries = LatencyRecorder()
        let subscribers = try await inBatches(load.subscribers) { n in
            let wsURL = urls[n % urls.count].replacingOccurrences(of: "http://", with: "ws://")
            let socket = BenchSocket(url: "\(wsURL)/sub/\(channel)", onText: { text in deliveries.record(carriedIn: text) })
            await socket.waitOpen()
            if let error = socket.error { throw BenchAPI.Failure(description: "nchan subscriber: \(error)") }
            return socket
        }
        let cpu = ProcessCPU.Meter(pids: serverPIDs)
        let redisCPU = ProcessCPU.Meter(pid: await redisPID(redis))
        let start = nowNanos()
        let turn = Atomic<Int>(0)
        let (published, failed) = await publishOnSchedule(rate: load.rate, seconds: load.seconds, publishers: load.publishers) { _ in
            let url = urls[turn.add(1, ordering: .relaxed).oldValue % urls.count]
            return (try? await api.post(url: "\(url)/pub/\(channel)", body: "t=\(nowNanos())")) != nil
        }
        let expected = published * load.subscribers
        await waitFor(expected) { deliveries.count }
        let result = FanoutResult(target: "nchan", published: published, failedPublishes: failed, expected: expected,
                                  delivered: deliveries.count, seconds: Double(max(deliveries.lastAt, start + 1) - start) / 1e9,
                                  deliver: deliveries.histogram,
                                  serverCPUSeconds: cpu.used, redisCPUSeconds: redisCPU.used)
        for socket in subscribers { socket.close() }
        return result
    }
}

/// CPU time (user + system) of processes and their children (nginx's workers).
enum ProcessCPU {
    /// CPU the processes used since the meter was made (nil when none is readable).
    struct Meter: Sendable {
        let pids: [Int32]
        private let start: Double?

        init(pid: Int32?) { self.init(pids: pid.map { [$0] } ?? []) }

        init(pids: [Int32]) {
            self.pids = pids
            start = Self.total(pids)
        }

        var used: Double? {
            guard let start, let now = Self.total(pids) else { return nil }
            return now - start
        }

        private static func total(_ pids: [Int32]) -> Double? {
            let each = pids.compactMap(ProcessCPU.seconds(of:))
            return each.isEmpty ? nil : each.reduce(0, +)
        }
    }

    static func seconds(of pid: Int32) -> Double? {
        guard let own = ticks(pid) else { return nil }
        let children = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init)
            .filter { parent(of: $0) == pid }
        let total = children.reduce(own) { $0 + (ticks($1) ?? 0) }
        return Double(total) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Fields after the command name in /proc/PID/stat (which may contain spaces).
    private static func fields(_ pid: Int32) -> [Substring]? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }

    private static func ticks(_ pid: Int32) -> Int? {
        // state(3) ppid(4) … utime(14) stime(15): indices 11 and 12 after the name.
        guard let fields = fields(pid), fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        return user + system
    }

    private static func parent(of pid: Int32) -> Int32? {
        fields(pid).flatMap { $0.count > 1 ? Int32($0[1]) : nil }
    }
}
