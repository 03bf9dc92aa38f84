import ParleyCore
import Testing

@Suite("Membership")
struct MembershipTests {
    let a1 = NodeIdentity(name: "a", incarnation: "1")
    let b1 = NodeIdentity(name: "b", incarnation: "1")
    let start = Moment(nanoseconds: 10_000_000_000)

    @Test func heartbeatsJoinAndSilenceLeaves() {
        var membership = MembershipStateMachine(ttl: .seconds(3))
        #expect(membership.observe([Heartbeat(node: a1, at: start), Heartbeat(node: b1, at: start)], at: start)
                == [.joined(a1), .joined(b1)])
        #expect(membership.liveNames == ["a", "b"])
        #expect(membership.observe([Heartbeat(node: a1, at: start + .seconds(2))], at: start + .seconds(2)) == [])
        #expect(membership.nextExpiry == start + .seconds(3))
        #expect(membership.tick(at: start + .milliseconds(2999)) == [])
        #expect(membership.tick(at: start + .seconds(3)) == [.left(b1)])
        #expect(membership.live == [a1])
        #expect(membership.tick(at: start + .seconds(5)) == [.left(a1)])
    }

    @Test func restartedNodeWithTheSameNameIsANewPeer() {
        var membership = MembershipStateMachine(ttl: .seconds(3))
        _ = membership.observe([Heartbeat(node: a1, at: start)], at: start)
        let a2 = NodeIdentity(name: "a", incarnation: "2")
        #expect(membership.observe([Heartbeat(node: a2, at: start + .seconds(1))], at: start + .seconds(1))
                == [.restarted(old: a1, new: a2)])
        #expect(membership.live == [a2])
        // A late heartbeat of the old incarnation does not bring it back.
        #expect(membership.observe([Heartbeat(node: a1, at: start + .milliseconds(500))], at: start + .seconds(1)) == [])
        #expect(membership.live == [a2])
    }

    /// A heartbeat record says whether its node drains; one without the flag (an older node)
    /// does not, and anything else after the third field is refused.
    @Test func heartbeatRecordsCarryTheDrainingFlag() {
        var record = NodeRecord(identity: a1, address: "127.0.0.1:4001", startedAt: 42)
        #expect(record.storedValue == "1|127.0.0.1:4001|42")
        #expect(NodeRecord(name: "a", storedValue: record.storedValue) == record)
        record.draining = true
        #expect(record.storedValue == "1|127.0.0.1:4001|42|draining")
        #expect(NodeRecord(name: "a", storedValue: record.storedValue)?.draining == true)
        #expect(NodeRecord(name: "a", storedValue: "1|127.0.0.1:4001|42|sleeping") == nil)
        #expect(NodeRecord(name: "a", storedValue: "1|127.0.0.1:4001") == nil)
    }

    @Test func staleHeartbeatsDoNotJoin() {
        var membership = MembershipStateMachine(ttl: .seconds(3))
        #expect(membership.observe([Heartbeat(node: a1, at: start)], at: start + .seconds(3)) == [])
        #expect(membership.live.isEmpty)
    }

    @Test func identityPrintsAndParses() {
        #expect(a1.description == "a/1")
        #expect(NodeIdentity("node-1/abc") == NodeIdentity(name: "node-1", incarnation: "abc"))
        #expect(NodeIdentity("nope") == nil)
        #expect(NodeIdentity.booting(name: "x") != NodeIdentity.booting(name: "x"))
    }
}
