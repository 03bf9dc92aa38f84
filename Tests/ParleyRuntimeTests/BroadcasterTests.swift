import ParleyCore
import ParleyRuntime
import Synchronization
import Testing

final class RecordingSocket: FrameSubscriber {
    let codec: PhoenixCodec
    let capacity: Int
    private let received = Mutex<[WebSocketMessage]>([])

    init(codec: PhoenixCodec, capacity: Int = 100) {
        self.codec = codec
        self.capacity = capacity
    }

    func deliver(_ message: WebSocketMessage) -> Bool {
        received.withLock { queue in
            guard queue.count < capacity else { return false }
            queue.append(message)
            return true
        }
    }

    var messages: [WebSocketMessage] { received.withLock { $0 } }
}

@Suite("Broadcaster")
struct BroadcasterTests {
    @Test func encodesOncePerSerializerAndReachesEverySubscriberOfTheTopic() {
        let broadcaster = Broadcaster()
        let v2Sockets = (0..<50).map { _ in RecordingSocket(codec: .v2) }
        let v1Socket = RecordingSocket(codec: .v1)
        let elsewhere = RecordingSocket(codec: .v2)
        for socket in v2Sockets { broadcaster.subscribe(socket, to: "channel:c1") }
        broadcaster.subscribe(v1Socket, to: "channel:c1")
        broadcaster.subscribe(elsewhere, to: "channel:c2")
        broadcaster.publish(.typing(userID: "u1", typing: true), topic: "channel:c1")
        #expect(v2Sockets.allSatisfy { $0.messages == [.text(#"[null,null,"channel:c1","typing",{"typing":true,"user_id":"u1"}]"#)] })
        #expect(v1Socket.messages == [.text(#"{"event":"typing","payload":{"typing":true,"user_id":"u1"},"ref":null,"topic":"channel:c1"}"#)])
        #expect(elsewhere.messages.isEmpty)
        let stats = broadcaster.stats()
        #expect(stats.published == 1 && stats.deliveries == 51 && stats.encodings == 2)
    }

    @Test func fullSocketsAreReportedNotQueuedWithoutBound() {
        let broadcaster = Broadcaster()
        let slow = RecordingSocket(codec: .v2, capacity: 2)
        broadcaster.subscribe(slow, to: "t:1")
        var full: [any FrameSubscriber] = []
        for n in 0..<5 { full += broadcaster.publish(PhoenixFrame(topic: "t:1", event: "e", json: ["n": .int(Int64(n))])) }
        #expect(slow.messages.count == 2)
        #expect(full.count == 3 && full.allSatisfy { $0 === slow })
        #expect(broadcaster.stats().dropped == 3)
        broadcaster.unsubscribe(slow, from: "t:1")
        #expect(broadcaster.subscriberCount("t:1") == 0)
        #expect(broadcaster.stats().topics == 0)
    }
}
