extension RedisScript {
    /// Takes a free lease and bumps the fence.
    /// KEYS[1] lease, KEYS[2] fence. ARGV[1] holder, ARGV[2] ttl ms.
    /// Returns the new fence, or nil when the lease is held.
    static let acquireLease = RedisScript("""
        if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
          return redis.call('INCR', KEYS[2])
        end
        return false
        """)

    /// Compare-and-extend. KEYS[1] lease. ARGV[1] holder, ARGV[2] ttl ms. Returns 1 or 0.
    static let renewLease = RedisScript("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          return redis.call('PEXPIRE', KEYS[1], ARGV[2])
        end
        return 0
        """)

    /// Compare-and-delete. KEYS[1] lease. ARGV[1] holder. Returns 1 or 0.
    static let releaseLease = RedisScript("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          return redis.call('DEL', KEYS[1])
        end
        return 0
        """)
}
