-- Compare-and-set of the scheduler's shared records, each on its own: KEYS are the
-- records; ARGV holds, per key, the version the writer read ('0': none), and the new JSON
-- ('' deletes the record). A record is written only if its version is still the one
-- read; its version then goes up by one. A deleted record keeps its version (with no
-- JSON), so a writer holding a version from before the delete can never match a record
-- made again under the same name. Returns, per key, {'ok', new version} or
-- {'conflict', current version, current JSON}, then Redis' clock in ms.
local out = {}
for i = 1, #KEYS do
  local expected = ARGV[2 * i - 1]
  local json = ARGV[2 * i]
  local r = redis.call('HMGET', KEYS[i], 'v', 'json')
  local current = r[1] or '0'
  if current ~= expected then
    out[#out + 1] = 'conflict'
    out[#out + 1] = current
    out[#out + 1] = r[2] or ''
  else
    local v = tostring(tonumber(current) + 1)
    redis.call('HSET', KEYS[i], 'v', v, 'json', json)
    out[#out + 1] = 'ok'
    out[#out + 1] = v
    out[#out + 1] = ''
  end
end
local t = redis.call('TIME')
out[#out + 1] = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
return out
