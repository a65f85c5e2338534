-- Shared by licd's wrk scripts, with done() printing one machine-readable
-- line.
--
-- Keys are read by random seek from a file of fixed-width records (bench.sh
-- pads each key file with spaces), not loaded in init(). wrk runs each
-- thread's init() in its main thread, one after the other, and starts a
-- thread as soon as its own init() returns but its clock only after the
-- last: loading a million keys (586 MB) into the second thread let the
-- first run unmeasured for seconds and inflated req/s at a million licenses
-- by 2x. With a seek per request init() costs nothing at any scale.
-- Formatted requests are kept per thread up to 100,000 keys, so at the
-- default scale wrk spends its CPU on I/O, not Lua; BENCH_NOMEMO set keeps
-- none, so that a stack of 10,000 compared with one of a million costs wrk
-- the same per request (its CPU is taken from the servers').
local M = {}

M.headers = { ["Content-Type"] = "application/json" }

function M.post(path, body)
  return wrk.format("POST", path, M.headers, body)
end

-- keys(path) returns pick(): a random key's 1-based index, and key(i):
-- that key, read from the file.
function M.keys(path)
  local f = assert(io.open(path, "rb"), "cannot open " .. path)
  local first = assert(f:read("*l"), "no keys in " .. path)
  local rec = #first + 1
  local size = f:seek("end")
  assert(size % rec == 0, path .. ": records are not of fixed width")
  local n = size / rec
  f:setvbuf("no")
  local addr = tonumber(tostring({}):match("0x(%x+)") or "0", 16) or 0
  math.randomseed(os.time() + addr % 1000003)
  local function key(i)
    f:seek("set", (i - 1) * rec)
    return (f:read(rec - 1):gsub(" +$", ""))
  end
  return function() return math.random(n) end, key, n
end

-- cached(pick, key, n, make): a request() that builds make(key, i) for a
-- random key, remembering it when there are few enough keys. The index is
-- drawn first, so that a remembered request costs no read of the file.
function M.cached(pick, key, n, make)
  local memo = n <= 100000 and os.getenv("BENCH_NOMEMO") == nil and {} or nil
  return function()
    local i = pick()
    if memo == nil then return make(key(i), i) end
    local r = memo[i]
    if r == nil then r = make(key(i), i); memo[i] = r end
    return r
  end
end

function M.done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,' ..
    '"p999_ms":%.3f,"max_ms":%.3f,"errors":%d,"non2xx":%d}\n',
    summary.requests, summary.duration,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000,
    e.connect + e.read + e.write + e.timeout, e.status))
end

return M
