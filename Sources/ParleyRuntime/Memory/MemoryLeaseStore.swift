import ParleyCore
import Synchronization

/// `LeaseStore` in memory, for a single node and for tests; time comes from `clock`.
public final class MemoryLeaseStore: LeaseStore {
    private struct Lease { var holder: String; var expiresAt: Moment }
    private let clock: any ParleyClock
    private let state = Mutex<(leases: [EntityKey: Lease], fences: [EntityKey: Int64])>(([:], [:]))

    public init(clock: any ParleyClock = SystemClock()) { self.clock = clock }

    public func acquire(_ key: EntityKey, holder: String, ttl: Duration) async throws -> Int64? {
        let now = clock.now()
        return state.withLock { state in
            if let lease = state.leases[key], lease.expiresAt > now { return nil }
            state.leases[key] = Lease(holder: holder, expiresAt: now + ttl)
            state.fences[key, default: 0] += 1
            return state.fences[key]
        }
    }

    public func renew(_ key: EntityKey, holder: String, ttl: Duration) async throws -> Bool {
        let now = clock.now()
        return state.withLock { state in
            guard let lease = state.leases[key], lease.holder == holder, lease.expiresAt > now else { return false }
            state.leases[key]?.expiresAt = now + ttl
            return true
        }
    }

    public func release(_ key: EntityKey, holder: String) async throws {
        state.withLock { state in
            if state.leases[key]?.holder == holder { state.leases[key] = nil }
        }
    }

    public func holder(of key: EntityKey) async throws -> String? {
        let now = clock.now()
        return state.withLock { state in
            guard let lease = state.leases[key], lease.expiresAt > now else { return nil }
            return lease.holder
        }
    }
}
