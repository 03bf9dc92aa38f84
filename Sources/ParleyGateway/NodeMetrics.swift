import Hummingbird
import ParleyCore
import ParleyRuntime
import Prometheus
import Synchronization

/// The node's Prometheus metrics (served at `/metrics`). Socket counters are counted where
/// they happen; the services' own `stats()` are read at each scrape.
public final class NodeMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    let connections: Gauge
    let framesIn: Counter
    let joins: Counter
    let errorReplies: Counter
    let messagesAccepted: Counter
    let socketTimeouts: Counter
    private let storedBatches: Counter
    private let postgresStatements: Counter
    private let published: Counter
    private let deliveries: Counter
    private let dropped: Counter
    private let storedRows: Counter
    private let storeErrors: Counter
    private let pending: Gauge
    private let lag: Gauge
    private let fencedOut: Counter
    private let refusedFull: Counter
    private let channelServers: Gauge
    private let recoveryPending: Gauge
    private let recovered: Counter
    private let dedupeUnchecked: Counter
    private let authLimited: Counter
    private let joinsLimited: Counter
    private let liveNodes: Gauge
    private let ownedChannels: Gauge
    private let handoffs: Counter
    private let handoffMilliseconds: Counter
    private let longestHandoff: Gauge
    private let drainingGauge: Gauge
    private let takeovers: Counter
    private let leasesLost: Counter
    private let forwarded: Counter
    private let forwardedMilliseconds: Counter
    private let forwardFailures: Counter
    private let forwardedServed: Counter
    private let routeRetries: Counter
    private let busPublished: Counter
    private let busReceived: Counter
    private let busIgnored: Counter
    private let busReconnects: Counter
    private let holesRepaired: Counter
    private let repairs: Counter
    private let presenceReaped: Counter
    private let jobs: [String: Counter]
    private let jobsRunning: [String: Gauge]
    private let jobsMostRunning: [String: Gauge]
    private let uploadOutcomes: [String: Counter]
    private let notificationsSent: [String: Counter]
    private let notificationsAllRead: Counter
    private let deliveryFailures: Counter
    private let lastSeen = Mutex<[String: Int]>([:])

    public init(identity: NodeIdentity) {
        let registry = registry
        connections = registry.makeGauge(descriptor: Self.name("ws_connections", unit: "", help: "Open WebSocket connections"))
        framesIn = registry.makeCounter(descriptor: Self.name("ws_frames_in_total", unit: "", help: "Frames received from clients"))
        joins = registry.makeCounter(descriptor: Self.name("ws_joins_total", unit: "", help: "Successful channel joins"))
        errorReplies = registry.makeCounter(descriptor: Self.name("ws_error_replies_total", unit: "", help: "Requests answered with an error reply"))
        messagesAccepted = registry.makeCounter(descriptor: Self.name("messages_accepted_total", unit: "", help: "Messages acknowledged (in the log)"))
        socketTimeouts = registry.makeCounter(descriptor: Self.name("ws_timeouts_total", unit: "", help: "Sockets closed for silence"))
        storedBatches = registry.makeCounter(descriptor: Self.name("buffer_batches_total", unit: "", help: "Batches written to PostgreSQL (one INSERT each)"))
        postgresStatements = registry.makeCounter(descriptor: Self.name("postgres_statements_total", unit: "", help: "Statements sent to PostgreSQL"))
        published = registry.makeCounter(descriptor: Self.name("broadcast_published_total", unit: "", help: "Events published"))
        deliveries = registry.makeCounter(descriptor: Self.name("broadcast_deliveries_total", unit: "", help: "Frames queued to local sockets (fan-out)"))
        dropped = registry.makeCounter(descriptor: Self.name("broadcast_dropped_total", unit: "", help: "Frames refused by full socket queues"))
        storedRows = registry.makeCounter(descriptor: Self.name("buffer_rows_total", unit: "", help: "Messages written to PostgreSQL"))
        storeErrors = registry.makeCounter(descriptor: Self.name("buffer_errors_total", unit: "", help: "Failed PostgreSQL batch writes"))
        pending = registry.makeGauge(descriptor: Self.name("buffer_pending", unit: "", help: "Messages waiting for PostgreSQL"))
        lag = registry.makeGauge(descriptor: Self.name("buffer_lag", unit: "milliseconds", help: "Age of the oldest message not yet in PostgreSQL"))
        fencedOut = registry.makeCounter(descriptor: Self.name("buffer_fenced_out_total", unit: "", help: "Rows refused by PostgreSQL because another node owns their channel now"))
        refusedFull = registry.makeCounter(descriptor: Self.name("buffer_refused_full_total", unit: "", help: "Messages refused (unavailable) because the backlog for PostgreSQL was full"))
        channelServers = registry.makeGauge(descriptor: Self.name("channel_servers", unit: "", help: "Channel servers running on this node"))
        recoveryPending = registry.makeGauge(descriptor: Self.name("recovery_pending_channels", unit: "", help: "Channels whose log holds entries still to recover into PostgreSQL"))
        recovered = registry.makeCounter(descriptor: Self.name("recovered_channels_total", unit: "", help: "Channels whose log tail this node recovered into PostgreSQL"))
        dedupeUnchecked = registry.makeCounter(descriptor: Self.name("dedupe_store_unanswered_total", unit: "", help: "Posts whose client_msg_id PostgreSQL could not be asked about (the log alone de-duplicated them)"))
        authLimited = registry.makeCounter(descriptor: Self.name("auth_rate_limited_total", unit: "", help: "Sign-ups and sign-ins refused with rate_limited"))
        joinsLimited = registry.makeCounter(descriptor: Self.name("joins_rate_limited_total", unit: "", help: "Channel joins refused with rate_limited"))
        liveNodes = registry.makeGauge(descriptor: Self.name("cluster_live_nodes", unit: "", help: "Live nodes in the ring, as this node sees them"))
        ownedChannels = registry.makeGauge(descriptor: Self.name("owned_channels", unit: "", help: "Channels whose lease this node holds"))
        handoffs = registry.makeCounter(descriptor: Self.name("handoffs_total", unit: "", help: "Channels handed off to another node (planned moves)"))
        handoffMilliseconds = registry.makeCounter(descriptor: Self.name("handoffs_milliseconds_total", unit: "", help: "Time handed-off channels did not accept writes on this node (stop accepting → lease released); with handoffs_total, the mean"))
        longestHandoff = registry.makeGauge(descriptor: Self.name("handoff_longest", unit: "milliseconds", help: "The longest such handoff so far"))
        takeovers = registry.makeCounter(descriptor: Self.name("takeovers_total", unit: "", help: "Channels this node started under a lease an earlier owner (another node, or an earlier start here) had held: takeovers and handoffs received"))
        leasesLost = registry.makeCounter(descriptor: Self.name("leases_lost_total", unit: "", help: "Leases this node could not prove and stopped under"))
        forwarded = registry.makeCounter(descriptor: Self.name("forwarded_requests_total", unit: "", help: "Writes forwarded to another node's channel owner"))
        forwardedMilliseconds = registry.makeCounter(descriptor: Self.name("forwarded_requests_milliseconds_total", unit: "", help: "Time spent in forwarded writes (with the count above, the mean latency)"))
        forwardFailures = registry.makeCounter(descriptor: Self.name("forwarded_requests_failed_total", unit: "", help: "Forwarded writes whose owner did not answer in time"))
        forwardedServed = registry.makeCounter(descriptor: Self.name("forwarded_requests_served_total", unit: "", help: "Writes other nodes forwarded to this node and it served"))
        routeRetries = registry.makeCounter(descriptor: Self.name("route_retries_total", unit: "", help: "Writes retried after re-resolving their channel's owner"))
        busPublished = registry.makeCounter(descriptor: Self.name("bus_published_total", unit: "", help: "Envelopes published on the cluster bus"))
        busReceived = registry.makeCounter(descriptor: Self.name("bus_received_total", unit: "", help: "Envelopes received from the cluster bus"))
        busIgnored = registry.makeCounter(descriptor: Self.name("bus_ignored_total", unit: "", help: "Envelopes received from the cluster bus that this node itself had published (Redis echoes them to every subscriber), dropped"))
        busReconnects = registry.makeCounter(descriptor: Self.name("bus_reconnects_total", unit: "", help: "Times the bus subscriber reconnected (feeds then catch up from the log)"))
        holesRepaired = registry.makeCounter(descriptor: Self.name("feed_messages_repaired_total", unit: "", help: "Messages delivered by reading the log/store because the bus lost or reordered them"))
        repairs = registry.makeCounter(descriptor: Self.name("feed_repairs_total", unit: "", help: "Hole repairs of channel feeds"))
        presenceReaped = registry.makeCounter(descriptor: Self.name("presence_reaped_total", unit: "", help: "Presence metas of dead nodes this node removed"))
        let queues = [NotificationServer.queue, UploadProcessor.queue]
        jobs = Dictionary(uniqueKeysWithValues: queues.flatMap { queue in
            ["claimed", "completed", "retried", "dead", "snoozed", "lost"].map { outcome in
                ("\(queue):\(outcome)", registry.makeCounter(descriptor: Self.name("jobs_total", unit: "",
                                                                                  help: "Jobs run here, by queue and outcome (claimed; completed, retried, dead, snoozed, lost to another node or a cancel)"),
                                                            labels: [("queue", queue), ("outcome", outcome)]))
            }
        })
        jobsRunning = Dictionary(uniqueKeysWithValues: queues.map { queue in
            (queue, registry.makeGauge(descriptor: Self.name("jobs_running", unit: "", help: "Jobs running here now"), labels: [("queue", queue)]))
        })
        jobsMostRunning = Dictionary(uniqueKeysWithValues: queues.map { queue in
            (queue, registry.makeGauge(descriptor: Self.name("jobs_most_running", unit: "", help: "The most jobs that ran here at once since the start"),
                                       labels: [("queue", queue)]))
        })
        uploadOutcomes = Dictionary(uniqueKeysWithValues: ["accepted", "scanned", "infected", "thumbnails", "failed", "cancelled"].map { outcome in
            (outcome, registry.makeCounter(descriptor: Self.name("uploads_total", unit: "", help: "Uploads accepted here and what their jobs here did"),
                                           labels: [("outcome", outcome)]))
        })
        notificationsSent = Dictionary(uniqueKeysWithValues: ["in_app", "webhook", "email", "push"].map { kind in
            (kind, registry.makeCounter(descriptor: Self.name("notifications_sent_total", unit: "", help: "Notifications delivered, by kind"),
                                        labels: [("kind", kind)]))
        })
        notificationsAllRead = registry.makeCounter(descriptor: Self.name("notifications_suppressed_read_total", unit: "",
                                                                          help: "Digests not sent because their messages were read first"))
        deliveryFailures = registry.makeCounter(descriptor: Self.name("notification_delivery_failures_total", unit: "",
                                                                      help: "Webhook and email attempts that failed (retried or dead)"))
        drainingGauge = registry.makeGauge(descriptor: Self.name("draining", unit: "", help: "1 while this node drains (SIGTERM): it hands off its channels and closes its sockets"))
        registry.makeGauge(descriptor: Self.name("node_info", unit: "", help: "This node"), labels: [("node", identity.description), ("version", ParleyVersion.current)]).set(to: 1.0)
    }

    private static func name(_ metric: String, unit: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "parley", metricName: metric, unitName: unit, helpText: help)
    }

    /// Reads the services' stats and renders the registry in the Prometheus text format.
    func scrape(node: Node) async -> [UInt8] {
        let (broadcaster, buffer, channels, requests) = (node.broadcaster, node.buffer, node.channels, node.requests)
        let ownership = channels.ownership.stats()
        let routing = channels.stats()
        let bus = node.bus.stats()
        let feeds = node.bus.feeds.repairStats
        liveNodes.set(to: Double(node.membership.ring.members.count))
        drainingGauge.set(to: node.draining.isDraining ? 1 : 0)
        ownedChannels.set(to: Double(channels.ownership.owned.count))
        advance(handoffs, "handoffs", to: ownership.handoffs)
        advance(handoffMilliseconds, "handoff_ms", to: Int(ownership.handoffMilliseconds))
        longestHandoff.set(to: Double(ownership.longestHandoffMilliseconds))
        advance(takeovers, "takeovers", to: routing.takeovers)
        advance(leasesLost, "leases_lost", to: ownership.lost)
        advance(forwarded, "forwarded", to: routing.forwarded)
        advance(forwardedMilliseconds, "forwarded_ms", to: Int(routing.forwardMilliseconds))
        advance(forwardFailures, "forward_failures", to: routing.forwardFailures)
        advance(forwardedServed, "forwarded_served", to: routing.served)
        advance(routeRetries, "route_retries", to: routing.retries)
        advance(busPublished, "bus_published", to: bus.published)
        advance(busReceived, "bus_received", to: bus.received)
        advance(busIgnored, "bus_ignored", to: bus.ignored)
        advance(busReconnects, "bus_reconnects", to: bus.reconnects)
        advance(holesRepaired, "holes_repaired", to: feeds.repaired)
        advance(repairs, "repairs", to: feeds.repairs)
        advance(presenceReaped, "presence_reaped", to: await node.presence.reapedCount)
        advance(authLimited, "auth_limited", to: requests.refusals(.auth))
        advance(dedupeUnchecked, "dedupe_unchecked", to: channels.lookup.unanswered)
        advance(joinsLimited, "joins_limited", to: requests.refusals(.join))
        let broadcast = broadcaster.stats()
        let stored = await buffer.stats()
        let recovery = channels.recoveryStats
        advance(fencedOut, "fenced_out", to: stored.fencedOut)
        advance(refusedFull, "refused_full", to: stored.refusedFull)
        advance(recovered, "recovered", to: recovery.recovered)
        recoveryPending.set(to: Double(recovery.pending))
        channelServers.set(to: Double(await channels.runningCount))
        advance(published, "published", to: broadcast.published)
        advance(deliveries, "deliveries", to: broadcast.deliveries)
        advance(dropped, "dropped", to: broadcast.dropped)
        advance(storedRows, "rows", to: stored.rows)
        advance(storedBatches, "batches", to: stored.batches)
        advance(postgresStatements, "statements", to: node.backends.statementsSent())
        advance(storeErrors, "errors", to: stored.errors)
        pending.set(to: Double(stored.pending))
        lag.set(to: Double(stored.lagMilliseconds))
        for (queue, worker) in [(NotificationServer.queue, node.notifications.worker.stats()), (UploadProcessor.queue, node.uploads.worker.stats())] {
            for (outcome, total) in [("claimed", worker.claimed), ("completed", worker.completed), ("retried", worker.retried),
                                     ("dead", worker.dead), ("snoozed", worker.snoozed), ("lost", worker.lost)] {
                if let counter = jobs["\(queue):\(outcome)"] { advance(counter, "jobs_\(queue)_\(outcome)", to: total) }
            }
            jobsRunning[queue]?.set(to: Double(worker.running))
            jobsMostRunning[queue]?.set(to: Double(worker.mostRunning))
        }
        let uploaded = node.uploads.stats()
        for (outcome, total) in [("accepted", uploaded.accepted), ("scanned", uploaded.scanned), ("infected", uploaded.infected),
                                 ("thumbnails", uploaded.thumbnails), ("failed", uploaded.failed), ("cancelled", uploaded.cancelled)] {
            if let counter = uploadOutcomes[outcome] { advance(counter, "uploads_" + outcome, to: total) }
        }
        let sent = node.notifications.stats()
        for (kind, total) in [("in_app", sent.inApp), ("webhook", sent.webhooks), ("email", sent.emails), ("push", sent.pushes)] {
            if let counter = notificationsSent[kind] { advance(counter, "sent_" + kind, to: total) }
        }
        advance(notificationsAllRead, "all_read", to: sent.digestsAllRead)
        advance(deliveryFailures, "delivery_failures", to: sent.deliveryFailures)
        return registry.emitToBuffer()
    }

    /// Counters only go up: add what a service's running total gained since the last scrape.
    private func advance(_ counter: Counter, _ key: String, to total: Int) {
        let delta = lastSeen.withLock { seen in
            defer { seen[key] = total }
            return max(0, total - (seen[key] ?? 0))
        }
        if delta > 0 { counter.increment(by: Int64(delta)) }
    }
}

/// `GET /metrics`.
struct MetricsRoutes: Sendable {
    let node: Node

    func register(on router: Router<some RequestContext>) {
        router.get("metrics") { _, _ in
            let body = await node.metrics.scrape(node: node)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
        }
    }
}
