-- The Express peer's own request shapes (its README), with done() added:
-- validate / usage / heartbeat chosen by the second argument.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local c = require("common")

function init(args)
  local kind = args[2]
  local pick, key, n = c.keys(args[1])
  request = c.cached(pick, key, n, function(k, i)
    if kind == "validate" then
      return c.post("/api/validate", string.format(
        '{"licenseKey":"%s","installationId":"wrk-%d","domain":"app.example.com","version":"1.0.0"}', k, i))
    elseif kind == "heartbeat" then
      return c.post("/api/heartbeat", string.format(
        '{"licenseKey":"%s","installationId":"wrk-%d","version":"1.0.0"}', k, i))
    end
    return c.post("/api/usage", string.format(
      '{"licenseKey":"%s","feature":"api_calls","count":1}', k))
  end)
end
done = c.done
