extension RedisScript {
    /// The acknowledgement path in one round trip (DESIGN §4): checks the lease still names
    /// the caller, de-duplicates by `client_msg_id`, appends with the explicit stream id
    /// `{seq}-0` (Redis refuses a `seq` not above the last).
    /// KEYS[1] lease, KEYS[2] log stream, KEYS[3] dedupe hash.
    /// ARGV[1] holder, ARGV[2] seq, ARGV[3] client_msg_id or '', ARGV[4] message JSON,
    /// ARGV[5] message id, ARGV[6] dedupe TTL ms.
    /// Returns {'ok'}, {'duplicate', seq, id}, {'not_owner'} or {'stale_seq'}.
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
        end
        local added = redis.pcall('XADD', KEYS[2], ARGV[2] .. '-0', 'm', ARGV[4])
        if type(added) == 'table' and added.err then
          return {'stale_seq'}
        end
        if ARGV[3] ~= '' then
          redis.call('HSET', KEYS[3], ARGV[3], ARGV[2] .. ':' .. ARGV[5])
          redis.call('PEXPIRE', KEYS[3], ARGV[6])
        end
        return {'ok'}
        """)
}
