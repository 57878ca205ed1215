-- wrk script of the harness: which ids to ask for, what came back, and a JSON summary.
--   wrk ... -s bench/load.lua <url> -- <uniform|zipf|hot> <ids> <zipf exponent> <seed> <polite|eager>
-- eager (the default): a connection asks again as soon as it is answered, whatever the status
-- and Retry-After say, as load balancers, retrying apps and most load tests do.
-- polite: like a client that follows the contract, a connection answered 503 waits
-- `Retry-After` seconds plus up to as much again of random jitter before its next request
-- (wrk's `delay()`; wrk gives the script no connection identity, so the wait goes to the
-- thread's next request, which keeps the count right). Without jitter every refused client of
-- a burst comes back in the same millisecond, a synchronised herd no real fleet produces.
-- Each request carries an X-Request-ID that the target echoes, so each answer is timed on
-- the client's clock per status: 200s and refusals (503, 429) are reported apart, and a
-- refusal without Retry-After is counted.
-- Ids are P00001..P<ids>: uniform, Zipf-distributed (rank k drawn with weight 1/k^s, so a
-- few hot keys take most of the traffic), or P00001 only (hot). done() prints one line
-- `BENCH_JSON {...}` with counts, latency percentiles (microseconds) and a per-status tally,
-- which the harness parses.

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

local counter = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("thread_index", counter)
  table.insert(threads, thread)
end

local dist, cdf, n_ids
statuses = {}
degraded = 0
ok_us = {}
refused_us = {}
no_retry_after = 0
local sent = {}
local sequence = 0
local backoffs = 0
local polite = false

function init(args)
  dist = args[1] or "uniform"
  n_ids = tonumber(args[2] or "10000")
  local s = tonumber(args[3] or "1.1")
  math.randomseed(tonumber(args[4] or "1") * 1000 + (thread_index or 0))
  polite = args[5] == "polite"
  if dist == "zipf" then
    cdf = {}
    local total = 0
    for k = 1, n_ids do
      total = total + 1 / k ^ s
      cdf[k] = total
    end
    for k = 1, n_ids do
      cdf[k] = cdf[k] / total
    end
  end
end

local function pick()
  if dist == "hot" then
    return 1
  end
  if dist ~= "zipf" then
    return math.random(n_ids)
  end
  local u, lo, hi = math.random(), 1, n_ids
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return lo
end

function request()
  sequence = sequence + 1
  local id = string.format("bench-%d-%d", thread_index or 0, sequence)
  sent[id] = now_us()
  return wrk.format("GET", string.format("/product-details/P%05d", pick()),
    {["X-Request-ID"] = id})
end

function delay()
  if backoffs > 0 then
    backoffs = backoffs - 1
    return 1000 + math.random(0, 1000)
  end
  return 0
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local id = headers["X-Request-ID"] or headers["x-request-id"]
  local started = id and sent[id]
  if started then
    sent[id] = nil
    local took = now_us() - started
    if status == 200 then
      ok_us[#ok_us + 1] = took
    elseif status == 503 or status == 429 then
      refused_us[#refused_us + 1] = took
    end
  end
  if status == 503 or status == 429 then
    local retry_after = headers["Retry-After"] or headers["retry-after"]
    if not retry_after then
      no_retry_after = no_retry_after + 1
    elseif polite and status == 503 then
      backoffs = backoffs + 1
    end
  end
  -- A 200 whose "degraded" is not {} is a partial answer (one optional part missing).
  if status == 200 and body and not string.find(body, '"degraded":%s*{}') then
    degraded = degraded + 1
  end
end

local function percentiles(samples)
  table.sort(samples)
  local n = #samples
  local function at(p)
    if n == 0 then return 0 end
    return samples[math.max(1, math.ceil(n * p / 100))]
  end
  return string.format('{"n": %d, "p50": %d, "p99": %d, "max": %d}', n, at(50), at(99), at(100))
end

function done(summary, latency, requests)
  local tally, partial, ok, refused, bare = {}, 0, {}, {}, 0
  for _, thread in ipairs(threads) do
    for _, v in ipairs(thread:get("ok_us")) do ok[#ok + 1] = v end
    for _, v in ipairs(thread:get("refused_us")) do refused[#refused + 1] = v end
    for status, count in pairs(thread:get("statuses")) do
      tally[tostring(status)] = (tally[tostring(status)] or 0) + count
    end
    partial = partial + thread:get("degraded")
    bare = bare + thread:get("no_retry_after")
  end
  local parts = {}
  for status, count in pairs(tally) do
    table.insert(parts, string.format('"%s": %d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"duration_us": %d, "requests": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"min": %d, "mean": %.1f, "max": %d, "p50": %d, "p90": %d, "p99": %d, ' ..
    '"p999": %d}, "statuses": {%s}, "degraded": %d, "ok_us": %s, "refused_us": %s, ' ..
    '"no_retry_after": %d}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), table.concat(parts, ", "), partial,
    percentiles(ok), percentiles(refused), bare))
end
