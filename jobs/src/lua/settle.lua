-- KEYS[1] = queue base key. ARGV: id, worker, now_ms, action, delay_ms, error, max_attempts.
-- action 'retry': reschedule at now_ms + delay_ms (dead-letter when attempts are used up), so
--   the recorded failed_at and ready_at differ by exactly the policy's delay;
-- action 'dead': dead-letter now (permanent error);
-- action 'release': hand an unstarted or interrupted task back (attempt not counted).
-- Returns 'retry', 'dead', 'released' or 'lost' (the lease moved to another worker).
local base = KEYS[1]
local id, worker, now, action, delay, err =
  ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), ARGV[6]
local tk = base .. ':t:' .. id
if redis.call('HGET', tk, 'owner') ~= worker or not redis.call('ZSCORE', base .. ':inflight', id) then
  return 'lost'
end
redis.call('ZREM', base .. ':inflight', id)
redis.call('HDEL', tk, 'owner')
if action == 'release' then
  redis.call('HINCRBY', tk, 'attempts', -1)
  redis.call('HSET', tk, 'ready_at', now)
  redis.call('LPUSH', base .. ':ready', id)
  return 'released'
end
redis.call('HSET', tk, 'last_error', err, 'failed_at', now)
local attempts = tonumber(redis.call('HGET', tk, 'attempts'))
if action == 'dead' or attempts >= tonumber(ARGV[7]) then
  redis.call('ZADD', base .. ':dead', now, id)
  redis.call('HINCRBY', base .. ':stats', 'dead', 1)
  return 'dead'
end
local due = now + delay
redis.call('HSET', tk, 'ready_at', due)
redis.call('ZADD', base .. ':scheduled', due, id)
return 'retry'
