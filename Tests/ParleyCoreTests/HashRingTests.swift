import ParleyCore
import Testing

@Suite("Hash ring")
struct HashRingTests {
    static let keys = (0..<20_000).map { "channel:\($0)" }

    func shares(_ ring: HashRing) -> [String: Int] {
        Self.keys.reduce(into: [:]) { counts, key in counts[ring.owner(of: key)!, default: 0] += 1 }
    }

    @Test(arguments: Array(3...16))
    func everyNodeGetsItsFairShareWithinFifteenPercent(nodes: Int) {
        let ring = HashRing(members: (1...nodes).map { "node-\($0)" })
        let fair = Double(Self.keys.count) / Double(nodes)
        for (node, count) in shares(ring) {
            #expect(abs(Double(count) - fair) / fair <= 0.15, "\(node) has \(count) keys, fair is \(fair)")
        }
        #expect(shares(ring).count == nodes)
    }

    @Test(arguments: [3, 5, 8, 16])
    func addingOneNodeMovesAboutOneNthAndOnlyToIt(nodes: Int) {
        let before = HashRing(members: (1...nodes).map { "node-\($0)" })
        let after = HashRing(members: (1...nodes + 1).map { "node-\($0)" })
        var moved = 0
        for key in Self.keys where before.owner(of: key) != after.owner(of: key) {
            moved += 1
            #expect(after.owner(of: key) == "node-\(nodes + 1)", "\(key) moved between old nodes")
        }
        #expect(Double(moved) <= 1.3 * Double(Self.keys.count) / Double(nodes + 1))
    }

    @Test(arguments: [3, 5, 8, 16])
    func removingOneNodeMovesOnlyItsKeys(nodes: Int) {
        let before = HashRing(members: (1...nodes).map { "node-\($0)" })
        let after = HashRing(members: (1..<nodes).map { "node-\($0)" })
        var moved = 0
        for key in Self.keys where before.owner(of: key) != after.owner(of: key) {
            moved += 1
            #expect(before.owner(of: key) == "node-\(nodes)", "\(key) moved though its owner stayed")
        }
        #expect(Double(moved) <= 1.3 * Double(Self.keys.count) / Double(nodes))
    }

    @Test func sameMembersInAnyOrderGiveTheSameRing() {
        let names = (1...7).map { "node-\($0)" }
        let ring = HashRing(members: names)
        for _ in 0..<5 {
            let shuffled = HashRing(members: names.shuffled() + [names[0]])
            #expect(shuffled == ring)
            #expect(Self.keys.prefix(500).allSatisfy { shuffled.owner(of: $0) == ring.owner(of: $0) })
        }
    }

    @Test func preferredOwnersAreDistinctAndStartWithTheOwner() {
        let ring = HashRing(members: ["a", "b", "c", "d"])
        for key in Self.keys.prefix(200) {
            let preferred = ring.preferredOwners(of: key, count: 3)
            #expect(preferred.count == 3 && Set(preferred).count == 3)
            #expect(preferred.first == ring.owner(of: key))
            // When the owner goes, the next preferred takes over.
            let without = HashRing(members: ["a", "b", "c", "d"].filter { $0 != preferred[0] })
            #expect(without.owner(of: key) == preferred[1])
        }
        #expect(ring.preferredOwners(of: "x", count: 10).count == 4)
        #expect(HashRing(members: []).owner(of: "x") == nil)
    }
}
