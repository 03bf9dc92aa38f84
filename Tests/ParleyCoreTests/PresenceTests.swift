import ParleyCore
import Testing

@Suite("Presence")
struct PresenceTests {
    let laptop = PresenceMeta(ref: "r1", status: .online, node: "node-a/1", onlineAt: 1)
    let phone = PresenceMeta(ref: "r2", status: .away, node: "node-b/1", onlineAt: 2)

    @Test func userIsAsPresentAsTheirMostPresentSocket() {
        var snapshot = PresenceSnapshot()
        #expect(snapshot.status(of: "u1") == .offline)
        snapshot.add("u1", phone)
        #expect(snapshot.status(of: "u1") == .away)
        snapshot.add("u1", laptop)
        #expect(snapshot.status(of: "u1") == .online)
    }

    @Test(arguments: [["r1", "r2"], ["r2", "r1"]])
    func twoSocketsOnTwoNodesLeavingInEitherOrder(order: [String]) {
        var snapshot = PresenceSnapshot()
        snapshot.add("u1", laptop)
        snapshot.add("u1", phone)
        var previous = snapshot
        snapshot.remove("u1", ref: order[0])
        let first = PresenceDiff(from: previous, to: snapshot)
        #expect(first.joins.isEmpty)
        #expect(first.leaves["u1"]?.map(\.ref) == [order[0]])
        #expect(snapshot.status(of: "u1") != .offline, "still present on the other socket")
        #expect(first.statusChanges(from: previous, to: snapshot) == (order[0] == "r1" ? ["u1": .away] : [:]))
        previous = snapshot
        snapshot.remove("u1", ref: order[1])
        let second = PresenceDiff(from: previous, to: snapshot)
        #expect(second.leaves["u1"]?.map(\.ref) == [order[1]])
        #expect(snapshot.status(of: "u1") == .offline)
        #expect(second.statusChanges(from: previous, to: snapshot) == ["u1": .offline])
        #expect(snapshot.users.isEmpty)
    }

    @Test func deadNodeReapingLeavesItsSocketsOnly() {
        var snapshot = PresenceSnapshot()
        snapshot.add("u1", laptop)
        snapshot.add("u1", phone)
        snapshot.add("u2", PresenceMeta(ref: "r3", status: .online, node: "node-b/1", onlineAt: 3))
        let before = snapshot
        snapshot.removeNode("node-b/1")
        let diff = PresenceDiff(from: before, to: snapshot)
        #expect(diff.leaves.mapValues { $0.map(\.ref) } == ["u1": ["r2"], "u2": ["r3"]])
        #expect(snapshot.status(of: "u1") == .online)
        #expect(snapshot.status(of: "u2") == .offline)
    }

    @Test func statusChangeIsALeavePlusAJoinInPhoenixShape() {
        var before = PresenceSnapshot()
        before.add("u1", laptop)
        var after = before
        var away = laptop
        away.status = .away
        after.add("u1", away)
        let diff = PresenceDiff(from: before, to: after)
        #expect(diff.json == [
            "joins": ["u1": ["metas": [["phx_ref": "r1", "status": "away", "node": "node-a/1", "online_at": 1]]]],
            "leaves": ["u1": ["metas": [["phx_ref": "r1", "status": "online", "node": "node-a/1", "online_at": 1]]]],
        ])
        #expect(after.stateJSON == ["u1": ["metas": [["phx_ref": "r1", "status": "away", "node": "node-a/1", "online_at": 1]]]])
        #expect(PresenceDiff(from: after, to: after).isEmpty)
    }
}
