import Foundation
import Histogram
import ParleyCore
import ParleyPostgres
import ParleyRedis
import Synchronization

/// A member that keeps sending to its channel whatever happens to the nodes, as a careful
/// client does: one message at a time with a `client_msg_id`; an error reply or a lost socket
/// sends the same message again (after reconnecting, through the entry address, and
/// rejoining). Used by the failover and handoff scenarios.
final class SteadyMember: Sendable {
    struct Ack: Sendable {
        let clientID: String
        let seq: Int
        let at: UInt64
        let latency: UInt64
    }

    struct Record: Sendable {
        var acks: [Ack] = []
        var errorReplies: [String: Int] = [:]
        /// When the socket was lost and when it was joined again (nanoseconds).
        var outages: [(lost: UInt64, back: UInt64?)] = []
        /// The node the member's first socket was on.
        var firstNode: String?
    }

    let name: String
    let channel: String
    private let token: String
    private let firstURL: String
    private let entryURL: String
    private let interval: UInt64
    let record = Mutex(Record())

    init(name: String, channel: String, token: String, node: ClusterTarget.Node?, entryWSURL: String, perSecond: Double) {
        self.name = name
        self.channel = channel
        self.token = token
        firstURL = node?.wsURL ?? entryWSURL
        entryURL = entryWSURL
        interval = UInt64(1e9 / perSecond)
        record.withLock { $0.firstNode = node?.name }
    }

    /// Sends until `end` (monotonic nanoseconds), then finishes the message in flight.
    func run(until end: UInt64) async {
        let topic = "channel:\(channel)"
        var client: PhoenixBenchClient?
        var connections = 0
        var counter = 0
        var pending: (id: String, since: UInt64)?
        var next = nowNanos() + UInt64.random(in: 0..<interval)
        while nowNanos() < end || pending != nil {
            if client == nil {
                // The first socket goes to the member's node, later ones wherever the entry sends them.
                let fresh = PhoenixBenchClient(baseURL: connections == 0 ? firstURL : entryURL, token: token) { _ in }
                connections += 1
                let joined = await fresh.join(topic)
                if joined.status == "ok" {
                    client = fresh
                    let now = nowNanos()
                    record.withLock { if let last = $0.outages.indices.last, $0.outages[last].back == nil { $0.outages[last].back = now } }
                } else {
                    fresh.close()
                    if nowNanos() > end + 30_000_000_000 { return }
                    try? await Task.sleep(for: .milliseconds(200))
                    continue
                }
            }
            guard let socket = client else { continue }
            if pending == nil {
                guard nowNanos() < end else { break }
                try? await sleep(untilNanos: next)
                next += interval
                counter += 1
                pending = ("\(name)-\(counter)", nowNanos())
            }
            guard let message = pending else { continue }
            let reply = await socket.request(topic, "new_message",
                                             ["body": .string("steady \(message.id)"), "client_msg_id": .string(message.id)], joinRef: topic)
            let now = nowNanos()
            switch reply.status {
            case "ok":
                let ack = Ack(clientID: message.id, seq: reply.response["seq"]?.intValue.map(Int.init) ?? -1, at: now, latency: now - message.since)
                record.withLock { $0.acks.append(ack) }
                pending = nil
            case "closed":
                client = nil
                record.withLock { $0.outages.append((now, nil)) }
            default:
                record.withLock { $0.errorReplies[reply.response["reason"]?.stringValue ?? reply.status, default: 0] += 1 }
                if nowNanos() > end + 30_000_000_000 { return }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        client?.close()
    }
}

/// What a run of steady members did, checked against PostgreSQL.
struct ChurnOutcome {
    var acked = 0
    var lost = 0
    var duplicated = 0
    var errorReplies: [String: Int] = [:]
    var latency = Histogram<UInt64>(lowestDiscernibleValue: 1_000, highestTrackableValue: 120_000_000_000, numberOfSignificantValueDigits: .three)

    /// Waits (up to 45 s) until every acknowledged message is in PostgreSQL at its `seq`;
    /// counts those that never arrive and any `client_msg_id` stored twice.
    static func check(_ members: [SteadyMember], databaseURL: String) async throws -> ChurnOutcome {
        var outcome = ChurnOutcome()
        var expected: [String: [Int: String]] = [:]
        for member in members {
            member.record.withLock { record in
                for ack in record.acks {
                    expected[member.channel, default: [:]][ack.seq] = ack.clientID
                    _ = outcome.latency.record(max(1_000, ack.latency))
                }
                outcome.acked += record.acks.count
                outcome.errorReplies.merge(record.errorReplies, uniquingKeysWith: +)
            }
        }
        let postgres = PostgresClient(try PostgresConfiguration(url: databaseURL, poolSize: 1))
        defer { Task { await postgres.shutdown() } }
        let channels = expected.keys.sorted()
        guard !channels.isEmpty else { return outcome }
        let list = channels.map { "'\($0)'::uuid" }.joined(separator: ", ")
        let deadline = nowNanos() + 45_000_000_000
        while true {
            var stored: [String: [Int: String]] = [:]
            var seen: [String: Int] = [:]
            for row in try await postgres.query("SELECT channel_id::text, seq, coalesce(client_msg_id, '') FROM messages WHERE channel_id IN (\(list))", []) {
                let channel = try row.decode(String.self, at: 0), seq = try row.decode(Int.self, at: 1), id = try row.decode(String.self, at: 2)
                stored[channel, default: [:]][seq] = id
                if !id.isEmpty { seen["\(channel) \(id)", default: 0] += 1 }
            }
            outcome.lost = expected.reduce(0) { total, entry in
                total + entry.value.filter { stored[entry.key]?[$0.key] != $0.value }.count
            }
            outcome.duplicated = seen.values.filter { $0 > 1 }.count
            if outcome.lost == 0 || nowNanos() > deadline { return outcome }
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    func add(to report: inout Report) {
        report.add("acknowledged", "acked", acked)
        report.add("lost (acknowledged, not in PostgreSQL at its seq)", "lost", lost)
        report.add("stored twice (same client_msg_id)", "duplicated", duplicated)
        report.add("error replies (the client sent again)", "error_replies",
                   text: errorReplies.isEmpty ? "0" : errorReplies.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        report.latency("send→ack (through retries)", "ack_latency", latency)
    }
}

/// Members on every node, `perChannel` per channel, each sending `perSecond`.
func steadyMembers(channels: [String], users: [BenchAPI.User], perChannel: Int, perSecond: Double,
                   cluster: ClusterTarget) -> [SteadyMember] {
    (0..<(channels.count * perChannel)).map { n in
        let node = cluster.placed ? cluster.nodes[(n + n / channels.count) % cluster.count] : nil
        return SteadyMember(name: "m\(n)", channel: channels[n % channels.count], token: users[n % users.count].token,
                            node: node, entryWSURL: cluster.entryWSURL, perSecond: perSecond)
    }
}

/// The longest time each channel went without an acknowledgement between `from` and `to`
/// (nanoseconds), from all its members' acknowledgements.
func longestSilence(_ members: [SteadyMember], from: UInt64, to: UInt64) -> [String: UInt64] {
    var times: [String: [UInt64]] = [:]
    for member in members {
        let acks = member.record.withLock { $0.acks.map(\.at) }
        times[member.channel, default: []] += acks.filter { $0 >= from && $0 <= to }
    }
    return times.mapValues { acks in
        let sorted = [from] + acks.sorted() + [to]
        return zip(sorted.dropFirst(), sorted).map { $0 - $1 }.max() ?? 0
    }
}

/// Setup shared by failover and handoff.
struct ChurnSetup {
    let channels: [String]
    let members: [SteadyMember]

    static func make(api: BenchAPI, cluster: ClusterTarget, channels count: Int, perChannel: Int, perSecond: Double,
                     prefix: String) async throws -> ChurnSetup {
        let users = try await api.signUp(count: max(2, perChannel), prefix: prefix)
        let (_, channels) = try await api.workspace(owner: users[0], members: users, channels: count)
        return ChurnSetup(channels: channels,
                          members: steadyMembers(channels: channels, users: users, perChannel: perChannel, perSecond: perSecond, cluster: cluster))
    }

    /// Runs every member until `end`, with `during` run alongside.
    func run(until end: UInt64, during: @escaping @Sendable () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for member in members { group.addTask { await member.run(until: end) } }
            group.addTask { try await during() }
            try await group.waitForAll()
        }
    }
}

func milliseconds(_ nanos: UInt64) -> Double { Double(nanos) / 1e6 }

/// p50 and max of a list of durations (nanoseconds), as text in milliseconds.
func spread(_ values: [UInt64]) -> String {
    guard !values.isEmpty else { return "none" }
    let sorted = values.sorted()
    return String(format: "p50 %.0f ms, max %.0f ms (%d)", milliseconds(sorted[sorted.count / 2]), milliseconds(sorted.last ?? 0), sorted.count)
}
