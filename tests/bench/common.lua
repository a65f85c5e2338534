-- Shared by licd's wrk scripts: requests are pre-formatted once per thread
-- (wrk's CPU goes to I/O, not Lua), keys come from the file named by the
-- first script argument, and done() prints one machine-readable line.
local M = {}

function M.keys(path)
  local f = assert(io.open(path, "r"), "cannot open " .. path)
  local keys = {}
  for line in f:lines() do
    if #line > 0 then keys[#keys + 1] = line end
  end
  f:close()
  assert(#keys > 0, "no keys in " .. path)
  local addr = tonumber(tostring({}):match("0x(%x+)") or "0", 16) or 0
  math.randomseed(os.time() + addr % 1000003)
  return keys
end

M.headers = { ["Content-Type"] = "application/json" }

function M.post(path, body)
  return wrk.format("POST", path, M.headers, body)
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
