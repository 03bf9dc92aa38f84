import Foundation
import ParleyCore
import ParleyRedis

/// The nodes a scenario runs against: each node's own address (sockets placed on chosen
/// nodes, metrics read from each), its process (CPU time, RSS, the failover's `kill -9`),
/// and where clients go when they do not choose (HAProxy's address, or the one node).
struct ClusterTarget: Sendable {
    struct Node: Sendable {
        let name: String
        let url: String
        let pid: Int32?
        var wsURL: String { url.replacingOccurrences(of: "http://", with: "ws://") }
    }

    let nodes: [Node]
    /// The address clients use when they do not pick a node.
    let entryURL: String
    /// Whether sockets go to chosen nodes (`nodes`) or all through `entryURL` (`haproxy`).
    let placed: Bool
    let redisPrefix: String

    var entryWSURL: String { entryURL.replacingOccurrences(of: "http://", with: "ws://") }
    var count: Int { nodes.count }

    /// Where socket `n` of a scenario connects when sockets are spread over the nodes.
    func wsURL(forNode index: Int) -> String { placed ? nodes[index % nodes.count].wsURL : entryWSURL }

    func node(named name: String) -> Node? { nodes.first { $0.name == name } }

    /// Every node's metrics, by node name (a node that does not answer is left out).
    func metrics(_ api: BenchAPI) async -> [String: [String: Double]] {
        await withTaskGroup(of: (String, [String: Double]?).self) { group in
            for node in nodes { group.addTask { (node.name, try? await api.metrics(at: node.url)) } }
            return await group.reduce(into: [:]) { all, entry in if let values = entry.1 { all[entry.0] = values } }
        }
    }

    /// The sum over nodes of a counter's growth between two `metrics` readings.
    static func growth(_ name: String, from before: [String: [String: Double]], to after: [String: [String: Double]]) -> Double {
        after.reduce(0) { total, entry in total + max(0, (entry.value[name] ?? 0) - (before[entry.key]?[name] ?? 0)) }
    }

    /// Which node holds each channel's lease now (nil: none does).
    func owners(of channels: [String], redis: RedisClient) async throws -> [String: String] {
        let replies = try await redis.pipeline(channels.map { RedisCommand("GET", "\(redisPrefix):lease:channel:{\($0)}") })
        var owners: [String: String] = [:]
        for (channel, reply) in zip(channels, replies) {
            if let holder = reply.string { owners[channel] = String(holder.prefix { $0 != "/" }) }
        }
        return owners
    }

    /// CPU time of every node process together.
    func cpuMeter() -> ProcessCPU.Meter { ProcessCPU.Meter(pids: nodes.compactMap(\.pid)) }
}

extension TargetOptions {
    /// The target these options name: `--node` addresses (node-1, node-2, … in order, their
    /// PIDs from `--cluster-dir`), or the one node at `--url`.
    func cluster() -> ClusterTarget {
        let addresses = nodeURLs.isEmpty ? [url] : nodeURLs
        let nodes = addresses.enumerated().map { index, address in
            let name = "node-\(index + 1)"
            return ClusterTarget.Node(name: name, url: address, pid: pid(in: "\(clusterDir)/\(name).pid"))
        }
        return ClusterTarget(nodes: nodes, entryURL: url, placed: via == .nodes && !nodeURLs.isEmpty, redisPrefix: redisPrefix)
    }
}

/// Redis's own process, for its CPU time (the cluster's bus runs through it).
func redisPID(_ redis: RedisClient) async -> Int32? {
    guard let info = try? await redis.execute("INFO", "server").string,
          let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("process_id:") }) else { return nil }
    return Int32(line.dropFirst("process_id:".count).trimmingCharacters(in: .whitespaces))
}
