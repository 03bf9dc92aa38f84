import ParleyCore
import Testing

@Suite("Message entities")
struct MessageEntitiesTests {
    @Test func mentionsChannelMentionsAndLinksWithUTF16Offsets() {
        let body = "héllo @ada and @Channel, see https://example.com/a?b=1). mail ada@example.com 👍 @bob."
        #expect(MessageEntity.parse(body) == [
            .mention(handle: "ada", offset: 6, length: 4),
            .channelMention("channel", offset: 15, length: 8),
            .link(url: "https://example.com/a?b=1", offset: 29, length: 25),
            .mention(handle: "bob", offset: 81, length: 4),
        ])
    }

    @Test func plainTextAndLoneMarkersHaveNone() {
        #expect(MessageEntity.parse("no entities here, just @ and http:// alone").isEmpty)
        #expect(MessageEntity.parse("").isEmpty)
    }

    @Test func messagesCarryTheirEntities() {
        let message = MessageView(id: "m", channelID: "c", seq: 1, userID: "u", body: "@here look: http://x.io", createdAt: 0)
        #expect(message.json["entities"] == [
            ["type": "channel_mention", "name": "here", "offset": 0, "length": 5],
            ["type": "link", "url": "http://x.io", "offset": 12, "length": 11],
        ])
    }
}
