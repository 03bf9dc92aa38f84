import Synchronization

/// `body` took longer than allowed.
public struct TimeoutError: Error, Sendable, CustomStringConvertible {
    public let limit: Duration
    public var description: String { "timed out after \(limit)" }
}

/// Runs `body`, throwing `TimeoutError` once `limit` has passed. The caller gets its answer at
/// the deadline even when `body` is stuck in a call that ignores cancellation (a blocked C
/// call on a thread of its own): `body` is cancelled and abandoned, not waited for. Cancelling
/// the caller cancels `body` too.
public func withTimeout<R: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> R) async throws -> R {
    let race = TimeoutRace<R>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            race.start(continuation,
                       work: Task { do { race.finish(.success(try await body())) } catch { race.finish(.failure(error)) } },
                       timer: Task {
                           try? await Task.sleep(for: limit)
                           race.finish(.failure(TimeoutError(limit: limit)))
                       })
        }
    } onCancel: {
        race.finish(.failure(CancellationError()))
    }
}

/// The first of the work, the timer and a cancellation to finish answers; the others are
/// cancelled.
private final class TimeoutRace<R: Sendable>: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<R, any Error>?, tasks: [Task<Void, Never>], result: Result<R, any Error>?)>(
        (nil, [], nil))

    func start(_ continuation: CheckedContinuation<R, any Error>, work: Task<Void, Never>, timer: Task<Void, Never>) {
        let early = state.withLock { state -> Result<R, any Error>? in
            state.tasks = [work, timer]
            if let result = state.result { return result }
            state.continuation = continuation
            return nil
        }
        if let early {
            work.cancel()
            timer.cancel()
            continuation.resume(with: early)
        }
    }

    func finish(_ result: Result<R, any Error>) {
        let (continuation, tasks) = state.withLock { state -> (CheckedContinuation<R, any Error>?, [Task<Void, Never>]) in
            guard state.result == nil else { return (nil, []) }
            state.result = result
            defer { state.continuation = nil }
            return (state.continuation, state.tasks)
        }
        for task in tasks { task.cancel() }
        continuation?.resume(with: result)
    }
}
