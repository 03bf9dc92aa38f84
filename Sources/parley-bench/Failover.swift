import ArgumentParser
import Foundation
import ParleyCore
import ParleyRedis
import Synchronization

struct ChurnOptions: ParsableArguments {
    @Option(help: "Channels.") var channels = 12
    @Option(help: "Sending members per channel (on different nodes).") var members = 2
    @Option(help: "Messages per second per member.") var perSecond = 4.0
    @Option(help: "Seconds of load before the event.") var warmup = 4
    @Option(help: "Seconds of load after it.") var seconds = 12

    func validate(_ cluster: ClusterTarget) throws {
        guard (1...500).contains(channels), (1...20).contains(members), perSecond > 0, perSecond <= 9.5,
              (1...60).contains(warmup), (1...300).contains(seconds) else {
            throw ValidationError("channels 1…500, members 1…20, per-second up to 9.5, warmup 1…60, seconds 1…300")
        }
        guard cluster.count > 1, cluster.placed else {
            throw ValidationError("this scenario needs a cluster: --node for each node (cluster/bench passes them)")
        }
    }

    /// Sets the members up on the target's cluster and runs `body` with them and the
    /// monotonic time their load ends.
    func run(_ target: TargetOptions, prefix: String,
             _ body: (ClusterTarget, RedisClient, BenchAPI, ChurnSetup, UInt64) async throws -> Void) async throws {
        Connections.raiseDescriptorLimit()
        let cluster = target.cluster()
        try validate(cluster)
        let redis = RedisClient(try RedisConfiguration(url: target.redisURL, poolSize: 1))
        try await target.withAPI { api in
            let setup = try await ChurnSetup.make(api: api, cluster: cluster, channels: channels, perChannel: members,
                                                  perSecond: perSecond, prefix: prefix)
            try await body(cluster, redis, api, setup, nowNanos() + UInt64(warmup + seconds) * 1_000_000_000)
        }
        await redis.shutdown()
    }
}

struct FailoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failover",
        abstract: "Kill -9 the node owning the most channels under load: time until sends succeed again, clients recovered, nothing lost.")
    @OptionGroup var target: TargetOptions
    @OptionGroup var load: ChurnOptions

    func run() async throws {
        try await load.run(target, prefix: "failover") { cluster, redis, _, setup, end in
            let event = Mutex<(victim: String, at: UInt64, owned: [String])?>(nil)
            try await setup.run(until: end) {
                try await Task.sleep(for: .seconds(load.warmup))
                let owners = try await cluster.owners(of: setup.channels, redis: redis)
                let counts = Dictionary(grouping: owners, by: \.value).mapValues(\.count)
                guard let victim = counts.max(by: { $0.value < $1.value })?.key, let pid = cluster.node(named: victim)?.pid else {
                    throw BenchAPI.Failure(description: "no owner with a known process among \(counts)")
                }
                print("failover: kill -9 \(victim) (pid \(pid)), owner of \(counts[victim] ?? 0) of \(setup.channels.count) channels")
                kill(pid, SIGKILL)
                event.withLock { $0 = (victim, nowNanos(), owners.filter { $0.value == victim }.map(\.key)) }
            }
            guard let (victim, killedAt, owned) = event.withLock({ $0 }) else { return }
            let after = try await cluster.owners(of: setup.channels, redis: redis)
            let outcome = try await ChurnOutcome.check(setup.members, databaseURL: target.databaseURL)

            // Per channel: the first acknowledgement after the kill.
            var firstAck: [String: UInt64] = [:]
            for member in setup.members {
                if let ack = member.record.withLock({ $0.acks.first { $0.at >= killedAt } }) {
                    firstAck[member.channel] = min(firstAck[member.channel] ?? .max, ack.at)
                }
            }
            let recovery = { (channels: [String]) in channels.map { (firstAck[$0] ?? end) - killedAt } }
            let untouched = setup.channels.filter { !owned.contains($0) }
            let moved = setup.members.filter { $0.record.withLock { $0.firstNode } == victim }
            let outages = moved.flatMap { $0.record.withLock { $0.outages } }
            let back = outages.compactMap { outage in outage.back.map { $0 - outage.lost } }

            var report = Report(scenario: "failover")
            report.add("nodes", "nodes", cluster.count)
            report.add("channels × sending members", "members", text: "\(load.channels) × \(load.members), \(load.perSecond)/s each")
            report.add("killed (kill -9)", "victim", text: "\(victim), owner of \(owned.count) channels")
            report.add("its channels: time until sends succeed again", "recovery_owned", text: spread(recovery(owned)))
            report.add("other channels: longest wait for an ack after the kill", "recovery_others", text: spread(recovery(untouched)))
            report.add("its channels' new owners", "new_owners",
                       text: Dictionary(grouping: owned.compactMap { after[$0] }, by: { $0 }).map { "\($0.key) \($0.value.count)" }.sorted().joined(separator: ", "))
            report.add("members on it", "members_on_victim", moved.count)
            report.add("of them reconnected and rejoined", "members_recovered", back.count)
            report.add("their time from losing the socket to rejoined", "rejoin", text: spread(back))
            outcome.add(to: &report)
            report.print()
        }
    }
}

struct HandoffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "handoff",
        abstract: "Add a node under load: how many channels move to it and how long writes to a moving channel block.")
    @OptionGroup var target: TargetOptions
    @OptionGroup var load: ChurnOptions
    @Option(help: "The shell command that starts the new node and returns once it is ready.")
    var addNodeCommand: String
    @Option(help: "The new node's name (as its leases name it).") var newNode = "node-4"

    func run() async throws {
        try await load.run(target, prefix: "handoff") { cluster, redis, api, setup, end in
            let metricsBefore = await cluster.metrics(api)
            let moves = Mutex<(added: UInt64, ready: UInt64, before: [String: String], moved: [String: (to: String, at: UInt64)])>((0, 0, [:], [:]))
            try await setup.run(until: end) {
                try await Task.sleep(for: .seconds(load.warmup))
                let before = try await cluster.owners(of: setup.channels, redis: redis)
                let added = nowNanos()
                print("handoff: \(addNodeCommand)")
                let status = try await shell(addNodeCommand)
                guard status == 0 else { throw BenchAPI.Failure(description: "`\(addNodeCommand)` exited \(status)") }
                moves.withLock { $0.added = added; $0.ready = nowNanos(); $0.before = before }
                while nowNanos() < end {
                    let now = try await cluster.owners(of: setup.channels, redis: redis)
                    let at = nowNanos()
                    moves.withLock { state in
                        for (channel, owner) in now where owner != before[channel] && state.moved[channel] == nil {
                            state.moved[channel] = (owner, at)
                        }
                    }
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            let state = moves.withLock { $0 }
            let metricsAfter = await cluster.metrics(api)
            let outcome = try await ChurnOutcome.check(setup.members, databaseURL: target.databaseURL)
            let silence = longestSilence(setup.members, from: state.added, to: end)
            let moved = Array(state.moved.keys), stayed = setup.channels.filter { state.moved[$0] == nil }
            let typical = UInt64(1e9 / (load.perSecond * Double(load.members)))
            let grew = { (name: String) in ClusterTarget.growth(name, from: metricsBefore, to: metricsAfter) }
            let handoffs = grew("parley_handoffs_total")

            var report = Report(scenario: "handoff")
            report.add("nodes before", "nodes", cluster.count)
            report.add("channels × sending members", "members", text: "\(load.channels) × \(load.members), \(load.perSecond)/s each")
            report.add("new node ready after", "add_seconds", Double(state.ready - state.added) / 1e9, unit: "s", digits: 2)
            report.add("channels moved", "moved", text: "\(moved.count) of \(setup.channels.count) (to \(newNode): \(state.moved.values.filter { $0.to == newNode }.count))")
            report.add("moved: longest time without an ack", "silence_moved", text: spread(moved.compactMap { silence[$0] }))
            report.add("others: longest time without an ack", "silence_others", text: spread(stayed.compactMap { silence[$0] }))
            report.add("usual time between a channel's acks", "typical_gap_ms", milliseconds(typical), unit: "ms")
            report.add("handoffs by the old owners (every channel they held moves, not only these)", "handoffs", Int(handoffs))
            report.add("writes blocked by the old owner, mean", "handoff_mean_ms",
                       grew("parley_handoffs_milliseconds_total") / max(handoffs, 1), unit: "ms", digits: 1)
            report.add("longest handoff on any old owner (since it started)", "handoff_longest_ms",
                       metricsAfter.values.compactMap { $0["parley_handoff_longest_milliseconds"] }.max() ?? 0, unit: "ms")
            outcome.add(to: &report)
            report.print()
        }
    }
}

/// Runs `command` with /bin/sh and returns its exit status (waited for on a thread of its
/// own: Foundation's `Process` missed the exit of a shell whose child stays in the background).
func shell(_ command: String) async throws -> Int32 {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            var pid: pid_t = 0
            let words: [String] = ["/bin/sh", "-c", command]
            let arguments: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) }
            defer { arguments.forEach { free($0) } }
            let spawned = posix_spawn(&pid, "/bin/sh", nil, nil, arguments + [nil], environ)
            guard spawned == 0 else {
                continuation.resume(throwing: BenchAPI.Failure(description: "could not run /bin/sh: \(spawned)"))
                return
            }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            // WIFEXITED / WEXITSTATUS by hand (macros are not imported).
            continuation.resume(returning: status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f))
        }
    }
}
