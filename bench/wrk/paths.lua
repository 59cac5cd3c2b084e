-- GET requests spread over a list of paths, one a line in the file given as the first
-- argument (the benchmark writes it: random cursors, since/until windows, order=desc).
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua"
local common = require("common")

local paths = {}
setup = common.setup

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then table.insert(paths, line) end
  end
  math.randomseed(os.time() + (tid or 0) * 7919)
end

function request()
  return wrk.format("GET", paths[math.random(1, #paths)])
end

function done(summary, latency, requests)
  common.done(summary, latency, 0)
end
