-- KEYS[1] = queue base key. ARGV: kind filter ('' = any), limit, ids... (none = scan).
-- Deletes dead tasks; returns the purged ids.
local base = KEYS[1]
local kind, limit = ARGV[1], tonumber(ARGV[2])
local dead = base .. ':dead'
local ids = {}
if #ARGV > 2 then
  for i = 3, #ARGV do table.insert(ids, ARGV[i]) end
else
  ids = redis.call('ZREVRANGE', dead, 0, limit - 1)
end
local purged = {}
for _, id in ipairs(ids) do
  local tk = base .. ':t:' .. id
  if redis.call('ZSCORE', dead, id) and (kind == '' or redis.call('HGET', tk, 'kind') == kind) then
    redis.call('ZREM', dead, id)
    redis.call('DEL', tk)
    table.insert(purged, id)
  end
end
return purged
