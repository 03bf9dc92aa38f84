import ParleyCore
import Testing

@Suite("JSON")
struct JSONTests {
    @Test func parsesAndWritesEveryKindExactly() throws {
        let text = #"{"a":[1,-2,3.5,1e3,true,false,null],"big":9007199254740993,"s":"q\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}"#
        let value = try JSONParser.parse(text)
        #expect(value["big"] == .int(9_007_199_254_740_993))
        #expect(value["s"] == .string("q\"\\/\u{8}\u{c}\n\r\té😀"))
        #expect(value["a"] == [1, -2, 3.5, 1000.0, true, false, nil])
        #expect(try JSONParser.parse(value.jsonText) == value)
        #expect(JSONValue.string("\u{1}").jsonText == #""\u0001""#)
    }

    @Test func rejectsWhatRFC8259Rejects() {
        for bad in ["", "01", "1.", "-", "[1,]", "{\"a\":1,}", "'x'", "\"\\x\"", "\"\u{1}\"", "\"\\ud800\"", "[1] 2", "nul", "{1:2}", "1e", "NaN"] {
            #expect(throws: JSONParseError.self, "\(bad)") { try JSONParser.parse(bad) }
        }
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xff, 0x22]) }
    }
}
