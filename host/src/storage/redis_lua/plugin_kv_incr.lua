-- ARGV: member (the plugin's key), by, max keys.
local now = now_ms()
local current = redis.call('GET', KEYS[1])
if not current then
  if not has_room(KEYS[2], ARGV[1], now, tonumber(ARGV[3])) then
    return {'full'}
  end
elseif not string.match(current, '^%-?%d+$') then
  return {'nan'}
end
local result = redis.pcall('INCRBY', KEYS[1], ARGV[2])
if type(result) == 'table' and result.err then
  return {'overflow'}
end
if not current then
  redis.call('ZADD', KEYS[2], '+inf', ARGV[1])
end
return {'ok', tostring(result)}
