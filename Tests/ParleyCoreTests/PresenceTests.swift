import ParleyCore
import Testing

@Suite("Presence")
struct PresenceTests {
    let laptop = PresenceMeta(socket: "r1", status: .online, node: "node-a/1", onlineAt: 1)
    /// The laptop's meta after it went away: a new ref, naming the old one.
    var awayLaptop: PresenceMeta {
        var away = laptop
        away.status = .away
        away.previousRef = laptop.ref
        away.ref = "r1b"
        return away
    }
    let phone = PresenceMeta(socket: "r2", status: .away, node: "node-b/1", onlineAt: 2)

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
        snapshot.remove("u1", socket: order[0])
        let first = PresenceDiff(from: previous, to: snapshot)
        #expect(first.joins.isEmpty)
        #expect(first.leaves["u1"]?.map(\.ref) == [order[0]])
        #expect(snapshot.status(of: "u1") != .offline, "still present on the other socket")
        #expect(first.statusChanges(from: previous, to: snapshot) == (order[0] == "r1" ? ["u1": .away] : [:]))
        previous = snapshot
        snapshot.remove("u1", socket: order[1])
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
        snapshot.add("u2", PresenceMeta(socket: "r3", status: .online, node: "node-b/1", onlineAt: 3))
        let before = snapshot
        snapshot.removeNode("node-b/1")
        let diff = PresenceDiff(from: before, to: snapshot)
        #expect(diff.leaves.mapValues { $0.map(\.ref) } == ["u1": ["r2"], "u2": ["r3"]])
        #expect(snapshot.status(of: "u1") == .online)
        #expect(snapshot.status(of: "u2") == .offline)
    }

    /// A changed meta gets a new `phx_ref` and names the old one `phx_ref_prev`, as Phoenix's
    /// own presence does.
    @Test func statusChangeIsALeaveOfTheOldRefPlusAJoinOfANewOne() {
        var before = PresenceSnapshot()
        before.add("u1", laptop)
        var after = before
        let away = awayLaptop
        after.add("u1", away)
        let diff = PresenceDiff(from: before, to: after)
        #expect(diff.json == [
            "joins": ["u1": ["metas": [["phx_ref": "r1b", "phx_ref_prev": "r1", "status": "away", "node": "node-a/1", "online_at": 1]]]],
            "leaves": ["u1": ["metas": [["phx_ref": "r1", "status": "online", "node": "node-a/1", "online_at": 1]]]],
        ])
        #expect(after.stateJSON == ["u1": ["metas": [["phx_ref": "r1b", "phx_ref_prev": "r1", "status": "away", "node": "node-a/1",
                                                       "online_at": 1]]]])
        #expect(PresenceDiff(from: after, to: after).isEmpty)
    }

    /// Phoenix's JavaScript `Presence.syncDiff` (phoenix/assets/js/phoenix/presence.js),
    /// ported: joins merge into the state (metas of the same `phx_ref` replaced), then leaves
    /// remove metas by `phx_ref`, and a key with no metas left is gone.
    static func syncDiff(_ state: [String: [String]], _ diff: JSONValue) -> [String: [String]] {
        var state = state
        func refs(_ presence: JSONValue?) -> [String] { presence?["metas"]?.arrayValue?.compactMap { $0["phx_ref"]?.stringValue } ?? [] }
        for (key, presence) in diff["joins"]?.objectValue ?? [:] {
            let joined = refs(presence)
            state[key] = (state[key] ?? []).filter { !joined.contains($0) } + joined
        }
        for (key, presence) in diff["leaves"]?.objectValue ?? [:] {
            guard let current = state[key] else { continue }
            let left = refs(presence)
            let remaining = current.filter { !left.contains($0) }
            state[key] = remaining.isEmpty ? nil : remaining
        }
        return state
    }

    /// Issue 14.7: driven through Phoenix's algorithm, a member whose status changes stays
    /// present (before, the joined and the left meta had the same ref and the member vanished).
    @Test func phoenixClientsKeepAMemberWhoseStatusChanges() {
        var before = PresenceSnapshot()
        before.add("u1", laptop)
        before.add("u2", phone)
        let state = Dictionary(uniqueKeysWithValues: before.users.map { ($0.key, $0.value.map(\.ref)) })
        var after = before
        let away = awayLaptop
        after.add("u1", away)
        let synced = Self.syncDiff(state, PresenceDiff(from: before, to: after).json)
        #expect(synced == ["u1": ["r1b"], "u2": ["r2"]])
        var gone = after
        gone.remove("u1", socket: "r1")
        #expect(Self.syncDiff(synced, PresenceDiff(from: after, to: gone).json) == ["u2": ["r2"]])
    }
}
