-- The plugins' `kv` capability. KEYS[1] the value's key, KEYS[2] the plugin's index: a
-- sorted set of its keys scored by expiry in ms (+inf: never), which counts its live keys.
-- The index is written in the same script as the value, so the two never disagree beyond
-- Redis expiring a value a moment before its index entry is pruned here.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Room for a new member: prune expired index entries, then refuse at `max`.
local function has_room(index, member, now, max)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
  if redis.call('ZSCORE', index, member) then
    return true
  end
  return redis.call('ZCARD', index) < max
end
