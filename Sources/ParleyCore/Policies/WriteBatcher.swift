import DequeModule

/// Collects items and says when to write them: at `maximumItems` items, or `maximumDelay`
/// after the first item of a batch arrived, whichever comes first. A batch takes up to
/// `largestBatch` items, so a backlog (after an outage, or under load) is written in fewer,
/// larger statements.
///
/// A failed write hands its batch back with `requeue`, ahead of newer items, so order holds.
public struct WriteBatcher<Item: Sendable>: Sendable {
    public enum Directive: Sendable {
        /// Write these items now.
        case flush([Item])
        /// Call `tick` at this moment (the deadline of the batch just started).
        case wakeUp(at: Moment)
    }

    public let maximumItems: Int
    public let maximumDelay: Duration
    public let largestBatch: Int
    private var pending: Deque<Item> = []
    /// When the oldest pending item must be written.
    public private(set) var deadline: Moment?

    public init(maximumItems: Int, maximumDelay: Duration, largestBatch: Int? = nil) {
        precondition(maximumItems > 0 && maximumDelay >= .zero)
        self.maximumItems = maximumItems
        self.maximumDelay = maximumDelay
        self.largestBatch = max(maximumItems, largestBatch ?? maximumItems)
    }

    public var count: Int { pending.count }
    public var isEmpty: Bool { pending.isEmpty }
    /// The oldest pending item.
    public var first: Item? { pending.first }

    public mutating func append(_ item: Item, at now: Moment) -> Directive? {
        pending.append(item)
        if pending.count >= maximumItems { return .flush(take()) }
        if deadline == nil {
            deadline = now + maximumDelay
            return .wakeUp(at: now + maximumDelay)
        }
        return nil
    }

    /// Queues `item` for a writer that polls `tick`: the batch is due at once when full,
    /// otherwise `maximumDelay` after its first item. Never hands a batch to the caller, so
    /// a sender never writes on its own time (and a backlog is not copied on every add).
    public mutating func add(_ item: Item, at now: Moment) {
        pending.append(item)
        if pending.count >= maximumItems {
            deadline = min(deadline ?? now, now)
        } else if deadline == nil {
            deadline = now + maximumDelay
        }
    }

    /// Flushes when the deadline has come.
    public mutating func tick(at now: Moment) -> Directive? {
        guard let deadline, now >= deadline, !pending.isEmpty else { return nil }
        return .flush(take())
    }

    /// The next batch (at most `largestBatch`), now, whatever its deadline (shutdown, handoff).
    public mutating func drain() -> [Item] {
        pending.isEmpty ? [] : take()
    }

    /// Puts a batch whose write failed back in front; the caller retries after a backoff.
    public mutating func requeue(_ items: [Item], retryAt: Moment) {
        pending.insert(contentsOf: items, at: 0)
        deadline = min(deadline ?? retryAt, retryAt)
    }

    /// Takes one batch. Items left behind (a burst beyond a batch) are already overdue or
    /// close to it, so they become due at once rather than waiting a new delay.
    private mutating func take() -> [Item] {
        let count = min(pending.count, largestBatch)
        let batch = Array(pending.prefix(count))
        pending.removeFirst(count)
        deadline = pending.isEmpty ? nil : (deadline ?? Moment(nanoseconds: .min))
        return batch
    }
}

extension WriteBatcher.Directive: Equatable where Item: Equatable {}
