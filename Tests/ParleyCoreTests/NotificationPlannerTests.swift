import ParleyCore
import Testing

/// Issue 19: who is notified of a message, and why.
@Suite("Notification planner")
struct NotificationPlannerTests {
    let alice = NotificationMember(id: "a", displayName: "Alice Smith", email: "alice@example.com")
    let bob = NotificationMember(id: "b", displayName: "Bob", email: "robert@example.com")
    let carol = NotificationMember(id: "c", displayName: "Carol", email: "carol@example.com")

    func context(_ body: String, from sender: String = "a", direct: Bool = false, thread: Set<String> = [], muted: Set<String> = [],
                 deleted: Bool = false) -> NotificationContext {
        NotificationContext(message: MessageView(id: "m1", channelID: "ch", seq: 7, userID: sender, body: body,
                                                 threadRootID: thread.isEmpty ? nil : "root", createdAt: 1,
                                                 deletedAt: deleted ? 2 : nil),
                            channelName: "general", isDirect: direct, senderName: "Alice Smith", members: [alice, bob, carol],
                            threadParticipants: thread, muted: muted)
    }

    func plan(_ context: NotificationContext, online: Set<String> = []) -> [String: NotificationReason] {
        Dictionary(uniqueKeysWithValues: NotificationPlanner.recipients(of: context, online: online).map { ($0.user, $0.item.reason) })
    }

    @Test func mentionsByDisplayNameOrEmailNameTheirMembersOnly() {
        #expect(plan(context("hi @bob and @CAROL")) == ["b": .mention, "c": .mention])
        #expect(plan(context("ping @robert")) == ["b": .mention], "the email's local part")
        #expect(plan(context("@AliceSmith, @nobody", from: "b")) == ["a": .mention], "a name without its spaces")
        #expect(plan(context("mail bob@example.com")).isEmpty, "an address is no mention")
        #expect(plan(context("@alicesmith talking to myself")).isEmpty, "never the sender")
    }

    @Test func channelWideMentionsDirectMessagesAndThreads() {
        #expect(plan(context("@channel lunch")) == ["b": .channelMention, "c": .channelMention])
        #expect(plan(context("@here lunch"), online: ["c"]) == ["c": .channelMention], "@here: those online")
        #expect(plan(context("hello", direct: true)) == ["b": .direct, "c": .direct])
        #expect(plan(context("a reply", thread: ["a", "c"])) == ["c": .threadReply])
        #expect(plan(context("a reply @bob", thread: ["b"])) == ["b": .mention], "the strongest reason")
        #expect(plan(context("@bob", deleted: true)).isEmpty)
    }

    @Test func aMutedChannelNotifiesOnlyOfMentionsByName() {
        #expect(plan(context("@channel and @carol", muted: ["b", "c"])) == ["c": .mention])
        #expect(plan(context("hello", direct: true, muted: ["b"])) == ["b": .direct, "c": .direct])
    }

    @Test func highPriorityFirstAndReadItemsDropped() {
        let recipients = NotificationPlanner.recipients(of: context("@channel @carol"), online: [])
        #expect(recipients.map(\.user) == ["c", "b"] && recipients.map(\.priority) == [10, 0])
        let item = { (id: String, channel: String, seq: Int64) in
            NotificationItem(messageID: id, channelID: channel, channelName: "x", seq: seq, reason: .mention, senderName: "A", excerpt: "")
        }
        let items = [item("m1", "c1", 3), item("m2", "c1", 5), item("m2", "c1", 5), item("m3", "c2", 1)]
        #expect(NotificationPlanner.unread(items, lastRead: ["c1": 4]).map(\.messageID) == ["m2", "m3"])
        #expect(NotificationPlanner.title(of: [items[0]]) == "A mentioned you in #x")
        #expect(NotificationPlanner.title(of: items) == "4 new notifications")
        #expect(NotificationItem(json: items[0].json) == items[0])
    }
}

@Suite("Base64URL")
struct Base64URLTests {
    @Test func roundTripsAndMatchesRFC4648Vectors() {
        // RFC 4648 §10's vectors, in the URL alphabet without padding.
        for (text, encoded) in [("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"),
                                ("foobar", "Zm9vYmFy")] {
            #expect(Base64URL.encode(Array(text.utf8)) == encoded)
            #expect(Base64URL.decode(encoded) == Array(text.utf8))
        }
        let bytes: [UInt8] = [0xFB, 0xFF, 0xBF, 0x00, 0x10]
        #expect(Base64URL.encode(bytes) == "-_-_ABA")
        #expect(Base64URL.decode("-_-_ABA") == bytes && Base64URL.decode("-_-_ABA=") == bytes)
        #expect(Base64URL.decode("a+b/") == nil && Base64URL.decode("abcde") == nil)
        for length in 0..<70 {
            let random = (0..<length).map { _ in UInt8.random(in: 0...255) }
            #expect(Base64URL.decode(Base64URL.encode(random)) == random)
        }
    }
}
