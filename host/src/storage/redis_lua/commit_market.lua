-- The market engine's commit: notification requests, rule states, latest prices, price
-- history and source checkpoints, all or nothing. The fence goes first: a host that no
-- longer holds the lease of a partition it commits for (another host took it over) writes
-- nothing, so an alert the new owner raises is never raised by the old one too. Then the
-- enqueue: if the requests do not fit under the stream's bound, nothing else is written
-- either.
--
-- KEYS: stream, rules hash, latest hash, checkpoints hash, one lease key per fence token,
--       one idempotency key per request, one history list per symbol.
-- ARGV: ttl, maxlen, history_keep, then
--       f, f x token                    fence: each lease key must hold its token
--       n, n x (key, body)              requests
--       r, r x (field, value)           rules (with a fence, only rules that still exist:
--                                       one deleted meanwhile through another host's API
--                                       stays gone)
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

local f = take_count()
local lost = {}
for i = 1, f do
  if redis.call('GET', KEYS[4 + i]) ~= ARGV[at] then
    lost[#lost + 1] = KEYS[4 + i]
  end
  at = at + 1
end
if #lost > 0 then
  table.insert(lost, 1, 'fenced')
  return lost
end

local n = take_count()
local idem_keys, keys, bodies = {}, {}, {}
for i = 1, n do
  idem_keys[i] = KEYS[4 + f + i]
  keys[i] = ARGV[at]
  bodies[i] = ARGV[at + 1]
  at = at + 2
end
local result = enqueue_all(stream, idem_keys, ttl, maxlen, keys, bodies)
if result[1] ~= 'ok' then
  return result
end

local count = take_count()
for _ = 1, count do
  if f == 0 or redis.call('HEXISTS', rules, ARGV[at]) == 1 then
    redis.call('HSET', rules, ARGV[at], ARGV[at + 1])
  end
  at = at + 2
end
for _, hash in ipairs({latest, checkpoints}) do
  count = take_count()
  for _ = 1, count do
    redis.call('HSET', hash, ARGV[at], ARGV[at + 1])
    at = at + 2
  end
end

for h = 4 + f + n + 1, #KEYS do
  count = take_count()
  for _ = 1, count do
    redis.call('LPUSH', KEYS[h], ARGV[at])
    at = at + 1
  end
  redis.call('LTRIM', KEYS[h], 0, keep - 1)
end
return result
