-- KEYS[1] the stream; ARGV[1] the group, ARGV[2] the consumer, ARGV[3..] entry ids.
-- Restart the idle time of the entries still pending for this consumer (XCLAIM JUSTID to
-- itself); an entry another consumer took meanwhile is left with it.
local n = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    n = n + 1
  end
end
return n
