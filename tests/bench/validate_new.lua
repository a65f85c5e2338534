-- validate for a new installation on every call: activates a seat (one
-- insert) each time.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local c = require("common")
local pick, key, n, tag

function init(args)
  pick, key = c.keys(args[1])
  n = 0
  tag = string.format("%x", math.random(0, 0xffffff))
end

function request()
  n = n + 1
  return c.post("/api/validate", string.format(
    '{"license_key":"%s","installation_id":"n-%s-%d","version":"1.0.0"}',
    key(pick()), tag, n))
end
done = c.done
