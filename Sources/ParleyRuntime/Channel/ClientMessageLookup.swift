import ParleyCore
import Synchronization

/// Asks the store whether posts' `client_msg_id`s were stored before (a resend the log no
/// longer remembers), many posts in one statement: while a lookup is in flight, new ones
/// queue and go together in the next, so a busy node sends one statement per round trip, not
/// one per message (the pattern of the Redis client's automatic pipelining).
public final class ClientMessageLookup: Sendable {
    public typealias Answer = MessageView?
    private let store: any MessageStore
    private let largestBatch: Int
    private let failures = Atomic<Int>(0)
    /// Lookups the store did not answer (their posts were de-duplicated by the log alone).
    public var unanswered: Int { failures.load(ordering: .relaxed) }
    private let state = Mutex<(waiting: [(ClientMessageKey, CheckedContinuation<Answer, any Error>)], running: Bool)>(([], false))

    public init(store: any MessageStore, largestBatch: Int = 500) {
        self.store = store
        self.largestBatch = largestBatch
    }

    /// The sender's stored message with this `client_msg_id`, if any.
    public func find(_ key: ClientMessageKey) async throws -> Answer {
        try await withCheckedThrowingContinuation { continuation in
            let start = state.withLock { state -> Bool in
                state.waiting.append((key, continuation))
                defer { state.running = true }
                return !state.running
            }
            if start { Task { await self.drain() } }
        }
    }

    private func drain() async {
        while true {
            let batch = state.withLock { state -> [(ClientMessageKey, CheckedContinuation<Answer, any Error>)] in
                guard !state.waiting.isEmpty else {
                    state.running = false
                    return []
                }
                let count = min(state.waiting.count, largestBatch)
                defer { state.waiting.removeFirst(count) }
                return Array(state.waiting.prefix(count))
            }
            guard !batch.isEmpty else { return }
            do {
                let answer = try await store.find(Array(Set(batch.map(\.0))))
                for (key, continuation) in batch {
                    continuation.resume(returning: answer[key])
                }
            } catch {
                failures.add(batch.count, ordering: .relaxed)
                for (_, continuation) in batch { continuation.resume(throwing: error) }
            }
        }
    }
}
