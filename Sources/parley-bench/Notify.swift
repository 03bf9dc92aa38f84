import Foundation
import ParleyCore
import Synchronization

/// Mentions through the notification pipeline: `recipients` users, each with a socket joined to
/// their own `user:{id}` topic (spread over the nodes), and `senders` sockets in one channel
/// posting messages that each mention one recipient by name, `rate` per second in all. A
/// mention goes: the batch that stores the message queues its `message` job, a node plans it
/// and adds the item to the recipient's `digest`, which comes due after the nodes' digest
/// window and pushes `notification` on `user:{id}`. Measured: post → the item's arrival on the
/// recipient's socket (each item carries its post's send time), items and notifications per
/// second, what arrived, and the nodes' CPU per notification.
struct NotifyLoad: Sendable {
    var recipients: Int
    var senders: Int
    var rate: Int
    var seconds: Int
    /// The nodes' digest window (`PARLEY_NOTIFICATION_WINDOW_MS`), for the report.
    var windowMilliseconds: Int
}

enum Notify {
    static func run(_ load: NotifyLoad, api: BenchAPI, cluster: ClusterTarget, report: inout Report) async throws {
        guard Double(load.rate) / Double(load.senders) <= 9.5 else {
            throw BenchAPI.Failure(description: "\(load.rate)/s over \(load.senders) senders exceeds the node's 10/s per socket; add senders")
        }
        let run = UUID().uuidString.prefix(4).lowercased()
        let senders = try await api.signUp(count: load.senders, prefix: "notifys\(run)x")
        let recipients = try await api.signUp(count: load.recipients, prefix: "notifyr\(run)x")
        let (_, channels) = try await api.workspace(owner: senders[0], members: senders + recipients, channels: 1)
        let channel = channels[0]

        let items = LatencyRecorder()
        let notifications = Atomic<Int>(0)
        let listeners = try await inBatches(load.recipients) { n in
            let client = PhoenixBenchClient(baseURL: cluster.wsURL(forNode: n), token: recipients[n].token) { text in
                guard text.contains("\"notification\"") else { return }
                notifications.add(1, ordering: .relaxed)
                // One notification may carry several items (a digest): each its post's time.
                for piece in text.components(separatedBy: "\"excerpt\"").dropFirst() { items.record(carriedIn: piece) }
            }
            let joined = await client.join("user:\(recipients[n].id)")
            guard joined.status == "ok" else { throw BenchAPI.Failure(description: "join user topic: \(joined.response.jsonText)") }
            return client
        }
        let posters = try await inBatches(load.senders) { n in
            let client = PhoenixBenchClient(baseURL: cluster.wsURL(forNode: n + 1), token: senders[n].token) { _ in }
            let joined = await client.join("channel:\(channel)")
            guard joined.status == "ok" else { throw BenchAPI.Failure(description: "join: \(joined.response.jsonText)") }
            return client
        }

        let metricsBefore = await cluster.metrics(api)
        let cpu = cluster.cpuMeter()
        let sequence = Atomic<Int>(0)
        let start = nowNanos()
        let (acked, failed) = await publishOnSchedule(rate: load.rate, seconds: load.seconds, publishers: load.senders) { p in
            let id = sequence.add(1, ordering: .relaxed).newValue
            let reply = await posters[p].request("channel:\(channel)", "new_message",
                                                 ["body": .string("t=\(nowNanos()) @notifyr\(run)x\(id % recipients.count) look at this \(id)")],
                                                 joinRef: "channel:\(channel)")
            return reply.status == "ok"
        }
        let sendSeconds = Double(nowNanos() - start) / 1e9
        await waitFor(acked, limit: .seconds(Int64(30 + load.windowMilliseconds / 1000))) { items.count }
        let serverCPU = cpu.used
        let allSeconds = Double(items.lastAt > start ? items.lastAt - start : 1) / 1e9
        let metricsAfter = await cluster.metrics(api)
        for client in listeners + posters { client.close() }

        let grew = { (name: String) in ClusterTarget.growth(name, from: metricsBefore, to: metricsAfter) }
        report.add("nodes", "nodes", cluster.count)
        report.add("recipients (sockets on user:{id})", "recipients", load.recipients)
        report.add("senders", "senders", load.senders)
        report.add("digest window (the nodes' setting)", "window_ms", Double(load.windowMilliseconds), unit: "ms")
        report.add("offered mentions/s", "offered_per_s", Double(load.rate), unit: "msg/s")
        report.add("mentions acknowledged", "acked", acked)
        report.add("mentions refused", "refused", failed)
        report.add("mentions acknowledged/s", "acked_per_s", Double(acked) / sendSeconds, digits: 1)
        report.add("items that reached their recipient", "items", items.count)
        report.add("notifications pushed (a digest carries ≥ 1 item)", "notifications", notifications.load(ordering: .relaxed))
        report.add("items per second, first post to last item", "items_per_s", Double(items.count) / allSeconds, digits: 1)
        report.latency("post → notification on the recipient's socket", "notify_latency", items.histogram)
        report.add("in-app notifications stored (nodes' counter)", "in_app_sent", Int(grew("parley_notifications_sent_total")))
        if let serverCPU {
            report.add("nodes' CPU per 1000 items", "cpu_ms_per_1000_items", 1_000_000 * serverCPU / Double(max(items.count, 1)),
                       unit: "ms", digits: 1)
        }
    }
}
