-- KEYS[1] the stream, KEYS[2] the idempotency key; ARGV: ttl, maxlen, key, body.
return enqueue_all(KEYS[1], {KEYS[2]}, ARGV[1], tonumber(ARGV[2]), {ARGV[3]}, {ARGV[4]})
