import FuzzSupport
import ParleyCore

/// The JSON parser on arbitrary bytes: it throws `JSONParseError` or returns a value; what it
/// returns writes out as JSON that parses back to the same value.
func fuzzJSON(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = FuzzSupport.bytes(data, count)
    guard let value = try? JSONParser.parse(bytes) else { return 0 }
    let written = value.jsonBytes
    guard let again = try? JSONParser.parse(written) else {
        fatalError("the parser's own output does not parse: \(value.jsonText)")
    }
    guard again == value else { fatalError("written and parsed again, the value changed: \(value) → \(again)") }
    return 0
}

runFuzzer { data, count in fuzzJSON(data, count) }
