extension RedisScript {
    /// A node's heartbeat, written only if the name is free or already this incarnation's.
    /// KEYS[1] node key. ARGV[1] incarnation, ARGV[2] stored value, ARGV[3] ttl ms.
    /// Returns `renewed`, `registered`, or the other incarnation's stored value.
    static let heartbeat = RedisScript("""
        local current = redis.call('GET', KEYS[1])
        if current then
          local holder = string.match(current, '^([^|]*)')
          if holder ~= ARGV[1] then return current end
          redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
          return 'renewed'
        end
        redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
        return 'registered'
        """)

    /// Removes a node's heartbeat if it is this incarnation's. KEYS[1] node key. ARGV[1] incarnation.
    static let leaveCluster = RedisScript("""
        local current = redis.call('GET', KEYS[1])
        if current and string.match(current, '^([^|]*)') == ARGV[1] then
          return redis.call('DEL', KEYS[1])
        end
        return 0
        """)

    /// Removes every presence meta of a node incarnation from one workspace.
    /// KEYS[1] the workspace's presence hash. ARGV[1] the field prefix `incarnation|`.
    /// Returns the removed values.
    static let reapPresence = RedisScript("""
        local all = redis.call('HGETALL', KEYS[1])
        local removed = {}
        for i = 1, #all, 2 do
          if string.sub(all[i], 1, #ARGV[1]) == ARGV[1] then
            redis.call('HDEL', KEYS[1], all[i])
            table.insert(removed, all[i + 1])
          end
        end
        return removed
        """)
}
