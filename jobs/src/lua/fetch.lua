-- KEYS[1] = queue base key. ARGV: now_ms, max tasks, lease_ms, worker, bound, max_attempts,
-- max_crashes (the worker's policy for this queue).
-- 1. promotes at most `bound` due scheduled tasks (bounded: apalis-redis 1.0 promotes all of
--    them with one unpack() and dies on backlogs over ~8,000);
-- 2. returns at most `bound` expired leases (crashed or killed workers) to the queue,
--    counting a crash; a task over its crash budget is dead-lettered instead of looping;
-- 3. leases up to `max tasks` ready tasks to `worker`, counting the attempt at lease time so
--    a task that kills its process still uses up attempts.
-- Returns {dead ids..., '|', id, kind, payload, attempts, outbox flag, ready_at, failed_at, ...}
-- (ready_at: when the task became due; failed_at: its last failure, '' when none).
local base = KEYS[1]
local now, n, lease, worker, bound =
  tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local max_attempts, max_crashes = tonumber(ARGV[6]), tonumber(ARGV[7])
local ready, sched, inflight, dead =
  base .. ':ready', base .. ':scheduled', base .. ':inflight', base .. ':dead'
local out = {}
local dead_ids = {}

local function bury(id, tk, reason)
  redis.call('HSET', tk, 'last_error', reason, 'failed_at', now)
  redis.call('ZADD', dead, now, id)
  table.insert(dead_ids, id)
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', sched, '-inf', now, 'LIMIT', 0, bound)) do
  redis.call('ZREM', sched, id)
  redis.call('RPUSH', ready, id)
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', inflight, '-inf', now, 'LIMIT', 0, bound)) do
  redis.call('ZREM', inflight, id)
  local tk = base .. ':t:' .. id
  if redis.call('EXISTS', tk) == 1 then
    local crashes = redis.call('HINCRBY', tk, 'crashes', 1)
    local owner = redis.call('HGET', tk, 'owner') or '?'
    if crashes >= max_crashes then
      bury(id, tk, 'lease expired ' .. crashes .. ' times (worker ' .. owner ..
        ' died or hung while running it); dead-lettered instead of crash-looping')
    else
      redis.call('HSET', tk, 'last_error', 'lease expired: worker ' .. owner .. ' died or hung')
      redis.call('HSET', tk, 'ready_at', now)
      redis.call('RPUSH', ready, id)
    end
  end
end

local leased = 0
local scanned = 0
while leased < n and scanned < bound do
  local id = redis.call('LPOP', ready)
  if not id then break end
  scanned = scanned + 1
  local tk = base .. ':t:' .. id
  local f = redis.call('HMGET', tk, 'kind', 'payload', 'outbox', 'ready_at', 'failed_at')
  if f[1] then
    local attempts = redis.call('HINCRBY', tk, 'attempts', 1)
    if attempts > max_attempts then
      bury(id, tk, 'exceeded ' .. max_attempts .. ' attempts')
    else
      redis.call('HSET', tk, 'owner', worker, 'started', now)
      redis.call('ZADD', inflight, now + lease, id)
      table.insert(out, id)
      table.insert(out, f[1])
      table.insert(out, f[2])
      table.insert(out, attempts)
      table.insert(out, f[3] or '0')
      table.insert(out, f[4] or '')
      table.insert(out, f[5] or '')
      leased = leased + 1
    end
  end
end

local res = dead_ids
table.insert(res, '|')
for _, v in ipairs(out) do table.insert(res, v) end
return res
