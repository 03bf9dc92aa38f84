import ParleyCore
import Testing

@Suite("Codec fuzzing")
struct CodecFuzzTests {
    static let seeds: [String] = [
        #"["1","2","channel:abc","new_message",{"body":"hi","client_msg_id":"c1"}]"#,
        #"[null,"5","phoenix","heartbeat",{}]"#,
        #"["3","3","channel:c1","phx_join",{"last_seq":10,"token":"abc"}]"#,
        #"{"topic":"channel:c","event":"load_history","payload":{"before":100,"limit":20},"ref":"1"}"#,
        #"["1","9","channel:x","mark_read",{"seq":12}]"#,
        #"["1","9","channel:x","add_reaction",{"message_id":"m1","emoji":"\ud83d\udc4d"}]"#,
    ]

    /// Decodes `bytes` every way a socket could, then validates the payload as a channel
    /// command: anything but a `ProtocolError` (or a trap) fails the test.
    func exercise(_ bytes: [UInt8]) -> Bool {
        var rejected = false
        for codec in PhoenixCodec.allCases {
            do {
                let frame = try codec.decode(textBytes: bytes, maximumBytes: 4096)
                _ = try? JoinRequest(payload: frame.json)
                do { _ = try ChannelCommand(event: frame.event, payload: frame.json) } catch { _ = error.reason }
                // Whatever decodes re-encodes and decodes to the same frame.
                if case .text(let text) = codec.encode(frame) {
                    #expect((try? codec.decode(text: text)) == frame)
                }
            } catch {
                rejected = true
                #expect(!error.reason.isEmpty && !error.description.isEmpty)
            }
            do { _ = try codec.decode(binary: bytes, maximumBytes: 4096) } catch { rejected = true; _ = error.reason }
        }
        return rejected
    }

    @Test func thousandsOfMutatedFramesAreDecodedOrRejectedWithATypedError() {
        var generator = SplitMix64(seed: 2026)
        let alphabet = Array(#"[]{}",:0123456789-.eEtrufalsn\ "#.utf8) + [0, 0xff, 0xc3, 0x28, 0x0a]
        var rejected = 0
        for iteration in 0..<20_000 {
            var bytes = Array(Self.seeds[iteration % Self.seeds.count].utf8)
            for _ in 0..<(1 + Int(generator.next() % 6)) {
                let position = bytes.isEmpty ? 0 : Int(generator.next() % UInt64(bytes.count))
                switch generator.next() % 5 {
                case 0 where !bytes.isEmpty: bytes.remove(at: position)
                case 1: bytes.insert(alphabet[Int(generator.next() % UInt64(alphabet.count))], at: position)
                case 2 where !bytes.isEmpty: bytes[position] = UInt8(truncatingIfNeeded: generator.next())
                case 3: bytes = Array(bytes.prefix(position))
                default:
                    let start = bytes.isEmpty ? 0 : Int(generator.next() % UInt64(bytes.count))
                    bytes.insert(contentsOf: bytes[start...].prefix(8), at: position)
                }
            }
            if exercise(bytes) { rejected += 1 }
        }
        #expect(rejected > 1000, "the mutations should break most frames")
    }

    @Test func randomBytesAndHostileShapesAreRejectedWithATypedError() {
        var generator = SplitMix64(seed: 7)
        for _ in 0..<5_000 {
            let count = Int(generator.next() % 64)
            let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            _ = exercise(bytes)
        }
        let hostile = [
            String(repeating: "[", count: 10_000),
            String(repeating: "{\"a\":", count: 5_000),
            "[null,null,\"t\",\"e\"," + String(repeating: "9", count: 400) + "]",
            "[null,null,\"t\",\"e\",1e999999]",
            "[null,null,\"t\",\"e\",\"\\uDEAD\"]",
            String(repeating: "x", count: 10_000),
        ]
        for text in hostile {
            #expect(exercise(Array(text.utf8)), "\(text.prefix(20)) must be rejected")
        }
        // Short and truncated binary frames.
        for length in 0..<12 {
            let frame: [UInt8] = [0, 2, 3, 5, 5] + Array("12123topicevent".utf8)
            _ = exercise(Array(frame.prefix(length)))
        }
    }
}
