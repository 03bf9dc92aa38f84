import FuzzSupport
import ParleyCore

/// A binary frame (the vsn 2.0.0 binary push: kind, four lengths, the strings, the payload):
/// a `ProtocolError`, or a frame whose fields are exactly the bytes the header's lengths name.
func fuzzPhoenixBinary(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = FuzzSupport.bytes(data, count)
    for codec in PhoenixCodec.allCases {
        let frame: PhoenixFrame
        do {
            frame = try codec.decode(binary: bytes, maximumBytes: 1 << 16)
        } catch {
            if error.reason.isEmpty { fatalError("a refusal without a reason: \(error)") }
            continue
        }
        guard codec == .v2 else { fatalError("vsn 1.0.0 took a binary frame") }
        let lengths = (1...4).map { Int(bytes[$0]) }
        let fields = [frame.joinRef ?? "", frame.ref ?? "", frame.topic, frame.event].map { Array($0.utf8) }
        guard fields.map(\.count) == lengths else { fatalError("field lengths \(fields.map(\.count)) differ from the header's \(lengths)") }
        guard case .binary(let payload) = frame.payload, payload.count == bytes.count - 5 - lengths.reduce(0, +) else {
            fatalError("the payload is not the rest of the frame")
        }
        // A reply to it encodes without trapping.
        _ = PhoenixCodec.binaryReply(to: frame, status: "ok", data: payload)
    }
    return 0
}

runFuzzer { data, count in fuzzPhoenixBinary(data, count) }
