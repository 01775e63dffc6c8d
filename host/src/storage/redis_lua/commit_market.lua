-- The market engine's commit: notification requests, rule states, latest prices, price
-- history and source checkpoints, all or nothing. The enqueue goes first: if the requests
-- do not fit under the stream's bound, nothing else is written either.
--
-- KEYS: stream, rules hash, latest hash, checkpoints hash, one idempotency key per
--       request, one history list per symbol.
-- ARGV: ttl, maxlen, history_keep, then
--       n, n x (key, body)              requests
--       r, r x (field, value)           rules
--       l, l x (field, value)           latest prices
--       c, c x (field, value)           checkpoints
--       per history list: p, p x point (oldest first)
local stream, rules, latest, checkpoints = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ttl, maxlen, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local at = 4

local function take_count()
  local n = tonumber(ARGV[at])
  at = at + 1
  return n
end

local n = take_count()
local idem_keys, keys, bodies = {}, {}, {}
for i = 1, n do
  idem_keys[i] = KEYS[4 + i]
  keys[i] = ARGV[at]
  bodies[i] = ARGV[at + 1]
  at = at + 2
end
local result = enqueue_all(stream, idem_keys, ttl, maxlen, keys, bodies)
if result[1] ~= 'ok' then
  return result
end

for _, hash in ipairs({rules, latest, checkpoints}) do
  local count = take_count()
  for _ = 1, count do
    redis.call('HSET', hash, ARGV[at], ARGV[at + 1])
    at = at + 2
  end
end

for h = 4 + n + 1, #KEYS do
  local count = take_count()
  for _ = 1, count do
    redis.call('LPUSH', KEYS[h], ARGV[at])
    at = at + 1
  end
  redis.call('LTRIM', KEYS[h], 0, keep - 1)
end
return result
