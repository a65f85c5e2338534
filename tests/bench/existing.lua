-- validate or heartbeat (second argument) for an existing installation:
-- each key always with installation "b-" .. the key's last 16 characters,
-- which bench.sh activated in SQL.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local c = require("common")

function init(args)
  local path = "/api/" .. (args[2] or "validate")
  local extra = path == "/api/validate" and ',"domain":"app.example.com"' or ""
  local pick, key, n = c.keys(args[1])
  request = c.cached(pick, key, n, function(k)
    return c.post(path, string.format(
      '{"license_key":"%s","installation_id":"b-%s","version":"1.0.0"%s}',
      k, k:sub(-16), extra))
  end)
end
done = c.done
