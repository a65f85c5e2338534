-- The Express peer's own request shapes (its README), with done() added:
-- validate / usage / heartbeat chosen by the second argument.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local c = require("common")
local reqs = {}

function init(args)
  local keys = c.keys(args[1])
  local kind = args[2]
  for i, k in ipairs(keys) do
    if kind == "validate" then
      reqs[i] = c.post("/api/validate", string.format(
        '{"licenseKey":"%s","installationId":"wrk-%d","domain":"app.example.com","version":"1.0.0"}', k, i))
    elseif kind == "heartbeat" then
      reqs[i] = c.post("/api/heartbeat", string.format(
        '{"licenseKey":"%s","installationId":"wrk-%d","version":"1.0.0"}', k, i))
    else
      reqs[i] = c.post("/api/usage", string.format(
        '{"licenseKey":"%s","feature":"api_calls","count":1}', k))
    end
  end
end

function request() return reqs[math.random(#reqs)] end
done = c.done
