-- Acknowledge handled events together with their handlers' effects, all or nothing.
-- KEYS: [1] the event stream, [2] notify:requests, then one idempotency key per
-- notification, then (value key, index key) per kv write, then one hash per record to
-- forget.
-- ARGV: [1] group, [2] idempotency ttl, [3] notify bound, [4] kv max keys, [5] acks,
-- [6] notifications, [7] kv writes, [8] records to forget (counts), [9] the consumer,
-- then the acked ids,
-- then (key, body) per notification, then (op, member, value or by, ttl or '') per kv
-- write ('set' | 'del' | 'incr'), then the field of each record to forget.
-- Answers {'ok'}, {'stale', ids...} (acked entries no longer pending with this consumer),
-- {'full', length, bound, holder} or {'kv', 'keys'|'nan'|'overflow', by}.
-- Every check comes before the first write: a Lua script is not rolled back on error.

local group = ARGV[1]
local n_ack, n_notify, n_kv, n_forget =
  tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local a = 10
local acks = {}
for i = 1, n_ack do acks[i] = ARGV[a]; a = a + 1 end

-- 0. Every acked entry must still be pending with this consumer: one XPENDING over the
-- range of the batch, for this consumer only, then a lookup per id.
local stale = {'stale'}
if n_ack > 0 then
  local lo, hi = acks[1], acks[1]
  for i = 2, n_ack do
    if id_before(acks[i], lo) then lo = acks[i] end
    if id_before(hi, acks[i]) then hi = acks[i] end
  end
  local mine = {}
  for _, p in ipairs(redis.call('XPENDING', KEYS[1], group, lo, hi, n_ack * 4 + 64, ARGV[9])) do
    mine[p[1]] = true
  end
  for i = 1, n_ack do
    if not mine[acks[i]] then
      -- Not in the listing (which a long range may have cut short): ask for it alone.
      local p = redis.call('XPENDING', KEYS[1], group, acks[i], acks[i], 1)
      if not (p[1] and p[1][2] == ARGV[9]) then stale[#stale + 1] = acks[i] end
    end
  end
end
if #stale > 1 then return stale end
local idem, keys, bodies = {}, {}, {}
for i = 1, n_notify do
  idem[i] = KEYS[2 + i]
  keys[i] = ARGV[a]; bodies[i] = ARGV[a + 1]; a = a + 2
end
local kv = {}
local k = 3 + n_notify
for i = 1, n_kv do
  kv[i] = {op = ARGV[a], member = ARGV[a + 1], arg = ARGV[a + 2], ttl = ARGV[a + 3],
           vkey = KEYS[k], index = KEYS[k + 1]}
  a = a + 4; k = k + 2
end

-- 1. The kv writes in order on a simulated view: integers, overflow, the key cap.
local now = now_ms()
local view, fresh = {}, {}
local function current(w)
  if view[w.vkey] == nil then
    local v = redis.call('GET', w.vkey)
    view[w.vkey] = v or false
  end
  return view[w.vkey]
end
local function count_new(w)
  if redis.call('ZSCORE', w.index, w.member) then return true end
  fresh[w.index] = fresh[w.index] or {n = 0, members = {}}
  local f = fresh[w.index]
  if not f.members[w.member] then
    if f.n == 0 then redis.call('ZREMRANGEBYSCORE', w.index, '-inf', now) end
    if redis.call('ZCARD', w.index) + f.n + 1 > tonumber(ARGV[4]) then return false end
    f.members[w.member] = true
    f.n = f.n + 1
  end
  return true
end
for _, w in ipairs(kv) do
  local cur = current(w)
  if w.op == 'set' then
    if not cur and not count_new(w) then return {'kv', 'keys', ''} end
    view[w.vkey] = w.arg
  elseif w.op == 'del' then
    view[w.vkey] = false
  else
    if not cur then
      if not count_new(w) then return {'kv', 'keys', ''} end
      cur = '0'
    elseif not string.match(cur, '^%-?%d+$') then
      return {'kv', 'nan', w.arg}
    end
    local new = tonumber(cur) + tonumber(w.arg)
    if new >= 9.2e18 or new <= -9.2e18 then return {'kv', 'overflow', w.arg} end
    view[w.vkey] = string.format('%.0f', new)
  end
end

-- 2. The notifications, within notify:requests' bound (writes nothing when full).
if n_notify > 0 then
  local r = enqueue_all(KEYS[2], idem, ARGV[2], tonumber(ARGV[3]), keys, bodies)
  if r[1] == 'full' then return r end
end

-- 3. The kv writes, as the single-call scripts make them.
for _, w in ipairs(kv) do
  if w.op == 'set' then
    if w.ttl == '' then
      redis.call('SET', w.vkey, w.arg)
      redis.call('ZADD', w.index, '+inf', w.member)
    else
      redis.call('SET', w.vkey, w.arg, 'PX', tonumber(w.ttl))
      redis.call('ZADD', w.index, now + tonumber(w.ttl), w.member)
    end
  elseif w.op == 'del' then
    redis.call('ZREM', w.index, w.member)
    redis.call('DEL', w.vkey)
  else
    local existed = redis.call('EXISTS', w.vkey) == 1
    redis.call('INCRBY', w.vkey, w.arg)
    if not existed then redis.call('ZADD', w.index, '+inf', w.member) end
  end
end

-- 4. The attempt records, then the acks and the trim.
for i = 1, n_forget do
  redis.call('HDEL', KEYS[k], ARGV[a]); k = k + 1; a = a + 1
end
local batch = {}
for i = 1, n_ack do
  batch[#batch + 1] = acks[i]
  if #batch == 1000 then
    redis.call('XACK', KEYS[1], group, unpack(batch))
    batch = {}
  end
end
if #batch > 0 then redis.call('XACK', KEYS[1], group, unpack(batch)) end
if n_ack > 0 then trim_acknowledged(KEYS[1]) end
return {'ok'}
