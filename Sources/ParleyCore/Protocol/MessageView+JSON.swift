extension MessageView {
    /// Reads a message back from its `json` form (the log stores messages so).
    public init(json: JSONValue) throws(ProtocolError) {
        let reader = try PayloadReader(json)
        guard let seq = try reader.optionalInt("seq", in: 1...Int64.max) else { throw .missingField("seq") }
        self.init(id: try reader.string("id", maxLength: 64), channelID: try reader.string("channel_id", maxLength: 64),
                  seq: seq, userID: try reader.string("user_id", maxLength: 64),
                  body: try reader.string("body", maxLength: 1 << 20, minLength: 0, multiline: true),
                  threadRootID: try reader.optionalString("thread_root_id", maxLength: 64),
                  clientMessageID: try reader.optionalString("client_msg_id", maxLength: 255),
                  createdAt: try reader.int("created_at", in: 0...Int64.max),
                  editedAt: try reader.optionalInt("edited_at", in: 0...Int64.max),
                  deletedAt: try reader.optionalInt("deleted_at", in: 0...Int64.max),
                  attachments: (reader.members["attachments"]?.arrayValue ?? []).compactMap(\.stringValue))
    }
}
