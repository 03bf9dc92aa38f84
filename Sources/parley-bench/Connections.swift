import Foundation
import Histogram
import ParleyCore

/// `count` idle connections, each joined to `channelsPerConnection` channels: the node's RSS
/// per connection and the time to connect and join.
enum Connections {
    static func run(count: Int, channelsPerConnection: Int, nodePID: Int32, api: BenchAPI, nodeURL: String,
                    report: inout Report) async throws {
        raiseDescriptorLimit()
        let users = try await api.signUp(count: 10, prefix: "idle")
        let (_, channels) = try await api.workspace(owner: users[0], members: users, channels: channelsPerConnection)
        try await Task.sleep(for: .seconds(1))
        let before = try residentKiB(of: nodePID)
        let joins = LatencyRecorder()
        let start = nowNanos()
        let clients = try await inBatches(count, concurrency: 200) { n in
            let openedAt = nowNanos()
            let client = PhoenixBenchClient(baseURL: nodeURL.replacingOccurrences(of: "http://", with: "ws://"), token: users[n % users.count].token) { _ in }
            await client.waitOpen()
            if let error = client.error { throw BenchAPI.Failure(description: "connection \(n): \(error)") }
            for channel in channels {
                let joined = await client.join("channel:\(channel)")
                guard joined.status == "ok" else {
                    throw BenchAPI.Failure(description: "connection \(n): join \(joined.status) \(joined.response.jsonText) \(client.error ?? "")")
                }
            }
            joins.record(sentAt: openedAt)
            return client
        }
        let openSeconds = Double(nowNanos() - start) / 1e9
        try await Task.sleep(for: .seconds(3))
        let during = try residentKiB(of: nodePID)
        let open = Int(try await api.metrics(at: nodeURL)["parley_ws_connections"] ?? 0)
        for client in clients { client.close() }
        try await Task.sleep(for: .seconds(3))
        let after = try residentKiB(of: nodePID)

        report.add("connections (joined to \(channelsPerConnection) channels each)", "connections", count)
        report.add("open on the node (parley_ws_connections)", "node_connections", open)
        report.add("opened and joined in", "open_seconds", openSeconds, unit: "s", digits: 2)
        report.add("connections/s", "connections_per_s", Double(count) / openSeconds, digits: 0)
        report.latency("connect + \(channelsPerConnection) joins", "join_latency", joins.histogram)
        report.add("node RSS before", "rss_before_kib", Double(before), unit: "KiB")
        report.add("node RSS with the connections", "rss_during_kib", Double(during), unit: "KiB")
        report.add("node RSS after they closed", "rss_after_kib", Double(after), unit: "KiB")
        report.add("node RSS per connection", "rss_per_connection_kib", Double(during - before) / Double(count), unit: "KiB", digits: 2)
    }

    /// VmRSS of a process, in KiB.
    static func residentKiB(of pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kib = Int(line.split(separator: " ").dropFirst().first ?? "") else {
            throw BenchAPI.Failure(description: "no VmRSS for pid \(pid)")
        }
        return kib
    }

    /// Each connection is a descriptor here too.
    static func raiseDescriptorLimit() {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}
