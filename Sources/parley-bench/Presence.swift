import ArgumentParser
import Foundation
import Histogram
import ParleyCore
import Synchronization

/// Joins per second with presence on, stepped up until `presence_diff` lags: at each step
/// new sockets join the workspace topic on every node at the step's rate; an observer
/// socket on each node reads every `presence_diff` and measures, for each new meta, the
/// time from its `online_at` (stamped by the node that took the join) to the diff's arrival.
struct PresenceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "presence",
        abstract: "Presence joins/s per node, stepped up until presence_diff lags by more than a second.")
    @OptionGroup var target: TargetOptions
    @Option(help: "Joins per second per node at each step, comma-separated.") var rates = "25,50,100,200,400,800"
    @Option(help: "Seconds per step.") var stepSeconds = 3
    @Option(help: "The lag (ms, p99) beyond which a step fails.") var limit = 1000.0

    func run() async throws {
        Connections.raiseDescriptorLimit()
        let steps = rates.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !steps.isEmpty, steps.allSatisfy({ (1...2_000).contains($0) }), (1...30).contains(stepSeconds) else {
            throw ValidationError("rates: joins/s per node, 1…2000 each; step-seconds 1…30")
        }
        let cluster = target.cluster()
        guard steps.map({ $0 * stepSeconds * cluster.count }).allSatisfy({ $0 <= 15_000 }) else {
            throw ValidationError("a step would open more than 15,000 sockets; lower the rates or the step length")
        }
        try await target.withAPI { api in
            let users = try await api.signUp(count: 10, prefix: "presence")
            let (workspace, _) = try await api.workspace(owner: users[0], members: users, channels: 0)
            let topic = "workspace:\(workspace)"
            let lags = Mutex(Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 600_000, numberOfSignificantValueDigits: .three))
            let seen = Mutex<[Int: Set<String>]>([:])
            let observers = try await inBatches(cluster.count) { index in
                let client = PhoenixBenchClient(baseURL: cluster.placed ? cluster.nodes[index].wsURL : cluster.entryWSURL,
                                                token: users[0].token) { text in
                    guard text.contains("\"presence_diff\""), let frame = try? PhoenixCodec.v2.decode(text: text),
                          case .object(let joins)? = frame.json["joins"] else { return }
                    let now = UInt64(Date().timeIntervalSince1970 * 1000)
                    for (_, entry) in joins {
                        guard case .array(let metas)? = entry["metas"] else { continue }
                        for meta in metas where meta["phx_ref_prev"] == nil {
                            guard let ref = meta["phx_ref"]?.stringValue, let at = meta["online_at"]?.intValue else { continue }
                            let fresh = seen.withLock { $0[index, default: []].insert(ref).inserted }
                            if fresh { lags.withLock { _ = $0.record(UInt64(max(1, Int64(now) - at))) } }
                        }
                    }
                }
                let joined = await client.join(topic)
                guard joined.status == "ok" else { throw BenchAPI.Failure(description: "observer join: \(joined.response.jsonText)") }
                return client
            }

            // The observers' own joins reach each other first.
            try await Task.sleep(for: .seconds(1))
            var report = Report(scenario: "presence")
            report.add("nodes", "nodes", cluster.count)
            var sustained = 0
            var table: [JSONValue] = []
            for rate in steps {
                lags.withLock { $0.reset() }
                seen.withLock { $0 = [:] }
                let joinLatency = LatencyRecorder()
                let per = stepSeconds * rate
                let start = nowNanos()
                let joiners = await withTaskGroup(of: PhoenixBenchClient?.self) { group in
                    for node in 0..<cluster.count {
                        for n in 0..<per {
                            group.addTask {
                                try? await sleep(untilNanos: start + UInt64(n) * 1_000_000_000 / UInt64(rate))
                                let sentAt = nowNanos()
                                let client = PhoenixBenchClient(baseURL: cluster.wsURL(forNode: node), token: users[n % users.count].token) { _ in }
                                let joined = await client.join(topic)
                                guard joined.status == "ok" else {
                                    client.close()
                                    return nil
                                }
                                joinLatency.record(sentAt: sentAt)
                                return client
                            }
                        }
                    }
                    return await group.reduce(into: [PhoenixBenchClient]()) { if let client = $1 { $0.append(client) } }
                }
                let joinSeconds = Double(nowNanos() - start) / 1e9
                let refused = per * cluster.count - joiners.count
                // Every observer should see every join; wait up to a few seconds for the rest.
                let deadline = nowNanos() + 5_000_000_000
                while seen.withLock({ sets in (0..<cluster.count).map { sets[$0]?.count ?? 0 }.min() ?? 0 }) < joiners.count,
                      nowNanos() < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                }
                let lag = lags.withLock { $0 }
                let missing = seen.withLock { sets in (0..<cluster.count).map { max(0, joiners.count - (sets[$0]?.count ?? 0)) }.reduce(0, +) }
                let p99 = lag.totalCount > 0 ? Double(lag.valueAtPercentile(99)) : .infinity
                let joinP99 = joinLatency.count > 0 ? Double(joinLatency.histogram.valueAtPercentile(99)) / 1e6 : .infinity
                let passed = p99 <= limit && joinP99 <= limit && missing == 0 && refused == 0
                let achieved = Double(joiners.count) / joinSeconds / Double(cluster.count)
                let line = String(format: "%4d/s per node: %6.0f/s achieved, join p50 %.0f p99 %.0f ms; diff lag p50 %.0f p99 %.0f max %.0f ms; %d refused, %d unseen%@",
                                  rate, achieved, Double(joinLatency.histogram.valueAtPercentile(50)) / 1e6, joinP99,
                                  lag.totalCount > 0 ? Double(lag.valueAtPercentile(50)) : 0, p99.isFinite ? p99 : -1,
                                  Double(lag.max), refused, missing, passed ? "" : "  ← over")
                print("presence: \(line)")
                report.add("step \(rate)/s per node", "step_\(rate)", text: line.drop { $0 != ":" }.dropFirst(2).description)
                table.append(["rate": .int(Int64(rate)), "achieved": .double(achieved.rounded()), "join_p99_ms": .double(joinP99.isFinite ? joinP99 : -1),
                              "lag_p99_ms": .double(p99.isFinite ? p99 : -1), "unseen": .int(Int64(missing)), "passed": .bool(passed)])
                for client in joiners { client.close() }
                try await Task.sleep(for: .seconds(3))
                if !passed { break }
                sustained = rate
            }
            for client in observers { client.close() }
            report.add("sustained joins/s per node (diff lag p99 ≤ \(Int(limit)) ms)", "sustained_joins_per_node", sustained)
            report.attach("steps", .array(table))
            report.print()
        }
    }
}
