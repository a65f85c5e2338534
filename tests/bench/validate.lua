-- validate for an existing installation: key i always with installation
-- "b-i", so after the warm-up pass every call finds its seat.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local c = require("common")
local reqs = {}

function init(args)
  local keys = c.keys(args[1])
  for i, k in ipairs(keys) do
    reqs[i] = c.post("/api/validate", string.format(
      '{"license_key":"%s","installation_id":"b-%d","version":"1.0.0","domain":"app.example.com"}', k, i))
  end
end

function request() return reqs[math.random(#reqs)] end
done = c.done
