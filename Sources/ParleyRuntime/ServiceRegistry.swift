import ParleyCore

public enum ServiceRegistryError: Error, Sendable {
    /// The registry holds its maximum of values.
    case full
}

/// "Lookup or start" of per-entity actors by key (the Registry + DynamicSupervisor role):
/// at most one value per key, even when many callers ask at once; values that stop are
/// restarted according to their policy; values idle for `idleTimeout` are stopped (their
/// `stop` persists first).
public actor ServiceRegistry<Key: Hashable & Sendable, Value: Sendable> {
    /// OTP's restart policies: `permanent` values are always restarted, `transient` ones
    /// only after an abnormal stop.
    public enum RestartPolicy: Sendable { case permanent, transient }

    private enum Slot {
        case starting(Task<Value, any Error>)
        case running(Value, lastUsed: Moment)
    }

    private let start: @Sendable (Key) async throws -> Value
    private let stop: @Sendable (Value) async -> Void
    private let policy: RestartPolicy
    private let idleTimeout: Duration
    /// The most values at once; a start beyond it fails with `ServiceRegistryError.full`.
    private let maximum: Int
    private let clock: any ParleyClock
    private var slots: [Key: Slot] = [:]
    public private(set) var restarts = 0

    public init(policy: RestartPolicy = .transient, idleTimeout: Duration = .seconds(300), maximum: Int = .max,
                clock: any ParleyClock = SystemClock(),
                start: @escaping @Sendable (Key) async throws -> Value, stop: @escaping @Sendable (Value) async -> Void = { _ in }) {
        self.policy = policy
        self.idleTimeout = idleTimeout
        self.maximum = maximum
        self.clock = clock
        self.start = start
        self.stop = stop
    }

    /// The value for `key`, started if there is none; concurrent callers share one start.
    /// A failed start is not remembered: the next call tries again.
    public func lookupOrStart(_ key: Key) async throws -> Value {
        switch slots[key] {
        case .running(let value, _):
            slots[key] = .running(value, lastUsed: clock.now())
            return value
        case .starting(let task):
            return try await task.value
        case nil:
            guard slots.count < maximum else { throw ServiceRegistryError.full }
            let start = start
            let task = Task { try await start(key) }
            slots[key] = .starting(task)
            do {
                let value = try await task.value
                slots[key] = .running(value, lastUsed: clock.now())
                return value
            } catch {
                slots[key] = nil
                throw error
            }
        }
    }

    /// The running value for `key`, if any, without starting one.
    public func lookup(_ key: Key) -> Value? {
        if case .running(let value, _) = slots[key] { return value }
        return nil
    }

    public var count: Int { slots.count }

    /// The values running.
    public var runningValues: [Value] {
        slots.values.compactMap { slot in
            if case .running(let value, _) = slot { return value }
            return nil
        }
    }

    /// Keys whose value is running.
    public var runningKeys: [Key] {
        slots.compactMap { key, slot in
            if case .running = slot { return key }
            return nil
        }
    }

    /// The value for `key` stopped by itself (`abnormal`: it failed). Returns the restarted
    /// value when the policy restarts it.
    @discardableResult
    public func terminated(_ key: Key, abnormal: Bool) async throws -> Value? {
        slots[key] = nil
        guard policy == .permanent || abnormal else { return nil }
        restarts += 1
        return try await lookupOrStart(key)
    }

    /// Stops values unused for `idleTimeout`; returns their keys.
    @discardableResult
    public func stopIdle() async -> [Key] {
        let now = clock.now()
        var idle: [(Key, Value)] = []
        for (key, slot) in slots {
            if case .running(let value, let lastUsed) = slot, now - lastUsed >= idleTimeout { idle.append((key, value)) }
        }
        for (key, value) in idle {
            slots[key] = nil
            await stop(value)
        }
        return idle.map(\.0)
    }

    /// Stops every value (graceful shutdown).
    public func stopAll() async {
        let running = slots.values.compactMap { slot -> Value? in
            if case .running(let value, _) = slot { return value }
            return nil
        }
        slots.removeAll()
        for value in running { await stop(value) }
    }
}
