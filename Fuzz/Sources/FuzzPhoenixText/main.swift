import FuzzSupport
import ParleyCore

/// A text frame as a socket receives it, through both serializers (vsn 1.0.0 objects, 2.0.0
/// arrays): a `ProtocolError` with a reason, or a frame that the same codec writes out and
/// reads back unchanged.
func fuzzPhoenixText(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = FuzzSupport.bytes(data, count)
    for codec in PhoenixCodec.allCases {
        let frame: PhoenixFrame
        do {
            frame = try codec.decode(textBytes: bytes, maximumBytes: 1 << 16)
        } catch {
            if error.reason.isEmpty { fatalError("a refusal without a reason: \(error)") }
            continue
        }
        guard case .text(let text) = codec.encode(frame) else { fatalError("a JSON frame encoded as binary") }
        guard let again = try? codec.decode(text: text, maximumBytes: 1 << 20), again == frame else {
            fatalError("\(codec): the frame does not survive encode → decode: \(frame) → \(text)")
        }
    }
    return 0
}

runFuzzer { data, count in fuzzPhoenixText(data, count) }
