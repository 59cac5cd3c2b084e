-- POST /publish with bodies built per request: one event (batch 1) or {"events":[...]}.
-- Args: prefix, events per request, re-send percent, and optionally a number of events
-- (re-sends included) after which the thread stops. WRK_DELAY_MS in the environment
-- spaces the requests of each connection (a gentler, roughly fixed load). Event ids are prefix-tid-hash-n, unique per
-- thread; a re-send repeats an event this thread already sent, byte for byte (a duplicate).
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua"
local common = require("common")

local TOPICS = { "auth", "billing", "search", "checkout", "email", "audit", "api", "jobs" }
local prefix, batch, resend, limit
local sent = 0
resent = 0

setup = common.setup

function init(args)
  prefix = args[1] or "wrk"
  batch = tonumber(args[2]) or 1
  resend = (tonumber(args[3]) or 0) / 100
  limit = tonumber(args[4]) or 0
  math.randomseed(os.time() + (tid or 0) * 7919)
  wrk.method = "POST"
  wrk.path = "/publish"
  wrk.headers["Content-Type"] = "application/json"
end

-- 32-bit multiply with LuaJIT's bit library (a double holds the partial products exactly).
local function mul32(a, b)
  local lo = bit.band(a, 0xffff)
  local hi = bit.rshift(a, 16)
  return bit.tobit(lo * b + bit.lshift((hi * b) % 65536, 16))
end

-- The n-th event of this thread: always the same bytes for the same n (a re-send is a duplicate).
local function event(n)
  local ms = 1760000000000 + n * 7
  local seconds = math.floor(ms / 1000)
  return string.format(
    '{"topic":"%s","event_id":"%s-%d-%s-%x","timestamp":"%s.%03dZ","source":"bench-host-%d",' ..
      '"payload":{"level":"info","message":"user request handled","request_ms":%d,"path":"/api/v1/items","status":200}}',
    TOPICS[n % 8 + 1], prefix, tid or 0, bit.tohex(mul32(n + 1, 0x9e3779b1)), n,
    os.date("!%Y-%m-%dT%H:%M:%S", seconds), ms % 1000, n % 16, n % 997)
end

local function next_event()
  if sent > 0 and resend > 0 and math.random() < resend then
    resent = resent + 1
    return event(math.random(0, sent - 1))
  end
  sent = sent + 1
  return event(sent - 1)
end

function request()
  if limit > 0 and sent + resent >= limit then
    wrk.thread:stop()
  end
  if batch == 1 then
    return wrk.format(nil, nil, nil, next_event())
  end
  local events = {}
  for i = 1, batch do
    events[i] = next_event()
  end
  return wrk.format(nil, nil, nil, '{"events":[' .. table.concat(events, ",") .. "]}")
end

if tonumber((os.getenv("WRK_DELAY_MS") or "0")) > 0 then
  function delay()
    return tonumber(os.getenv("WRK_DELAY_MS"))
  end
end

function done(summary, latency, requests)
  common.done(summary, latency, common.sum("resent"))
end
