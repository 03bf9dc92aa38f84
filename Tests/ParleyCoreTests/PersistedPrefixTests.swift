import ParleyCore
import Testing

@Suite("Persisted prefix")
struct PersistedPrefixTests {
    @Test func advancesOnlyWhileContiguous() {
        var prefix = PersistedPrefix()
        #expect(prefix.stored("c", seqs: [1, 2]) == nil, "an untracked channel is never trimmed")
        prefix.stored("c", through: 4)
        #expect(prefix.stored("c", seqs: [6, 7]) == nil, "5 is missing")
        #expect(prefix.through("c") == 4)
        #expect(prefix.stored("c", seqs: [5]) == 7, "the hole filled: through 7")
        #expect(prefix.stored("c", seqs: [3, 7]) == nil, "old seqs change nothing")
        prefix.stored("c", through: 10)
        #expect(prefix.stored("c", seqs: [11]) == 11)
        prefix.forget("c")
        #expect(prefix.through("c") == nil && prefix.channels == 0)
    }
}
