-- usage increments of 1, spread over the keys of the file given (one key:
-- every request on the same hot counter row).
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local c = require("common")

function init(args)
  local pick, key, n = c.keys(args[1])
  request = c.cached(pick, key, n, function(k)
    return c.post("/api/usage", string.format(
      '{"license_key":"%s","feature":"api_calls","quantity":1}', k))
  end)
end
done = c.done
