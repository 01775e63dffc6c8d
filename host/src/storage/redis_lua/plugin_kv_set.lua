-- ARGV: member (the plugin's key), value, ttl ms ('' for none), max keys.
local now = now_ms()
if not has_room(KEYS[2], ARGV[1], now, tonumber(ARGV[4])) then
  return {'full'}
end
if ARGV[3] == '' then
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('ZADD', KEYS[2], '+inf', ARGV[1])
else
  local ttl = tonumber(ARGV[3])
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
end
return {'ok'}
