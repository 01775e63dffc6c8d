-- ARGV: member (the plugin's key). Returns 1 if a live value was removed.
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
