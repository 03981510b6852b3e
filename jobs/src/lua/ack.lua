-- KEYS[1] = queue base key. ARGV: worker, now_ms, done retention ms, max done records, ids...
-- Completes tasks leased by `worker`: the payload is deleted at once and only the id is kept
-- in `done` for a bounded time and count, so Redis memory stays bounded.
local base = KEYS[1]
local worker, now, keep, maxdone = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local inflight, done = base .. ':inflight', base .. ':done'
local acked = 0
for i = 5, #ARGV do
  local id = ARGV[i]
  local tk = base .. ':t:' .. id
  if redis.call('HGET', tk, 'owner') == worker then
    redis.call('ZREM', inflight, id)
    redis.call('DEL', tk)
    redis.call('ZADD', done, now, id)
    acked = acked + 1
  end
end
redis.call('ZREMRANGEBYSCORE', done, '-inf', now - keep)
local extra = redis.call('ZCARD', done) - maxdone
if extra > 0 then redis.call('ZREMRANGEBYRANK', done, 0, extra - 1) end
redis.call('HINCRBY', base .. ':stats', 'done', acked)
return acked
