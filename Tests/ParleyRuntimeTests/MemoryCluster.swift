import ParleyCore
import ParleyRuntime
import Synchronization

/// Nodes in one process on memory adapters that share one "Redis" (leases, log, membership,
/// bus) and one "PostgreSQL" (store): the cluster's routing, feeds and handoffs, tested in
/// milliseconds.
final class MemoryCluster: Sendable {
    let leases = MemoryLeaseStore()
    let log: MemoryMessageLog
    let store = MemoryMessageStore()
    let registry = MemoryMembershipStore()
    let hub = MemoryBusHub()
    let presence = MemoryPresenceStore()
    let settings: ChannelRouter.Settings

    init(settings: ChannelRouter.Settings = .init(leaseTTL: .seconds(2), tick: .milliseconds(50))) {
        log = MemoryMessageLog(leases: leases)
        self.settings = settings
    }

    /// A node named `name`, registered, its services running until `stop`.
    func node(_ name: String, directory: any Directory = OpenDirectory()) async throws -> MemoryNode {
        let node = MemoryNode(name: name, cluster: self, directory: directory)
        try await node.membership.register()
        node.start()
        return node
    }
}

final class MemoryNode: Sendable {
    let membership: ClusterMembership
    let bus: ClusterBusService
    let router: ChannelRouter
    let buffer: MessageBuffer
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(name: String, cluster: MemoryCluster, directory: any Directory) {
        let identity = NodeIdentity.booting(name: name)
        membership = ClusterMembership(record: NodeRecord(identity: identity, address: "memory", startedAt: 0), store: cluster.registry,
                                       interval: .milliseconds(50), ttl: .seconds(2))
        bus = ClusterBusService(identity: identity, bus: MemoryClusterBus(hub: cluster.hub), broadcaster: Broadcaster(),
                                log: cluster.log, store: cluster.store)
        buffer = MessageBuffer(store: cluster.store, log: cluster.log, batchSize: 10, batchDelay: .milliseconds(50))
        router = ChannelRouter(membership: membership, bus: bus, leases: cluster.leases, log: cluster.log, store: cluster.store,
                               directory: directory, sink: buffer, settings: cluster.settings)
        let router = router
        membership.onChange { _, ring in await router.ringChanged(ring) }
        bus.handle(controls: { kind, body, sender in
            if kind == "take", let channel = body["channel"]?.stringValue {
                await router.take(channel, drainingSender: body["draining"]?.boolValue == true ? sender.name : nil)
            }
        })
    }

    var broadcaster: Broadcaster { bus.broadcaster }
    var name: String { membership.identity.name }

    func start() {
        let (membership, bus, router, buffer) = (membership, bus, router, buffer)
        task.withLock {
            $0 = Task {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { try? await buffer.run() }
                    group.addTask { try? await membership.run() }
                    group.addTask { try? await bus.run() }
                    group.addTask { try? await router.run() }
                }
            }
        }
    }

    /// Stops every service (as a crash would: nothing handed off, the leases run out).
    func stop() async {
        let running = task.withLock { $0 }
        running?.cancel()
        await running?.value
    }

    /// Waits until the bus probe came back.
    func ready() async -> Bool {
        await eventually { self.bus.probePassed }
    }
}

/// True once `condition` holds, polling for up to 10 s (generous: on a machine running every
/// suite at once a step can take seconds).
func eventually(_ condition: () async -> Bool) async -> Bool {
    for _ in 0..<500 {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return await condition()
}
