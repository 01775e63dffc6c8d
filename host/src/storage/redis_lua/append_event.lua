-- KEYS[1] the stream, KEYS[2] the idempotency key ('' for none); ARGV: ttl, maxlen, then
-- field, value, ... An event appended once, within the stream's bound (`streams.lua`).
if KEYS[2] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then
  return {'ok', ''}
end
local maxlen = tonumber(ARGV[2])
local len = redis.call('XLEN', KEYS[1])
if len > 0 and len + 1 > maxlen then
  local holder = trim_acknowledged(KEYS[1])
  len = redis.call('XLEN', KEYS[1])
  if len > 0 and len + 1 > maxlen then
    return {'full', tostring(len), tostring(maxlen), holder or ''}
  end
end
if KEYS[2] ~= '' then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
end
local fields = {}
for i = 3, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
return {'ok', redis.call('XADD', KEYS[1], '*', unpack(fields))}
