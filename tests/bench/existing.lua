-- validate or heartbeat (second argument) for an existing installation:
-- each key always with installation "b-" .. the key's last 16 characters,
-- which bench.sh activated in SQL.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local c = require("common")
local reqs = {}

function init(args)
  local keys = c.keys(args[1])
  local path = "/api/" .. (args[2] or "validate")
  local extra = path == "/api/validate" and ',"domain":"app.example.com"' or ""
  for i, k in ipairs(keys) do
    reqs[i] = c.post(path, string.format(
      '{"license_key":"%s","installation_id":"b-%s","version":"1.0.0"%s}',
      k, k:sub(-16), extra))
  end
end

function request() return reqs[math.random(#reqs)] end
done = c.done
