import ArgumentParser
import AsyncHTTPClient
import Foundation
import ParleyRedis

/// `parley-bench`: load against a node started by `cluster/up`. Every run is bounded in
/// connections and time, stops by itself, and prints a table and one JSON line.
@main
struct ParleyBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley-bench",
        abstract: "Load generator for a Parley node (Phoenix protocol over WebSockets).",
        subcommands: [FanoutCommand.self, ChatCommand.self, ConnectionsCommand.self, FailoverCommand.self,
                      HandoffCommand.self, PresenceCommand.self, NotifyCommand.self])
}

enum Placement: String, ExpressibleByArgument, Sendable {
    /// Sockets go straight to chosen nodes (`--node`).
    case nodes
    /// Every socket through the entry address (HAProxy places them).
    case haproxy
}

struct TargetOptions: ParsableArguments {
    @Option(help: "The address clients use: HAProxy's, or the one node's.")
    var url = "http://127.0.0.1:4000"
    @Option(name: .customLong("node"), help: "A node's own address (repeat for each: node-1, node-2, … in order).")
    var nodeURLs: [String] = []
    @Option(help: "Where cluster/up keeps the nodes' PID files (node-N.pid).")
    var clusterDir = "var/cluster"
    @Option(help: "With --node: sockets straight to chosen nodes (nodes) or all through --url (haproxy).")
    var via: Placement = .nodes
    @Option(help: "The Redis the nodes use (for INFO commandstats, leases, the redis-benchmark ceiling).")
    var redisURL = "redis://127.0.0.1:6380"
    @Option(help: "The nodes' Redis key prefix (PARLEY_REDIS_PREFIX).")
    var redisPrefix = "parley"
    @Option(help: "The nodes' PostgreSQL (to check that every acknowledged message is stored).")
    var databaseURL = "postgres://parley@127.0.0.1:5433/parley"

    func withAPI<R: Sendable>(_ body: (BenchAPI) async throws -> R) async throws -> R {
        let http = HTTPClient(eventLoopGroupProvider: .singleton,
                              configuration: .init(connectionPool: .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)))
        do {
            let result = try await body(BenchAPI(baseURL: url, http: http))
            try await http.shutdown()
            return result
        } catch {
            try? await http.shutdown()
            throw error
        }
    }
}

struct FanoutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fanout",
                                                    abstract: "One channel, many subscribers (spread over the nodes), publishers at a set rate.")
    @OptionGroup var target: TargetOptions
    @Option(help: "Subscriber sockets on the channel.") var subscribers = 1000
    @Option(help: "Messages per second, all publishers together (8/s per publisher socket).") var rate = 40
    @Option(help: "Seconds of publishing.") var seconds = 10
    @Option(help: "Also run the same load against a peer first: nchan.") var peer: String?
    @Option(name: .customLong("peer-url"), help: "A peer instance's HTTP address (nchan: /sub/{id} WebSocket, /pub/{id} POST); repeat for a peer cluster.")
    var peerURLs: [String] = []
    @Option(name: .customLong("peer-pid"), help: "A peer instance's (nginx master's) process id, for its and its workers' CPU time; repeat.")
    var peerPIDs: [Int32] = []

    func validate() throws {
        guard (1...20_000).contains(subscribers), (1...2_000).contains(rate), (1...300).contains(seconds) else {
            throw ValidationError("subscribers 1…20000, rate 1…2000, seconds 1…300")
        }
        if let peer, peer != "nchan" { throw ValidationError("the only peer is nchan") }
    }

    func run() async throws {
        Connections.raiseDescriptorLimit()
        let load = FanoutLoad(subscribers: subscribers, rate: rate, seconds: seconds)
        let cluster = target.cluster()
        let redis = RedisClient(try RedisConfiguration(url: target.redisURL, poolSize: 1))
        try await target.withAPI { api in
            var report = Report(scenario: "fanout")
            report.add("nodes", "nodes", cluster.count)
            report.add("subscribers", "subscribers", subscribers)
            report.add("publish rate", "rate_per_s", Double(rate), unit: "msg/s")
            report.add("publishing for", "seconds", Double(seconds), unit: "s")
            var peerResult: FanoutResult?
            if peer != nil {
                let urls = peerURLs.isEmpty ? ["http://127.0.0.1:4100"] : peerURLs
                print("fanout: nchan at \(urls.joined(separator: ", "))…")
                report.add("nchan instances", "nchan_instances", urls.count)
                peerResult = try await Fanout.nchan(load, api: api, urls: urls, serverPIDs: peerPIDs, redis: redis)
                try await Task.sleep(for: .seconds(2))
            }
            print("fanout: parley at \(cluster.nodes.map(\.url).joined(separator: ", "))…")
            let parley = try await Fanout.parley(load, api: api, cluster: cluster, redis: redis)
            parley.add(to: &report, prefix: "parley")
            if let peerResult {
                peerResult.add(to: &report, prefix: "nchan")
                report.add("deliveries/s parley ÷ nchan", "ratio_deliveries", parley.deliveriesPerSecond / peerResult.deliveriesPerSecond, digits: 2)
                let p99 = { (result: FanoutResult) in Double(result.deliver.valueAtPercentile(99)) }
                report.add("publish→deliver p99 parley ÷ nchan", "ratio_p99", p99(parley) / p99(peerResult), digits: 2)
                let perDelivery = { (seconds: Double?, result: FanoutResult) in seconds.map { $0 / Double(max(result.delivered, 1)) } }
                if let ours = perDelivery(parley.serverCPUSeconds, parley), let theirs = perDelivery(peerResult.serverCPUSeconds, peerResult) {
                    report.add("server CPU per delivery parley ÷ nchan", "ratio_cpu_per_delivery", ours / theirs, digits: 2)
                }
                if let ours = perDelivery(parley.redisCPUSeconds, parley), let theirs = perDelivery(peerResult.redisCPUSeconds, peerResult) {
                    report.add("Redis CPU per delivery parley ÷ nchan", "ratio_redis_cpu_per_delivery", ours / theirs, digits: 2)
                }
            }
            report.print()
        }
        await redis.shutdown()
    }
}

struct ChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "chat",
                                                    abstract: "Many channels and senders: acknowledged messages/s and their cost.")
    @OptionGroup var target: TargetOptions
    @Option(help: "Channels.") var channels = 50
    @Option(help: "Sender sockets per channel (each a member; each also receives its channel).") var senders = 4
    @Option(help: "Messages per second in all (at most 9.5 per socket).") var rate = 1500
    @Option(help: "Seconds of sending.") var seconds = 10

    func validate() throws {
        guard (1...1_000).contains(channels), (1...50).contains(senders), (1...20_000).contains(rate), (1...300).contains(seconds) else {
            throw ValidationError("channels 1…1000, senders 1…50, rate 1…20000, seconds 1…300")
        }
    }

    func run() async throws {
        Connections.raiseDescriptorLimit()
        let redis = RedisClient(try RedisConfiguration(url: target.redisURL, poolSize: 1))
        try await target.withAPI { api in
            var report = Report(scenario: "chat")
            try await Chat.run(ChatLoad(channels: channels, sendersPerChannel: senders, rate: rate, seconds: seconds),
                               api: api, cluster: target.cluster(), redis: redis, redisURL: target.redisURL, report: &report)
            report.print()
        }
        await redis.shutdown()
    }
}

struct NotifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "notify",
                                                    abstract: "Mentions through the job queue: post → notification on the recipient's socket.")
    @OptionGroup var target: TargetOptions
    @Option(help: "Recipients, each with a socket on its user topic.") var recipients = 50
    @Option(help: "Sender sockets in the channel.") var senders = 10
    @Option(help: "Mentions per second in all (at most 9.5 per sender).") var rate = 50
    @Option(help: "Seconds of posting.") var seconds = 10
    @Option(help: "The nodes' digest window, ms (PARLEY_NOTIFICATION_WINDOW_MS; cluster/bench starts nodes with 0), for the report.")
    var windowMs = 0

    func validate() throws {
        guard (1...2_000).contains(recipients), (1...100).contains(senders), (1...1_000).contains(rate), (1...300).contains(seconds),
              windowMs >= 0 else {
            throw ValidationError("recipients 1…2000, senders 1…100, rate 1…1000, seconds 1…300, window-ms ≥ 0")
        }
    }

    func run() async throws {
        Connections.raiseDescriptorLimit()
        try await target.withAPI { api in
            var report = Report(scenario: "notify")
            try await Notify.run(NotifyLoad(recipients: recipients, senders: senders, rate: rate, seconds: seconds, windowMilliseconds: windowMs),
                                 api: api, cluster: target.cluster(), report: &report)
            report.print()
        }
    }
}

struct ConnectionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "connections",
                                                    abstract: "Idle joined connections: node RSS per connection and join time.")
    @OptionGroup var target: TargetOptions
    @Option(help: "Connections.") var count = 10_000
    @Option(help: "Channels each connection joins.") var channels = 3
    @Option(help: "The node's process id (for its RSS); default from the cluster folder's node-1.pid.") var nodePid: Int32?

    func validate() throws {
        guard (1...19_000).contains(count), (0...20).contains(channels) else {
            throw ValidationError("count 1…19000 (this machine's descriptor limit is 20000 per process), channels 0…20")
        }
    }

    func run() async throws {
        let node = target.cluster().nodes[0]
        guard let pid = nodePid ?? node.pid else {
            throw ValidationError("no --node-pid and no \(target.clusterDir)/node-1.pid (start the node with cluster/up --nodes 1)")
        }
        try await target.withAPI { api in
            var report = Report(scenario: "connections")
            try await Connections.run(count: count, channelsPerConnection: channels, nodePID: pid, api: api,
                                      nodeURL: node.url, report: &report)
            report.print()
        }
    }
}

/// A process id kept in a pid file (relative paths from the repository root, where
/// `cluster/bench` runs).
func pid(in file: String) -> Int32? {
    (try? String(contentsOfFile: file, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
}
