-- heartbeat of the installations the validate warm-up activated.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local c = require("common")
local reqs = {}

function init(args)
  local keys = c.keys(args[1])
  for i, k in ipairs(keys) do
    reqs[i] = c.post("/api/heartbeat", string.format(
      '{"license_key":"%s","installation_id":"b-%d","version":"1.0.1"}', k, i))
  end
end

function request() return reqs[math.random(#reqs)] end
done = c.done
