-- Bounded streams that never lose an entry a consumer group still needs.
-- Prepended to every script that writes or acknowledges stream entries (Redis scripts
-- cannot call each other). Redis' own MAXLEN/MINID trimming knows nothing about consumer
-- groups, and its KEEPREF/ACKED modes need Redis 8.2, so the bound is computed here.

local function parse_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function id_before(a, b)
  local am, as = parse_id(a)
  local bm, bs = parse_id(b)
  if am ~= bm then
    return am < bm
  end
  return as < bs
end

-- The smallest id after `id` (ids are <ms>-<seq>; doubles hold both exactly).
local function id_after(id)
  local ms, seq = parse_id(id)
  return string.format('%.0f-%.0f', ms, seq + 1)
end

-- Delete the entries every consumer group has acknowledged: everything below the oldest
-- entry any group still needs, which is its oldest pending entry or else the first entry
-- it was never handed. A stream no group reads yet keeps everything. Returns the group
-- holding the oldest needed entry, or false when there is none.
local function trim_acknowledged(stream)
  if redis.call('EXISTS', stream) == 0 then
    return false
  end
  local oldest, holder = nil, false
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local name, last
    for i = 1, #g, 2 do
      if g[i] == 'name' then
        name = g[i + 1]
      elseif g[i] == 'last-delivered-id' then
        last = g[i + 1]
      end
    end
    local need = id_after(last)
    local pending = redis.call('XPENDING', stream, name)
    if pending[1] > 0 and id_before(pending[2], need) then
      need = pending[2]
    end
    if oldest == nil or id_before(need, oldest) then
      oldest, holder = need, name
    end
  end
  if oldest ~= nil then
    redis.call('XTRIM', stream, 'MINID', oldest)
  end
  return holder
end

-- Append each (key, body) whose idempotency key is new, or nothing at all when the new
-- ones do not fit under `maxlen` entries (after trimming what every group acknowledged).
-- A batch larger than the bound goes only into an empty stream, so it cannot wait
-- forever. Returns {'ok', <id or '' for a duplicate>...} or
-- {'full', <length>, <bound>, <group holding the oldest entry, or ''>}.
local function enqueue_all(stream, idem_keys, ttl, maxlen, keys, bodies)
  local fresh, seen = 0, {}
  for i = 1, #keys do
    if not seen[idem_keys[i]] and redis.call('EXISTS', idem_keys[i]) == 0 then
      fresh = fresh + 1
    end
    seen[idem_keys[i]] = true
  end
  if fresh > 0 then
    local len = redis.call('XLEN', stream)
    if len > 0 and len + fresh > maxlen then
      local holder = trim_acknowledged(stream)
      len = redis.call('XLEN', stream)
      if len > 0 and len + fresh > maxlen then
        return {'full', tostring(len), tostring(maxlen), holder or ''}
      end
    end
  end
  local out = {'ok'}
  for i = 1, #keys do
    if redis.call('SET', idem_keys[i], '1', 'NX', 'EX', ttl) then
      out[#out + 1] = redis.call('XADD', stream, '*', 'key', keys[i], 'body', bodies[i])
    else
      out[#out + 1] = ''
    end
  end
  return out
end
