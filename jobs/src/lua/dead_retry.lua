-- KEYS[1] = queue base key. ARGV: now_ms, kind filter ('' = any), limit, ids... (none = scan).
-- Moves dead tasks back to the ready list with a fresh attempt budget.
local base = KEYS[1]
local now, kind, limit = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local dead = base .. ':dead'
local ids = {}
if #ARGV > 3 then
  for i = 4, #ARGV do table.insert(ids, ARGV[i]) end
else
  ids = redis.call('ZREVRANGE', dead, 0, limit - 1)
end
local moved = {}
for _, id in ipairs(ids) do
  local tk = base .. ':t:' .. id
  if redis.call('ZSCORE', dead, id) then
    local k = redis.call('HGET', tk, 'kind')
    if kind == '' or k == kind then
      redis.call('ZREM', dead, id)
      if k then
        redis.call('HSET', tk, 'attempts', 0, 'crashes', 0, 'ready_at', now, 'retried_at', now)
        redis.call('RPUSH', base .. ':ready', id)
        table.insert(moved, id)
      end
    end
  end
end
return moved
