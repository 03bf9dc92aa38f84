extension RedisScript {
    /// The acknowledgement path in one round trip (DESIGN §4): checks the lease still names
    /// the caller, de-duplicates by the sender's `client_msg_id`, appends with the explicit
    /// stream id `{seq}-0` (Redis refuses a `seq` not above the last).
    ///
    /// The dedupe hash holds `sender:client_msg_id → seq:id` for the messages in the log only
    /// (the trim removes them; the store's unique index answers after that), plus the field
    /// `#trimmed`: the highest `seq` trimmed. When it is above ARGV[6] — the store's last `seq`
    /// when the caller asked the store — a message may have moved from the log to the store
    /// since, and the caller must ask again.
    /// KEYS[1] lease, KEYS[2] log stream, KEYS[3] dedupe hash.
    /// ARGV[1] holder, ARGV[2] seq, ARGV[3] dedupe field (`sender:client_msg_id`) or '',
    /// ARGV[4] message JSON, ARGV[5] message id, ARGV[6] the store's last seq when asked.
    /// Returns {'ok'}, {'duplicate', seq, id}, {'not_owner'}, {'stale_seq'} or {'recheck'}.
    public static let appendToLog = RedisScript("""
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then
          return {'not_owner'}
        end
        if ARGV[3] ~= '' then
          local prior = redis.call('HGET', KEYS[3], ARGV[3])
          if prior then
            local colon = string.find(prior, ':', 1, true)
            return {'duplicate', string.sub(prior, 1, colon - 1), string.sub(prior, colon + 1)}
          end
          local trimmed = tonumber(redis.call('HGET', KEYS[3], '#trimmed') or '0')
          if trimmed > tonumber(ARGV[6]) then
            return {'recheck'}
          end
        end
        local added
        if ARGV[3] ~= '' then
          added = redis.pcall('XADD', KEYS[2], ARGV[2] .. '-0', 'm', ARGV[4], 'd', ARGV[3])
        else
          added = redis.pcall('XADD', KEYS[2], ARGV[2] .. '-0', 'm', ARGV[4])
        end
        if type(added) == 'table' and added.err then
          return {'stale_seq'}
        end
        if ARGV[3] ~= '' then
          redis.call('HSET', KEYS[3], ARGV[3], ARGV[2] .. ':' .. ARGV[5])
        end
        return {'ok'}
        """)

    /// Trims a channel's log through a `seq` whose every entry the store has, forgetting the
    /// trimmed entries' `client_msg_id`s and recording the highest `seq` trimmed.
    /// KEYS[1] log stream, KEYS[2] dedupe hash. ARGV[1] seq. Returns the entries trimmed.
    public static let trimLog = RedisScript("""
        local through = tonumber(ARGV[1])
        local trimmed = redis.call('XRANGE', KEYS[1], '-', ARGV[1] .. '-0')
        for _, entry in ipairs(trimmed) do
          local fields = entry[2]
          for i = 1, #fields, 2 do
            if fields[i] == 'd' then redis.call('HDEL', KEYS[2], fields[i + 1]) end
          end
        end
        if #trimmed > 0 then
          redis.call('XTRIM', KEYS[1], 'MINID', (through + 1) .. '-0')
        end
        if through > tonumber(redis.call('HGET', KEYS[2], '#trimmed') or '0') then
          redis.call('HSET', KEYS[2], '#trimmed', ARGV[1])
        end
        return #trimmed
        """)
}
