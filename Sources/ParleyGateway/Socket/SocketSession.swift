import Foundation
import Logging
import protocol NIOCore.Channel
import ParleyCore
import ParleyRuntime

/// One client's socket (DESIGN §6): Phoenix Channels over either serializer. It decodes each
/// frame, checks the user, the topic and the payload, runs the request, and queues the reply
/// in the socket's outbox; every refusal is an error reply with a stable reason, and the
/// socket stays up.
actor SocketSession {
    private let node: Node
    let outbox: SocketOutbox
    /// The user the socket's token names, if it came with one.
    private let socketUser: String?
    private var joined: [String: (joinRef: String?, channel: String, user: String)] = [:]
    /// Workspace topics joined, with the presence ref of this socket in each.
    private var workspaces: [String: (workspace: String, user: String, ref: String)] = [:]
    private let socketID = UUID().uuidString.lowercased()
    private var threads: Set<String> = []
    /// `user:{id}` topics joined (the socket's own user only): notifications.
    private var userTopics: Set<String> = []
    private var bucket: TokenBucket
    private let clock = SystemClock()

    /// The client's address (per-address join limits).
    private let address: String?

    init(node: Node, codec: PhoenixCodec, user: String?, address: String?, channel: any Channel) {
        self.node = node
        self.socketUser = user
        self.address = address
        outbox = SocketOutbox(codec: codec, channel: channel, capacity: node.configuration.outboxCapacity)
        bucket = TokenBucket(capacity: 30, refillPerSecond: 10, now: SystemClock().now())
        outbox.whenTopicClosed { [weak self] topic in
            guard let self else { return }
            let closedAt = SystemClock().now()
            Task { await self.forget(topic, closedAt: closedAt) }
        }
    }

    /// When each channel topic was last joined (a close that reaches the session after a newer
    /// join must not undo it).
    private var joinedAt: [String: Moment] = [:]

    /// The broadcaster closed `topic` (its channel stopped, `phx_error` sent): the socket is
    /// no longer joined to it until it joins again, as in Phoenix.
    private func forget(_ topic: String, closedAt: Moment? = nil) {
        if let closedAt, let joined = joinedAt[topic], joined > closedAt { return }
        joined[topic] = nil
        joinedAt[topic] = nil
        outbox.joined(topic, as: nil)
    }

    func receive(text: [UInt8]) async {
        node.metrics.framesIn.increment()
        do {
            await handle(try outbox.codec.decode(textBytes: text))
        } catch {
            // No frame to answer to: say so on the socket's own topic.
            outbox.send(PhoenixFrame(topic: "phoenix", event: "phx_reply",
                                     json: ["status": "error", "response": ["reason": .string(error.reason), "message": .string(error.description)]]))
        }
    }

    func receive(binary: [UInt8]) async {
        do {
            let frame = try outbox.codec.decode(binary: binary)
            reply(to: frame, error: ProtocolError.invalidField(field: "payload", reason: "binary payloads are not accepted on \(frame.topic)"))
        } catch {
            outbox.send(PhoenixFrame(topic: "phoenix", event: "phx_reply",
                                     json: ["status": "error", "response": ["reason": .string(error.reason)]]))
        }
    }

    /// The socket closed: leave every topic.
    func close() async {
        for topic in joined.keys { node.broadcaster.unsubscribe(outbox, from: topic) }
        joined.removeAll()
        for (topic, presence) in workspaces {
            node.broadcaster.unsubscribe(outbox, from: topic)
            await node.presence.untrack(ref: presence.ref)
        }
        workspaces.removeAll()
        for topic in threads.union(userTopics) { node.broadcaster.unsubscribe(outbox, from: topic) }
        threads.removeAll()
        userTopics.removeAll()
        outbox.close()
    }

    private func handle(_ frame: PhoenixFrame) async {
        for presence in workspaces.values { await node.presence.touch(ref: presence.ref) }
        if frame.topic == "phoenix" && frame.event == "heartbeat" {
            outbox.send(.reply(to: frame, status: "ok", response: [:]))
            return
        }
        switch frame.event {
        case "phx_join" where frame.topic.hasPrefix("workspace:"): await joinWorkspace(frame)
        case "phx_join" where frame.topic.hasPrefix("thread:"): await joinThread(frame)
        case "phx_join" where frame.topic.hasPrefix("user:"): await joinUser(frame)
        case "phx_join": await join(frame)
        case "phx_leave" where workspaces[frame.topic] != nil: await leaveWorkspace(frame)
        case "phx_leave" where threads.contains(frame.topic) || userTopics.contains(frame.topic):
            threads.remove(frame.topic)
            userTopics.remove(frame.topic)
            node.broadcaster.unsubscribe(outbox, from: frame.topic)
            outbox.send(.reply(to: frame, status: "ok", response: [:]))
        case "phx_leave": leave(frame)
        case _ where workspaces[frame.topic] != nil: await workspaceEvent(frame)
        default: await channelEvent(frame)
        }
    }

    /// The join's request, topic and user; nil after an error reply (bad payload or topic, no
    /// valid token).
    private func admit(_ frame: PhoenixFrame) async -> (request: JoinRequest, topic: Topic, user: String)? {
        let request: JoinRequest
        let topic: Topic
        do {
            request = try JoinRequest(payload: frame.json)
            topic = try Topic(frame.topic)
        } catch {
            reply(to: frame, error: error)
            return nil
        }
        guard let user = await user(from: request) else {
            refuse(frame, reason: "unauthorized", message: "a valid token is required")
            return nil
        }
        if let wait = node.requests.allowJoin(user: user, address: address) {
            refuse(frame, reason: "rate_limited", message: "too many joins; retry in \(max(1, wait.milliseconds / 1000)) s")
            return nil
        }
        return (request, topic, user)
    }

    private func join(_ frame: PhoenixFrame) async {
        guard let (request, topic, user) = await admit(frame) else { return }
        guard case .channel(let channel) = topic else {
            reply(to: frame, error: ProtocolError.unknownTopic(frame.topic))
            return
        }
        if joined[frame.topic] != nil { leave(frame, silently: true) }
        // Joins are served here, at the edge: membership from the directory, the catch-up from
        // the log and the store through the channel's feed, whichever node owns the channel.
        let feed: ChannelFeed
        do {
            try await requireMember(channel, user)
            feed = try await node.bus.feeds.open(channel)
            let lastRead = try await backend { try await node.directory.lastRead(channel, user: user) }
            let current = feed.lastSeq
            joined[frame.topic] = (frame.joinRef, channel, user)
            joinedAt[frame.topic] = clock.now()
            outbox.joined(frame.topic, as: user)
            outbox.send(.reply(to: frame, status: "ok", response: [
                "last_seq": .int(current), "last_read_seq": .int(lastRead), "unread": .int(max(0, current - lastRead)),
            ]))
            node.metrics.joins.increment()
        } catch {
            reply(to: frame, error: error)
            return
        }
        // Joined: the catch-up follows the reply. If it cannot complete, the channel errors
        // (Phoenix clients rejoin with their last seq), never silence.
        do {
            try await feed.attach(outbox, after: request.lastSeq)
        } catch {
            forget(frame.topic)
            node.broadcaster.unsubscribe(outbox, from: frame.topic)
            node.metrics.errorReplies.increment()
            logProblem(error, topic: frame.topic)
            var error = PhoenixFrame(joinRef: frame.joinRef, ref: frame.joinRef, topic: frame.topic, event: "phx_error", json: [:])
            error.refsAreIntegers = frame.refsAreIntegers
            outbox.send(error)
        }
    }

    private func joinWorkspace(_ frame: PhoenixFrame) async {
        guard let (_, topic, user) = await admit(frame) else { return }
        guard case .workspace(let workspace) = topic else {
            reply(to: frame, error: ProtocolError.unknownTopic(frame.topic))
            return
        }
        guard workspaces[frame.topic] == nil else {
            outbox.send(.reply(to: frame, status: "ok", response: [:]))
            return
        }
        do {
            guard try await node.directory.isWorkspaceMember(workspace: workspace, user: user) else {
                throw ChannelError.notAMember
            }
            // Subscribed on the bus before the state is read, so no later diff is missed.
            try await backend { try await node.bus.subscribe(frame.topic) }
        } catch {
            reply(to: frame, error: error)
            return
        }
        let ref = "\(socketID):\(workspace)"
        workspaces[frame.topic] = (workspace, user, ref)
        outbox.send(.reply(to: frame, status: "ok", response: [:]))
        node.metrics.joins.increment()
        _ = await node.presence.attach(outbox, to: node.broadcaster, workspace: workspace, user: user, ref: ref)
    }

    /// `thread:{root_message_id}` with `{"channel_id": C}`: replies to that message, for
    /// members of its channel.
    private func joinThread(_ frame: PhoenixFrame) async {
        guard let (_, topic, user) = await admit(frame) else { return }
        guard case .thread(let root) = topic else {
            reply(to: frame, error: ProtocolError.unknownTopic(frame.topic))
            return
        }
        do {
            let channel = try PayloadReader(frame.json).id("channel_id")
            try await requireMember(channel, user)
            guard try await node.bus.feeds.history(of: channel).contains(messageID: root) else {
                throw ChannelError.notFound("message \(root)")
            }
            threads.insert(frame.topic)
            node.broadcaster.subscribe(outbox, to: frame.topic)
            outbox.send(.reply(to: frame, status: "ok", response: [:]))
        } catch {
            reply(to: frame, error: error)
        }
    }

    /// `user:{id}`, the socket's own user's: in-app notifications as they are made, on any
    /// node. The reply says how many are unread.
    private func joinUser(_ frame: PhoenixFrame) async {
        guard let (_, topic, user) = await admit(frame) else { return }
        guard case .user(let id) = topic else {
            reply(to: frame, error: ProtocolError.unknownTopic(frame.topic))
            return
        }
        guard id.lowercased() == user.lowercased() else {
            refuse(frame, reason: "unauthorized", message: "a socket may join only its own user's topic")
            return
        }
        do {
            node.broadcaster.subscribe(outbox, to: frame.topic)
            userTopics.insert(frame.topic)
            // Subscribed on the bus before the count is read, so no later notification is missed.
            try await backend { try await node.bus.subscribe(frame.topic) }
            let unread = try await backend { try await node.notificationStore.unreadCount(user: user) }
            outbox.send(.reply(to: frame, status: "ok", response: ["unread": .int(Int64(unread))]))
            node.metrics.joins.increment()
        } catch {
            userTopics.remove(frame.topic)
            node.broadcaster.unsubscribe(outbox, from: frame.topic)
            reply(to: frame, error: error)
        }
    }

    private func leaveWorkspace(_ frame: PhoenixFrame) async {
        guard let presence = workspaces.removeValue(forKey: frame.topic) else { return }
        node.broadcaster.unsubscribe(outbox, from: frame.topic)
        await node.presence.untrack(ref: presence.ref)
        outbox.send(.reply(to: frame, status: "ok", response: [:]))
    }

    /// `set_status {status: "busy" | "dnd" | null, text?}` on a workspace topic.
    private func workspaceEvent(_ frame: PhoenixFrame) async {
        guard let presence = workspaces[frame.topic] else { return }
        guard frame.event == "set_status" else {
            reply(to: frame, error: ProtocolError.unknownEvent(topic: "workspace", event: frame.event))
            return
        }
        do {
            let reader = try PayloadReader(frame.json)
            let status = try reader.optionalString("status", maxLength: 16)
            guard status == nil || ["busy", "dnd"].contains(status!) else {
                throw ProtocolError.invalidField(field: "status", reason: "must be busy, dnd or null")
            }
            let text = try reader.optionalString("text", maxLength: 100)
            await node.presence.setCustomStatus(ref: presence.ref, status: status, text: text)
            outbox.send(.reply(to: frame, status: "ok", response: [:]))
        } catch {
            reply(to: frame, error: error)
        }
    }

    private func leave(_ frame: PhoenixFrame, silently: Bool = false) {
        forget(frame.topic)
        node.broadcaster.unsubscribe(outbox, from: frame.topic)
        if !silently { outbox.send(.reply(to: frame, status: "ok", response: [:])) }
    }

    private func channelEvent(_ frame: PhoenixFrame) async {
        guard let membership = joined[frame.topic] else {
            refuse(frame, reason: "unmatched_topic", message: "join \(frame.topic) first")
            return
        }
        guard case .allowed = bucket.take(at: clock.now()) else {
            refuse(frame, reason: "rate_limited", message: "too many requests; slow down")
            return
        }
        do {
            let command = try ChannelCommand(event: frame.event, payload: frame.json, limits: node.limits)
            let (channel, user) = (membership.channel, membership.user)
            // Reads at the edge; writes go to the channel's owner, wherever it is.
            switch command {
            case .loadHistory(let before, let after, let limit):
                let page = try await node.bus.feeds.history(channel, before: before, after: after, limit: limit)
                outbox.send(.reply(to: frame, status: "ok", response: ["messages": .array(page.map(\.json))]))
            case .newMessage(let body, let clientID, let root):
                let attachments = try await node.attachableUploads(frame.json["attachments"], channel: channel, user: user)
                let message = try await node.channels.call(.post(body: body, clientMessageID: clientID, threadRootID: root,
                                                                 attachments: attachments.map(\.id)),
                                                           channel: channel, user: user).message()
                try await node.attach(attachments, to: message)
                outbox.send(.reply(to: frame, status: "ok", response: ["seq": .int(message.seq), "id": .string(message.id)]))
                node.metrics.messagesAccepted.increment()
            case .typingStart, .typingStop:
                _ = try await node.channels.call(.typing(command == .typingStart), channel: channel, user: user)
                outbox.send(.reply(to: frame, status: "ok", response: [:]))
            case .markRead(let seq):
                let (recorded, unread) = try await node.channels.call(.markRead(seq: seq), channel: channel, user: user).readState()
                outbox.send(.reply(to: frame, status: "ok", response: ["seq": .int(recorded), "unread": .int(unread)]))
            case .editMessage(let id, let body):
                let message = try await node.channels.call(.edit(messageID: id, body: body), channel: channel, user: user).message()
                outbox.send(.reply(to: frame, status: "ok", response: ["message": message.json]))
            case .deleteMessage(let id):
                let message = try await node.channels.call(.delete(messageID: id), channel: channel, user: user).message()
                outbox.send(.reply(to: frame, status: "ok", response: ["id": .string(message.id), "seq": .int(message.seq)]))
            case .addReaction(let id, let emoji), .removeReaction(let id, let emoji):
                let present = if case .addReaction = command { true } else { false }
                let reactions = try await node.channels.call(.react(messageID: id, emoji: emoji, present: present),
                                                             channel: channel, user: user).reactions()
                outbox.send(.reply(to: frame, status: "ok", response: ["reactions": .object(reactions.mapValues { users in
                    ["count": .int(Int64(users.count)), "users": .array(users.map { .string($0) })]
                })]))
            }
        } catch {
            reply(to: frame, error: error)
        }
    }

    /// Membership as the directory says (read at the edge: any node may answer).
    private func requireMember(_ channel: String, _ user: String) async throws {
        guard try await backend({ try await node.directory.isChannelMember(channel, user: user) }) else {
            throw ChannelError.notAMember
        }
    }

    private func refuse(_ frame: PhoenixFrame, reason: String, message: String) {
        node.metrics.errorReplies.increment()
        outbox.send(.errorReply(to: frame, reason: reason, message: message))
    }

    /// An error reply with the error's stable reason. Backend failures reach the client as
    /// `unavailable` with a generic message and a request id; the detail goes to the log.
    private func reply(to frame: PhoenixFrame, error: any Error) {
        switch error {
        case let error as ProtocolError: refuse(frame, reason: error.reason, message: error.description)
        case let error as ChannelError where error.reason != "unavailable":
            refuse(frame, reason: error.reason, message: error.description)
        default:
            let id = logProblem(error, topic: frame.topic)
            refuse(frame, reason: "unavailable", message: "temporarily unavailable; retry shortly (request \(id))")
        }
    }

    /// Logs a failure with a request id a client can quote; returns the id.
    @discardableResult
    private func logProblem(_ error: any Error, topic: String) -> String {
        let id = String(UUID().uuidString.prefix(8)).lowercased()
        node.logger.warning("socket request failed", metadata: ["request_id": "\(id)", "topic": "\(topic)", "error": "\(error)"])
        return id
    }

    private func user(from request: JoinRequest) async -> String? {
        if let socketUser { return socketUser }
        guard let token = request.token else { return nil }
        return try? await node.tokens.verify(token)
    }
}
