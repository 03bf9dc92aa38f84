extension RedisScript {
    /// The acknowledgement path in one round trip (DESIGN §4): checks the lease still names
    /// the caller, de-duplicates by the sender's `client_msg_id`, appends with the explicit
    /// stream id `{seq}-0` (Redis refuses a `seq` not above the last).
    ///
    /// A `client_msg_id` (field `sender:client_msg_id` → `seq:id`) is in the dedupe hash while
    /// its message is in the log, then in one of the two recently-trimmed hashes for at least
    /// the trim grace; after that only the store's unique index knows it (the caller asks the
    /// store first, less than the grace before appending).
    /// KEYS[1] lease, KEYS[2] log stream, KEYS[3] dedupe hash, KEYS[4] recently trimmed,
    /// KEYS[5] trimmed before that.
    /// ARGV[1] holder, ARGV[2] seq, ARGV[3] dedupe field or '', ARGV[4] message JSON, ARGV[5] message id.
    /// Returns {'ok'}, {'duplicate', seq, id}, {'not_owner'} or {'stale_seq'}.
    public static let appendToLog = RedisScript("""
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then
          return {'not_owner'}
        end
        if ARGV[3] ~= '' then
          local prior = redis.call('HGET', KEYS[3], ARGV[3]) or redis.call('HGET', KEYS[4], ARGV[3])
                        or redis.call('HGET', KEYS[5], ARGV[3])
          if prior then
            local colon = string.find(prior, ':', 1, true)
            return {'duplicate', string.sub(prior, 1, colon - 1), string.sub(prior, colon + 1)}
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

    /// Trims a channel's log through a `seq` whose every entry the store has, moving the
    /// trimmed entries' `client_msg_id`s from the dedupe hash to the recently-trimmed hash.
    /// That hash becomes the older one once it is a grace old (by Redis's clock), and each
    /// expires by itself, so a trimmed `client_msg_id` stays known between one and two graces.
    /// KEYS[1] log stream, KEYS[2] dedupe hash, KEYS[3] recently trimmed, KEYS[4] trimmed before
    /// that. ARGV[1] seq, ARGV[2] grace in ms. Returns the entries trimmed.
    public static let trimLog = RedisScript("""
        local grace = tonumber(ARGV[2])
        local trimmed = redis.call('XRANGE', KEYS[1], '-', ARGV[1] .. '-0')
        if #trimmed == 0 then
          return 0
        end
        local time = redis.call('TIME')
        local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
        local since = tonumber(redis.call('HGET', KEYS[3], '#since') or '-1')
        if since >= 0 and now - since >= grace then
          redis.call('RENAME', KEYS[3], KEYS[4])
          redis.call('PEXPIRE', KEYS[4], grace)
          since = -1
        end
        if since < 0 then
          redis.call('HSET', KEYS[3], '#since', now)
        end
        for _, entry in ipairs(trimmed) do
          local fields = entry[2]
          for i = 1, #fields, 2 do
            if fields[i] == 'd' then
              local value = redis.call('HGET', KEYS[2], fields[i + 1])
              if value then
                redis.call('HSET', KEYS[3], fields[i + 1], value)
                redis.call('HDEL', KEYS[2], fields[i + 1])
              end
            end
          end
        end
        redis.call('PEXPIRE', KEYS[3], 2 * grace)
        redis.call('XTRIM', KEYS[1], 'MINID', (tonumber(ARGV[1]) + 1) .. '-0')
        return #trimmed
        """)
}
