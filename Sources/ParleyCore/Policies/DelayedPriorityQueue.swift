import HeapModule

/// A queue ordered by priority (higher first), first-in first-out within a priority, whose
/// elements may wait for a time (`notBefore`, a retry after backoff) before they are ready.
/// The notification service's queue.
public struct DelayedPriorityQueue<Element: Sendable>: Sendable {
    private struct Entry: Comparable, Sendable {
        let priority: Int
        let sequence: UInt64
        let element: Element
        /// Ready entries: higher priority first, then older first.
        static func < (lhs: Entry, rhs: Entry) -> Bool {
            lhs.priority != rhs.priority ? lhs.priority > rhs.priority : lhs.sequence < rhs.sequence
        }
        static func == (lhs: Entry, rhs: Entry) -> Bool { lhs.sequence == rhs.sequence }
    }

    private struct Waiting: Comparable, Sendable {
        let notBefore: Moment
        let entry: Entry
        static func < (lhs: Waiting, rhs: Waiting) -> Bool {
            lhs.notBefore != rhs.notBefore ? lhs.notBefore < rhs.notBefore : lhs.entry.sequence < rhs.entry.sequence
        }
        static func == (lhs: Waiting, rhs: Waiting) -> Bool { lhs.entry.sequence == rhs.entry.sequence }
    }

    private var ready = Heap<Entry>()
    private var waiting = Heap<Waiting>()
    private var nextSequence: UInt64 = 0

    public init() {}

    public var count: Int { ready.count + waiting.count }
    public var isEmpty: Bool { count == 0 }

    public mutating func push(_ element: Element, priority: Int, notBefore: Moment? = nil) {
        let entry = Entry(priority: priority, sequence: nextSequence, element: element)
        nextSequence += 1
        if let notBefore { waiting.insert(Waiting(notBefore: notBefore, entry: entry)) } else { ready.insert(entry) }
    }

    /// The most urgent element ready at `now`, if any.
    public mutating func popReady(at now: Moment) -> Element? {
        while let first = waiting.min, first.notBefore <= now {
            ready.insert(waiting.removeMin().entry)
        }
        return ready.popMin()?.element
    }

    /// When the next waiting element becomes ready (nil when one is ready now or none waits).
    public var nextReadyTime: Moment? { ready.isEmpty ? waiting.min?.notBefore : nil }
}
