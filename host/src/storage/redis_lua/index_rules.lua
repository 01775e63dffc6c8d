-- The start-up build of the rule indexes (storage::rule_index), one scanned batch at a
-- time. A rule is indexed only if it is still stored with the creation time the scan
-- read: a rule deleted since the scan had its entries removed by its delete (or had none
-- yet), and must not get them back from a stale batch; a rule deleted and created again
-- under the same id was indexed by its own write, under its new creation time. Other
-- changes since the scan (firing states written by the market commit) keep the entry,
-- which depends only on id and creation time. The check and the ZADDs are one script, so
-- no delete falls between them.
-- KEYS[1]: the rules hash. ARGV[1]: the index key prefix; then six per rule: id,
-- created_at, entry, and the three scopes. Returns how many rules were indexed.
local prefix = ARGV[1]
local indexed = 0
for i = 2, #ARGV, 6 do
  local id, created, entry = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local stored = redis.call('HGET', KEYS[1], id)
  if stored then
    local ok, rec = pcall(cjson.decode, stored)
    if ok and type(rec) == 'table' and rec.created_at == created then
      for s = 3, 5 do
        redis.call('ZADD', prefix .. ARGV[i + s], 0, entry)
      end
      indexed = indexed + 1
    end
  end
end
return indexed
