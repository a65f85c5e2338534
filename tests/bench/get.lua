-- a GET of the path given as the first argument (404 path, ceiling, floor).
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local c = require("common")
local req

function init(args) req = wrk.format("GET", args[1]) end
function request() return req end
done = c.done
