import Logging
import ParleyCore
import ServiceLifecycle
import Synchronization

/// Routes every write for a channel to its owner (DESIGN §2 step 3, §3): a local call when
/// this node owns it, otherwise a request over the owner's inbox with a timeout. The owner is
/// whoever holds the channel's lease (ownership is sticky); a channel nobody holds goes to the
/// ring's preferred live node, which takes the lease, recovers the log and serves. An unknown
/// or dead owner, `notOwner`, or a handoff in progress: the router resolves again and retries
/// with backoff (the same `client_msg_id`, so nothing is doubled) until a deadline, and only
/// then answers `unavailable`.
///
/// It also runs this node's channel servers under the `OwnershipManager` (acquired on demand,
/// renewed together, handed off when the ring moves), and the recovery sweep.
public final class ChannelRouter: Service {
    public struct Settings: Sendable {
        public var leaseTTL: Duration
        public var idleTimeout: Duration
        public var maximumServers: Int
        /// How often typing indicators are expired and failed appends resynced.
        public var tick: Duration
        /// How often the logs are swept for channels to recover (sooner while some remain).
        public var recoverySweep: Duration
        /// A typing indicator not renewed for this long ends (`typing` false is broadcast).
        public var typingTimeout: Duration = .seconds(5)
        /// How long one forwarded request waits for the owner's answer.
        public var requestTimeout: Duration = .milliseconds(1500)
        /// How long a write keeps trying (re-resolving the owner) before `unavailable`.
        public var requestDeadline: Duration = .seconds(10)

        public init(leaseTTL: Duration = .seconds(2), idleTimeout: Duration = .seconds(300), maximumServers: Int = 10_000,
                    tick: Duration = .seconds(1), recoverySweep: Duration = .seconds(30)) {
            self.leaseTTL = leaseTTL
            self.idleTimeout = idleTimeout
            self.maximumServers = maximumServers
            self.tick = tick
            self.recoverySweep = recoverySweep
        }
    }

    public struct Stats: Sendable, Hashable {
        public var forwarded = 0
        public var forwardFailures = 0
        public var retries = 0
        public var served = 0
        public var takeovers = 0
        /// Total milliseconds spent in forwarded requests (with `forwarded`, the mean).
        public var forwardMilliseconds: Int64 = 0
    }

    public let identity: NodeIdentity
    public let ownership: OwnershipManager
    public let membership: ClusterMembership
    public let bus: ClusterBusService
    private let leases: any LeaseStore
    private let directory: any Directory
    private let settings: Settings
    private let sink: any MessageSink
    private let registry: ServiceRegistry<String, ChannelServer>
    private let log: any MessageLog
    private let store: any MessageStore
    private let logger: Logger
    private let recovery = Mutex<(pending: Int, recovered: Int)>((0, 0))
    private let counters = SharedStats()
    /// Nodes that did not answer a request lately, and until when they are passed over.
    private let suspects = Mutex<[String: ContinuousClock.Instant]>([:])
    /// The holders of channels this node forwarded writes to lately, read from the lease
    /// store and kept for a second (or until a forward to them fails or is refused), so that a
    /// busy remote channel costs no lease read per write. The owner checks every forwarded
    /// write itself: a stale entry costs one refused round trip, then a fresh read.
    private let remoteOwners = Mutex<[String: (holder: String, until: ContinuousClock.Instant)]>([:])
    private static let remoteOwnerTTL = Duration.seconds(1)
    /// The node's batched `client_msg_id` lookups in the store.
    public let lookup: ClientMessageLookup

    public init(membership: ClusterMembership, bus: ClusterBusService, leases: any LeaseStore, log: any MessageLog,
                store: any MessageStore, directory: any Directory, sink: any MessageSink, settings: Settings = Settings(),
                logger: Logger = Logger(label: "parley.channels")) {
        let identity = membership.identity
        self.identity = identity
        self.membership = membership
        self.bus = bus
        self.leases = leases
        self.directory = directory
        self.settings = settings
        self.sink = sink
        self.log = log
        self.store = store
        self.logger = logger
        let holder = identity.description
        let lookup = ClientMessageLookup(store: store)
        self.lookup = lookup
        let ownership = OwnershipManager(holder: holder, leases: leases, timing: .init(leaseTTL: settings.leaseTTL), logger: logger)
        self.ownership = ownership
        let counters = self.counters
        registry = ServiceRegistry(policy: .transient, idleTimeout: settings.idleTimeout, maximum: settings.maximumServers, start: { channel in
            let fence = try await ownership.acquire(.channel(channel))
            do {
                let server = try await ChannelServer.load(channelID: channel, holder: holder, fence: fence,
                                                          members: directory.channelMembers(channel), log: log, store: store,
                                                          lookup: lookup, sink: sink, publisher: bus, typingTimeout: settings.typingTimeout)
                if fence > 1 { counters.value.withLock { $0.takeovers += 1 } }
                return server
            } catch {
                await ownership.giveUp(.channel(channel))
                throw error
            }
        }, stop: { server in
            await sink.forget(channel: server.channelID)
            await ownership.giveUp(.channel(server.channelID))
        })
        ownership.setActors(.init(
            stop: { [registry] key in
                _ = try? await registry.terminated(key.id, abnormal: false)
                await sink.forget(channel: key.id)
            },
            quiesce: { [registry] key in
                guard let server = await registry.lookup(key.id) else { return true }
                await server.stopAccepting()
                return true
            },
            handedOff: { [registry, membership, bus] key in
                _ = try? await registry.terminated(key.id, abnormal: false)
                await sink.forget(channel: key.id)
                if let next = membership.preferredOwner(of: key.description), next != identity.name {
                    // A draining sender says so: the new owner's ring may not have dropped it yet.
                    bus.sendControl("take", ["channel": .string(key.id), "draining": .bool(membership.isDraining)], to: next)
                }
            }))
        bus.handle(requests: { [weak self] body, _ in await self?.serveForwarded(body) ?? ChannelError.unavailable("stopping").json })
    }

    public func stats() -> Stats { counters.value.withLock { $0 } }

    private final class SharedStats: Sendable {
        let value = Mutex(Stats())
    }

    // MARK: Routing

    /// Where a channel's writes go now.
    private enum Route { case local, remote(String) }

    /// Runs `request` as `user` on `channel`'s owner, wherever it is.
    public func call(_ request: ChannelRequest, channel: String, user: String) async throws -> ChannelReply {
        let deadline = ContinuousClock.now + settings.requestDeadline
        var backoff = Duration.milliseconds(50)
        while true {
            do {
                switch try await resolve(channel) {
                case .local:
                    return try await perform(request, channel: channel, user: user)
                case .remote(let node):
                    return try await forward(request, channel: channel, user: user, to: node)
                }
            } catch let error as ChannelError where error.isRetriable {
                guard ContinuousClock.now + backoff < deadline else {
                    throw ChannelError.unavailable("channel \(channel) has no reachable owner right now: \(error)")
                }
                counters.value.withLock { $0.retries += 1 }
                try await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .milliseconds(400))
            }
        }
    }

    /// The owner: this node if it runs the channel; else the lease's live holder; else (no
    /// holder) the ring's preferred live node, passing over nodes that just failed to answer.
    private func resolve(_ channel: String) async throws -> Route {
        if let server = await localServer(channel), await server.isAccepting { return .local }
        if let node = rememberedOwner(of: channel) { return .remote(node) }
        let key = EntityKey.channel(channel)
        let holder = try await backend { try await leases.holder(of: key) }
        if let holder {
            if holder == identity.description { return .local }
            // A holder this node does not know yet may have just joined: look again (rate-limited).
            if !membership.isLive(holder) { await membership.refresh(ifOlderThan: .milliseconds(250)) }
            guard let node = NodeIdentity(holder), membership.isLive(holder), !isSuspect(node.name) else {
                // Its owner died or is paused: wait for the lease to lapse.
                throw ChannelError.notOwner
            }
            remoteOwners.withLock { owners in
                if owners.count > 10_000 {
                    let now = ContinuousClock.now
                    owners = owners.filter { $0.value.until > now }
                }
                owners[channel] = (holder, .now + Self.remoteOwnerTTL)
            }
            return .remote(node.name)
        }
        guard let preferred = preferredNode(for: channel) else { return .local }
        return preferred == identity.name ? .local : .remote(preferred)
    }

    /// The remembered holder of `channel` while it is fresh, live and not suspect.
    private func rememberedOwner(of channel: String) -> String? {
        guard let (holder, until) = remoteOwners.withLock({ $0[channel] }), until > .now,
              membership.isLive(holder), let node = NodeIdentity(holder), !isSuspect(node.name) else { return nil }
        return node.name
    }

    private func forgetOwner(of channel: String) { _ = remoteOwners.withLock { $0.removeValue(forKey: channel) } }

    /// The ring's preferred live owner of `channel`, passing over nodes that just failed to
    /// answer (nil for an empty ring).
    private func preferredNode(for channel: String) -> String? {
        let candidates = membership.ring.preferredOwners(of: EntityKey.channel(channel).description, count: 3)
        return candidates.first(where: { !isSuspect($0) }) ?? candidates.first
    }

    private func isSuspect(_ node: String) -> Bool {
        suspects.withLock { suspects in
            guard let until = suspects[node] else { return false }
            if until <= .now { suspects[node] = nil; return false }
            return true
        }
    }

    private func perform(_ request: ChannelRequest, channel: String, user: String) async throws -> ChannelReply {
        let server = try await server(for: channel, member: user)
        do {
            return try await request.perform(on: server, as: user)
        } catch ChannelError.notAMember {
            // Added since the server loaded its members (the notice may have been lost).
            guard try await backend({ try await directory.isChannelMember(channel, user: user) }) else { throw ChannelError.notAMember }
            await server.addMember(user)
            return try await request.perform(on: server, as: user)
        }
    }

    private func forward(_ request: ChannelRequest, channel: String, user: String, to node: String) async throws -> ChannelReply {
        let started = ContinuousClock.now
        let body: JSONValue = ["channel": .string(channel), "user": .string(user), "request": request.json]
        let answer: JSONValue
        do {
            answer = try await bus.request(body, to: node, timeout: settings.requestTimeout)
        } catch {
            counters.value.withLock { $0.forwardFailures += 1 }
            suspects.withLock { $0[node] = .now + settings.leaseTTL }
            forgetOwner(of: channel)
            throw ChannelError.notOwner
        }
        counters.value.withLock {
            $0.forwarded += 1
            $0.forwardMilliseconds += (ContinuousClock.now - started).milliseconds
        }
        if let error = ChannelError(json: answer) {
            // Refused as not its owner's (or it could not serve now): read the holder again.
            if error.isRetriable { forgetOwner(of: channel) }
            throw error
        }
        guard let reply = ChannelReply(json: answer) else { throw ChannelError.unavailable("a malformed answer from \(node)") }
        return reply
    }

    /// A request forwarded here by another node: served if this node owns the channel, or if
    /// its lease is free and the ring (as this node sees it) gives it here; `notOwner` otherwise
    /// (the sender resolves again; a sender with an older view of the ring catches up).
    private func serveForwarded(_ body: JSONValue) async -> JSONValue {
        guard let channel = body["channel"]?.stringValue, let user = body["user"]?.stringValue,
              let request = body["request"].flatMap(ChannelRequest.init(json:)) else {
            return ChannelError.unavailable("a malformed request").json
        }
        do {
            if await localServer(channel) == nil {
                let holder = try await backend { try await leases.holder(of: .channel(channel)) }
                if let holder, holder != identity.description { throw ChannelError.notOwner }
                if holder == nil, preferredNode(for: channel) != identity.name { throw ChannelError.notOwner }
            }
            let reply = try await perform(request, channel: channel, user: user)
            counters.value.withLock { $0.served += 1 }
            return reply.json
        } catch let error as ChannelError {
            return error.json
        } catch {
            return ChannelError.unavailable("\(error)").json
        }
    }

    // MARK: Local servers

    /// The running server of `channel` for `user`, a member of it; started here (taking the
    /// lease) if needed. Membership is checked before anything starts.
    public func server(for channel: String, member user: String) async throws -> ChannelServer {
        if let running = await localServer(channel) {
            guard await running.isAccepting else { throw ChannelError.notOwner }
            guard await running.isMember(user) else { throw ChannelError.notAMember }
            return try await registry.lookupOrStart(channel)
        }
        guard try await backend({ try await directory.isChannelMember(channel, user: user) }) else { throw ChannelError.notAMember }
        let server = try await startServer(channel)
        guard ownership.canWrite(.channel(channel)) else {
            // Its lease was lost while it loaded.
            await dropStale(channel, server)
            throw ChannelError.notOwner
        }
        guard await server.isMember(user) else { throw ChannelError.notAMember }
        return server
    }

    /// The server of `channel` running here under a lease this node can still prove. One
    /// that runs without (its lease was lost while it started) is dropped, so it cannot keep
    /// answering `notOwner` in the owner's place.
    private func localServer(_ channel: String) async -> ChannelServer? {
        guard let server = await registry.lookup(channel) else { return nil }
        if ownership.canWrite(.channel(channel)) { return server }
        await dropStale(channel, server)
        return nil
    }

    private func dropStale(_ channel: String, _ server: ChannelServer) async {
        guard await registry.lookup(channel) === server else { return }
        logger.warning("a channel server ran without a provable lease; dropped", metadata: ["channel": "\(channel)"])
        _ = try? await registry.terminated(channel, abnormal: false)
        await sink.forget(channel: channel)
    }

    private func startServer(_ channel: String) async throws -> ChannelServer {
        // A draining node starts nothing while another node can take it.
        if membership.isDraining && !membership.ring.isEmpty { throw ChannelError.notOwner }
        return try await backend {
            do {
                return try await registry.lookupOrStart(channel)
            } catch ServiceRegistryError.full {
                throw ChannelError.unavailable("this node runs its maximum of \(self.settings.maximumServers) channels")
            }
        }
    }

    /// The server of `channel` if one runs here.
    public func runningServer(for channel: String) async -> ChannelServer? {
        await registry.lookup(channel)
    }

    /// Channel servers running here.
    public var runningCount: Int { get async { await registry.count } }

    /// A channel's membership changed (on any node): the running server follows.
    public func membershipChanged(channel: String, user: String, added: Bool) async {
        guard let server = await registry.lookup(channel) else { return }
        if added { await server.addMember(user) } else { await server.removeMember(user) }
    }

    /// The previous owner handed `channel` to this node: start it now rather than on the next
    /// write (so the new owner has recovered the log before it is asked).
    /// `drainingSender`: the node that handed it over drains, which this node's ring may not
    /// show yet — then the ring without it decides.
    public func take(_ channel: String, drainingSender: String? = nil) async {
        let key = EntityKey.channel(channel).description
        var ring = membership.ring
        if let sender = drainingSender, ring.members.contains(sender) {
            ring = HashRing(members: ring.members.filter { $0 != sender })
        }
        guard ring.owner(of: key) == identity.name else { return }
        _ = try? await startServer(channel)
    }

    /// This node drains (its membership is marked so): every channel it owns is handed off to
    /// the ring's preferred node (quiesce, release, `take` notice), and a server left over (its
    /// handoff failed) stops and releases its lease — the next owner recovers its log. Alone
    /// in the cluster there is nobody to hand off to: the channels keep serving until the
    /// node stops.
    public func drain() async {
        let ring = membership.ring
        guard !ring.isEmpty else { return }
        await ringChanged(ring)
        await registry.stopAll()
        await ownership.releaseAll()
    }

    /// The ring moved: channels this node owns whose preferred owner is now another live node
    /// are handed off.
    public func ringChanged(_ ring: HashRing) async {
        let me = identity.name
        await ownership.ringChanged { key in ring.owner(of: key.description) == me }
    }

    // MARK: Recovery

    /// Channels found with log entries to recover (held by a lease not yet expired, or failed),
    /// and channels recovered so far.
    public var recoveryStats: (pending: Int, recovered: Int) { recovery.withLock { $0 } }

    /// Recovers the channels whose log holds entries but whose server runs nowhere (a crashed
    /// node's channels nobody has touched since), among those the ring gives this node: takes
    /// each free lease, writes the log's tail into the store under its fence, trims, and
    /// releases. A lease still held by a dead incarnation is tried again on the next sweep; a
    /// channel a live node runs is its owner's business. Returns how many remain.
    @discardableResult
    public func recoverOrphans() async -> Int {
        guard let channels = try? await log.channelsWithEntries() else { return recoveryStats.pending }
        let holder = identity.description
        var remaining = 0, recovered = 0
        for channel in channels where await registry.lookup(channel) == nil {
            let key = EntityKey.channel(channel)
            guard let current = try? await leases.holder(of: key) as String?? else { remaining += 1; continue }
            if let current, current != holder, membership.isLive(current) { continue }
            guard membership.preferredOwner(of: key.description) == identity.name else { continue }
            guard current == nil, let fence = try? await leases.acquire(key, holder: holder, ttl: settings.leaseTTL) else {
                remaining += 1
                continue
            }
            do {
                if try await store.claim(channel: channel, fence: fence) {
                    _ = try await ChannelServer.recover(channel, fence: fence, log: log, store: store)
                    recovered += 1
                } else {
                    logger.error("cannot recover a channel: the store names a newer owner", metadata: ["channel": "\(channel)"])
                }
            } catch {
                remaining += 1
                logger.warning("recovering a channel's log failed; retrying", metadata: ["channel": "\(channel)", "error": "\(error)"])
            }
            try? await leases.release(key, holder: holder)
        }
        if recovered > 0 { logger.info("recovered channels' logs into the store", metadata: ["channels": "\(recovered)"]) }
        recovery.withLock { $0 = (remaining, $0.recovered + recovered) }
        return remaining
    }

    // MARK: Running

    /// Two loops until graceful shutdown, then every server stops and releases its lease:
    /// leases (every tenth of the TTL the ownership machines tick; due renewals leave in one
    /// pipeline — only Redis, never waiting on a channel's actor), and maintenance (every tick:
    /// typing expiry and resync of failed appends; the recovery sweep at start, then every
    /// `recoverySweep`, or every half TTL while some remain; idle servers stopped).
    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.leaseLoop() }
            group.addTask { await self.maintenanceLoop() }
        }
        await registry.stopAll()
        await ownership.releaseAll()
    }

    private func leaseLoop() async {
        let interval = settings.leaseTTL * 0.1
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            guard !Task.isShuttingDownGracefully && !Task.isCancelled else { return }
            await ownership.tick()
        }
    }

    private func maintenanceLoop() async {
        var untilSweep = Duration.zero
        var untilIdleCheck = settings.leaseTTL
        var untilFeedCheck = Duration.seconds(5)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if untilSweep <= .zero {
                untilSweep = await recoverOrphans() > 0 ? settings.leaseTTL * 0.5 : settings.recoverySweep
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.settings.tick) }
            untilSweep -= settings.tick
            untilIdleCheck -= settings.tick
            untilFeedCheck -= settings.tick
            if untilIdleCheck <= .zero {
                untilIdleCheck = settings.leaseTTL
                await registry.stopIdle()
            }
            if untilFeedCheck <= .zero {
                // A lost publish of a channel's last message shows up here at the latest.
                untilFeedCheck = .seconds(5)
                await bus.feeds.catchUpAll(thorough: false)
            }
            let servers = await registry.runningValues
            await withTaskGroup(of: Void.self) { group in
                for server in servers {
                    group.addTask {
                        await server.expireTyping()
                        await server.resyncIfNeeded()
                    }
                }
            }
        }
    }
}

extension ChannelError {
    /// Worth resolving the owner again: the channel moved, is moving, or its owner is away.
    var isRetriable: Bool {
        if case .notOwner = self { return true }
        return false
    }
}
