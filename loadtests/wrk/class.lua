-- wrk script for the `max` scenario: maximum throughput of one endpoint class, closed loop.
--
--   WRK_EP      baseline | session | event | webhook | admin_read | analytics
--   WRK_DATA    data file for the endpoint (see lib/fixtures.py):
--                 session: one customer token per line (distinct customers)
--                 event:   "session_id token" per line
--                 webhook: "stripe-signature<TAB>body" per line (unique event ids)
--   WRK_PK, WRK_SK, WRK_TENANT, WRK_FLOW   keys and ids from fixtures.json
--   WRK_OUT     file the JSON result is written to
--   WRK_THREADS the -t given to wrk (default 2): each thread walks its own slice of the data
--
-- Each thread walks its own slice of the data file (no two threads send the same line), and
-- counts the lines it sends a second time (`lines_reused`: its slice ran out, so e.g. a
-- session token starts a second session of that customer, which supersedes the first). `response` counts statuses per
-- thread; `done` merges them and writes one JSON object with requests, duration, socket
-- errors, status counts, whether 429/503 carried Retry-After, and latency percentiles (us).

local ep = os.getenv("WRK_EP") or "baseline"
local data_file = os.getenv("WRK_DATA")
local pk = os.getenv("WRK_PK") or ""
local sk = os.getenv("WRK_SK") or ""
local tenant = os.getenv("WRK_TENANT") or ""
local flow = os.getenv("WRK_FLOW") or ""
local out = os.getenv("WRK_OUT") or "wrk.json"

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
  table.insert(threads, thread)
end

local lines = {}
local pos = 1
local first = 1
local last = 0
local wrapped = false
local counter = 0
statuses = {}
no_retry_after = 0
lines_reused = 0

local function load(path)
  local t = {}
  if path and path ~= "" then
    for l in io.lines(path) do
      if #l > 0 then t[#t + 1] = l end
    end
  end
  return t
end

function init(args)
  lines = load(data_file)
  -- Disjoint slices, one per thread (a file shorter than the thread count is shared).
  local n = tonumber(os.getenv("WRK_THREADS") or "2") or 2
  local per = math.floor(#lines / n)
  if per >= 1 then
    first = per * ((tid or 1) - 1) + 1
    last = first + per - 1
  else
    first, last = 1, #lines
  end
  pos = first
end

-- Note: wrk.format(method, path, headers, body) replaces wrk.headers with `headers`, so
-- every request below names all of its headers.
local function next_line()
  local l = lines[pos]
  if wrapped then lines_reused = lines_reused + 1 end
  pos = pos + 1
  if pos > last then
    pos = first
    wrapped = true
  end
  return l
end

local admin_paths = { "/v1/tenant", "/v1/flows", "/v1/flows/" .. flow }
-- A session's reason_selected events alternate between the flow's two reasons, so each one
-- changes the session's reason (a write), never a repeat the writer could skip.
local event_bodies = {
  'reason',
  '"type":"offer_shown","offer_id":"disc20"',
  '"type":"feedback","text":"wrk max throughput feedback"',
}
local reasons = { "too_expensive", "missing_features" }
local flip = {}

function request()
  counter = counter + 1
  if ep == "session" then
    return wrk.format("POST", "/v1/widget/sessions",
      { ["Authorization"] = "Bearer " .. pk, ["X-Customer-Token"] = next_line(),
        ["Content-Type"] = "application/json" }, "{}")
  elseif ep == "event" then
    local l = next_line()
    local sid, tok = l:match("^(%S+) (%S+)$")
    local ev = event_bodies[counter % #event_bodies + 1]
    if ev == 'reason' then
      flip[sid] = not flip[sid]
      ev = '"type":"reason_selected","reason_code":"' .. reasons[flip[sid] and 1 or 2] .. '"'
    end
    local body = '{"client_event_id":"w' .. (tid or 1) .. "_" .. counter .. "_" .. os.time()
      .. '",' .. ev .. "}"
    return wrk.format("POST", "/v1/widget/sessions/" .. sid .. "/events",
      { ["Authorization"] = "Bearer " .. pk, ["X-Customer-Token"] = tok,
        ["Content-Type"] = "application/json" }, body)
  elseif ep == "webhook" then
    local l = next_line()
    local sig, body = l:match("^([^\t]+)\t(.*)$")
    return wrk.format("POST", "/v1/webhooks/stripe/" .. tenant,
      { ["Stripe-Signature"] = sig, ["Content-Type"] = "application/json" }, body)
  elseif ep == "admin_read" then
    return wrk.format("GET", admin_paths[counter % #admin_paths + 1],
      { ["Authorization"] = "Bearer " .. sk })
  elseif ep == "analytics" then
    return wrk.format("GET", "/v1/analytics/summary?from=2026-01-01&to=2026-12-31",
      { ["Authorization"] = "Bearer " .. sk })
  else
    return wrk.format("GET", "/healthz")
  end
end

function response(status, headers, body)
  local k = tostring(status)
  statuses[k] = (statuses[k] or 0) + 1
  if (status == 429 or status == 503) and headers["Retry-After"] == nil
      and headers["retry-after"] == nil then
    no_retry_after = no_retry_after + 1
  end
end

function done(summary, latency, requests)
  local merged = {}
  local missing = 0
  local reused = 0
  for _, t in ipairs(threads) do
    reused = reused + (t:get("lines_reused") or 0)
    local s = t:get("statuses")
    if s then
      for k, v in pairs(s) do merged[k] = (merged[k] or 0) + v end
    end
    missing = missing + (t:get("no_retry_after") or 0)
  end
  local parts = {}
  for k, v in pairs(merged) do parts[#parts + 1] = string.format('"%s":%d', k, v) end
  local e = summary.errors
  local f = io.open(out, "w")
  f:write(string.format(
    '{"ep":"%s","requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"status_errors":%d,'
      .. '"statuses":{%s},"shed_without_retry_after":%d,"lines_reused":%d,'
      .. '"latency_us":{"p50":%d,"p90":%d,"p95":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    ep, summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.timeout, e.status,
    table.concat(parts, ","), missing, reused,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean))
  f:close()
end
