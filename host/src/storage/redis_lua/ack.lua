-- KEYS[1] the stream; ARGV[1] the group, ARGV[2..] entry ids.
local ids = {}
for i = 2, #ARGV do
  ids[#ids + 1] = ARGV[i]
  if #ids == 1000 then
    redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
    ids = {}
  end
end
if #ids > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
end
trim_acknowledged(KEYS[1])
return 0
