-- KEYS[1] = queue base key. ARGV: worker, deadline_ms, ids... Extends this worker's leases.
local base = KEYS[1]
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', base .. ':t:' .. id, 'owner') == ARGV[1] then
    redis.call('ZADD', base .. ':inflight', 'XX', ARGV[2], id)
    n = n + 1
  end
end
return n
