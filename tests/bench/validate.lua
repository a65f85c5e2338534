-- validate for an existing installation: each key always with installation
-- "b-" .. the key's last 16 characters, which bench.sh activated in SQL.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local c = require("common")
local reqs = {}

function init(args)
  local keys = c.keys(args[1])
  for i, k in ipairs(keys) do
    local iid = "b-" .. k:sub(-16)
    reqs[i] = c.post("/api/validate", string.format(
      '{"license_key":"%s","installation_id":"%s","version":"1.0.0","domain":"app.example.com"}', k, iid))
  end
end

function request() return reqs[math.random(#reqs)] end
done = c.done
