import ParleyCore
import ParleyRuntime
import Synchronization
import Testing

final class Counter: Sendable {
    private let value = Mutex(0)
    @discardableResult func next() -> Int { value.withLock { $0 += 1; return $0 } }
    var current: Int { value.withLock { $0 } }
}

@Suite("Service registry")
struct ServiceRegistryTests {
    struct StartFailed: Error {}

    @Test func concurrentLookupsStartOneValuePerKey() async throws {
        let starts = Counter()
        let registry = ServiceRegistry<String, Int>(start: { _ in
            try await Task.sleep(for: .milliseconds(20))
            return starts.next()
        })
        let values = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<50 { group.addTask { try await registry.lookupOrStart("channel:1") } }
            return try await group.reduce(into: Set<Int>()) { $0.insert($1) }
        }
        #expect(values == [1])
        #expect(starts.current == 1)
        #expect(try await registry.lookupOrStart("channel:2") == 2)
        #expect(await registry.count == 2)
    }

    @Test func failedStartIsRetriedByTheNextLookup() async throws {
        let attempts = Counter()
        let registry = ServiceRegistry<String, Int>(start: { _ in
            if attempts.next() == 1 { throw StartFailed() }
            return 42
        })
        await #expect(throws: StartFailed.self) { try await registry.lookupOrStart("k") }
        #expect(try await registry.lookupOrStart("k") == 42)
    }

    @Test func restartPoliciesDecideWhatComesBack() async throws {
        let starts = Counter()
        let transient = ServiceRegistry<String, Int>(policy: .transient, start: { _ in starts.next() })
        _ = try await transient.lookupOrStart("k")
        #expect(try await transient.terminated("k", abnormal: false) == nil)
        #expect(try await transient.terminated("k", abnormal: true) == 2, "a crash restarts a transient value")
        let permanent = ServiceRegistry<String, Int>(policy: .permanent, start: { _ in starts.next() })
        _ = try await permanent.lookupOrStart("k")
        #expect(try await permanent.terminated("k", abnormal: false) == 4, "a permanent value always comes back")
        #expect(await permanent.restarts == 1)
    }

    @Test func idleValuesStopAfterTheTimeoutAndPersistFirst() async throws {
        let clock = ManualClock()
        let stopped = Mutex<[Int]>([])
        let registry = ServiceRegistry<String, Int>(idleTimeout: .seconds(60), clock: clock,
                                                    start: { key in Int(key)! }, stop: { value in stopped.withLock { $0.append(value) } })
        _ = try await registry.lookupOrStart("1")
        _ = try await registry.lookupOrStart("2")
        clock.advance(by: .seconds(59))
        _ = try await registry.lookupOrStart("2")
        #expect(await registry.stopIdle() == [])
        clock.advance(by: .seconds(1))
        #expect(await registry.stopIdle() == ["1"])
        #expect(stopped.withLock { $0 } == [1])
        #expect(await registry.lookup("1") == nil)
        #expect(await registry.lookup("2") == 2)
        await registry.stopAll()
        #expect(stopped.withLock { $0 } == [1, 2])
    }
}
