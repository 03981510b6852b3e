-- KEYS[1] = queue base key. ARGV: id, kind, payload, (unused), (unused), due_ms, now_ms,
-- idempotency key ('' for none), idempotency ttl seconds, outbox flag ('1' durable).
-- Attempt limits are the worker's per-queue policy, passed at fetch and settle time.
-- Returns {created (0/1), id}. Idempotent on the key and on the task id.
local base = KEYS[1]
local id, kind, payload = ARGV[1], ARGV[2], ARGV[3]
local due, now = tonumber(ARGV[6]), tonumber(ARGV[7])
local idem, ttl = ARGV[8], tonumber(ARGV[9])
if idem ~= '' then
  local ikey = base .. ':idem:' .. idem
  -- A delayed task keeps its key at least until it is due, plus the usual TTL.
  local extra = math.max(0, math.ceil((due - now) / 1000))
  if not redis.call('SET', ikey, id, 'NX', 'EX', ttl + extra) then
    return {0, redis.call('GET', ikey)}
  end
end
local tk = base .. ':t:' .. id
if redis.call('EXISTS', tk) == 1 then
  return {0, id}
end
redis.call('HSET', tk, 'kind', kind, 'payload', payload, 'attempts', 0, 'crashes', 0,
  'created', now, 'ready_at', due, 'idem', idem,
  'outbox', ARGV[10])
if due <= now then
  redis.call('RPUSH', base .. ':ready', id)
else
  redis.call('ZADD', base .. ':scheduled', due, id)
end
return {1, id}
