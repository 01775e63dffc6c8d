-- The scheduler's shared records (scheduler::claim): one hash per schedule with its
-- version `v` and its JSON `json`. KEYS: the records to read. Returns, per key, its
-- version ('0': none) and JSON (''), then Redis' clock in ms, so every host judges leases
-- and due times by this one clock rather than by its own.
local out = {}
for i = 1, #KEYS do
  local r = redis.call('HMGET', KEYS[i], 'v', 'json')
  out[#out + 1] = r[1] or '0'
  out[#out + 1] = r[2] or ''
end
local t = redis.call('TIME')
out[#out + 1] = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
return out
