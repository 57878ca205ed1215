-- wrk script of the harness: which ids to ask for, what came back, and a JSON summary.
--   wrk ... -s bench/load.lua <url> -- <uniform|zipf> <ids> <zipf exponent> <seed>
-- Ids are P00001..P<ids>: uniform, or Zipf-distributed (rank k drawn with weight 1/k^s, so a
-- few hot keys take most of the traffic). done() prints one line `BENCH_JSON {...}` with
-- counts, latency percentiles (microseconds) and a per-status tally, which the harness parses.

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

function init(args)
  dist = args[1] or "uniform"
  n_ids = tonumber(args[2] or "10000")
  local s = tonumber(args[3] or "1.1")
  math.randomseed(tonumber(args[4] or "1") * 1000 + (thread_index or 0))
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
  return wrk.format("GET", string.format("/product-details/P%05d", pick()))
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  -- A 200 whose "degraded" is not {} is a partial answer (one optional part missing).
  if status == 200 and body and not string.find(body, '"degraded":%s*{}') then
    degraded = degraded + 1
  end
end

function done(summary, latency, requests)
  local tally, partial = {}, 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      tally[tostring(status)] = (tally[tostring(status)] or 0) + count
    end
    partial = partial + thread:get("degraded")
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
    '"p999": %d}, "statuses": {%s}, "degraded": %d}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), table.concat(parts, ", "), partial))
end
