-- usage increments of 1, spread over the keys of the file given (one key:
-- every request on the same hot counter row).
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local c = require("common")
local reqs = {}

function init(args)
  local keys = c.keys(args[1])
  for i, k in ipairs(keys) do
    reqs[i] = c.post("/api/usage", string.format(
      '{"license_key":"%s","feature":"api_calls","quantity":1}', k))
  end
end

function request() return reqs[math.random(#reqs)] end
done = c.done
