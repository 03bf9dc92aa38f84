/// Consistent hashing with virtual nodes, keyed by node *name* (so a restarted node keeps
/// its place). Every node builds the same ring from the same member names, in any order.
///
/// Keys are entity keys such as `channel:C` or `workspace:W`. Adding or removing one of N
/// nodes moves about 1/N of the keys, and only to or from that node.
public struct HashRing: Sendable, Hashable {
    public static let defaultVirtualNodes = 256

    /// Member names, sorted.
    public let members: [String]
    public let virtualNodes: Int
    private let points: [Point]

    private struct Point: Sendable, Hashable {
        let hash: UInt64
        let member: Int
    }

    public init(members: some Sequence<String>, virtualNodes: Int = defaultVirtualNodes) {
        precondition(virtualNodes > 0)
        let names = Array(Set(members)).sorted()
        self.members = names
        self.virtualNodes = virtualNodes
        var points: [Point] = []
        points.reserveCapacity(names.count * virtualNodes)
        for (index, name) in names.enumerated() {
            for replica in 0..<virtualNodes {
                points.append(Point(hash: stableHash("\(name)#\(replica)"), member: index))
            }
        }
        // Ties (vanishingly rare) break by member name, so the order is the same everywhere.
        self.points = points.sorted { ($0.hash, names[$0.member]) < ($1.hash, names[$1.member]) }
    }

    public var isEmpty: Bool { members.isEmpty }

    /// The member that owns `key`, or nil for an empty ring.
    public func owner(of key: String) -> String? {
        preferredOwners(of: key, count: 1).first
    }

    /// The first `count` distinct members clockwise from `key`: the owner, then who takes
    /// over if it goes.
    public func preferredOwners(of key: String, count: Int) -> [String] {
        guard !points.isEmpty, count > 0 else { return [] }
        let hash = stableHash(key)
        var low = 0, high = points.count
        while low < high {
            let middle = (low + high) / 2
            if points[middle].hash < hash { low = middle + 1 } else { high = middle }
        }
        var result: [String] = []
        var seen = Set<Int>()
        var index = low
        for _ in 0..<points.count {
            let point = points[index % points.count]
            if seen.insert(point.member).inserted {
                result.append(members[point.member])
                if result.count == min(count, members.count) { break }
            }
            index += 1
        }
        return result
    }
}
