-- POST bodies encoded beforehand (protobuf, snappy: what Lua cannot build), read from a
-- pool file of `<length>\n<bytes>` entries. Args: pool file, path, content type, threads.
-- Thread t sends entries t, t + threads, ...; past the end it starts again (those
-- requests re-send events: counted as `extra` in the summary, and duplicates to the service).
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua"
local common = require("common")

local bodies = {}
local index = 0
local threads = 1
local passes = 0
wrapped = 0
setup = common.setup

function init(args)
  local file = assert(io.open(args[1], "rb"))
  while true do
    local length = file:read("*l")
    if length == nil then break end
    table.insert(bodies, file:read(tonumber(length)))
  end
  file:close()
  wrk.method = "POST"
  wrk.path = args[2]
  wrk.headers["Content-Type"] = args[3]
  threads = tonumber(args[4]) or 1
  index = (tid or 0) + 1
end

function request()
  if index > #bodies then
    index = (tid or 0) + 1
    passes = passes + 1
  end
  if passes > 0 then wrapped = wrapped + 1 end
  local body = bodies[index]
  index = index + threads
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  common.done(summary, latency, common.sum("wrapped"))
end
