-- Shared by the benchmark's wrk scripts: thread numbering and the JSON summary that
-- bench/wrk.ts parses (wrk runs one Lua state per thread, plus one for setup and done).
local M = {}

M.threads = {}

-- Gives each thread its number as the global `tid`, so per-thread ids never collide.
function M.setup(thread)
  thread:set("tid", #M.threads)
  table.insert(M.threads, thread)
end

-- Sums a numeric global that every thread keeps (read in done()).
function M.sum(name)
  local total = 0
  for _, thread in ipairs(M.threads) do
    total = total + (tonumber(thread:get(name)) or 0)
  end
  return total
end

-- Prints one line `WRK_JSON {...}`: counts, latency percentiles in microseconds, and this
-- process's own CPU time (utime + stime in clock ticks from /proc/self/stat), so the
-- benchmark can say what the load generator cost.
function M.done(summary, latency, extra)
  local stat = ""
  local file = io.open("/proc/self/stat", "r")
  if file then
    stat = file:read("*a")
    file:close()
  end
  local after = stat:match("%) (.*)") or ""
  local fields = {}
  for field in after:gmatch("%S+") do
    table.insert(fields, field)
  end
  local ticks = (tonumber(fields[12]) or 0) + (tonumber(fields[13]) or 0)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
      '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
      '"max_us":%d,"mean_us":%d,"cpu_ticks":%d,"extra":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    ticks, extra or 0))
end

return M
