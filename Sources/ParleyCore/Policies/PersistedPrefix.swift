/// Per channel, the highest `seq` below which every message is in the store: the point the
/// log may be trimmed through (DESIGN §2 step 6), never past a message that is not stored.
///
/// A channel is tracked from the moment its owner says what is stored (`stored(through:)`,
/// after recovering the log); stores above that advance the prefix only while they are
/// contiguous. An untracked channel is never trimmed: its next owner recovers and trims.
public struct PersistedPrefix: Sendable {
    private var prefix: [String: Int64] = [:]
    /// Stored `seq`s above a channel's prefix, waiting for the hole below them to fill.
    private var above: [String: Set<Int64>] = [:]

    public init() {}

    /// Everything of `channel` through `seq` is stored.
    public mutating func stored(_ channel: String, through seq: Int64) {
        guard seq > (prefix[channel] ?? .min) else { return }
        prefix[channel] = seq
        advance(channel)
    }

    /// These messages of `channel` are stored now. Returns the new prefix when it moved.
    public mutating func stored(_ channel: String, seqs: some Sequence<Int64>) -> Int64? {
        guard let before = prefix[channel] else { return nil }
        for seq in seqs where seq > before { above[channel, default: []].insert(seq) }
        advance(channel)
        let after = prefix[channel]!
        return after > before ? after : nil
    }

    /// The prefix of `channel`, if tracked.
    public func through(_ channel: String) -> Int64? { prefix[channel] }

    /// Stops tracking `channel` (its server stopped).
    public mutating func forget(_ channel: String) {
        prefix[channel] = nil
        above[channel] = nil
    }

    public var channels: Int { prefix.count }

    private mutating func advance(_ channel: String) {
        guard var waiting = above[channel], var through = prefix[channel] else { return }
        waiting = waiting.filter { $0 > through }
        while waiting.remove(through + 1) != nil { through += 1 }
        prefix[channel] = through
        above[channel] = waiting.isEmpty ? nil : waiting
    }
}
