-- wrk script for benchmarks/serving.py: POSTs the JSON bodies of a file (one per line, given
-- after `--`) in turn, and prints one `BENCH {...}` JSON line that serving.py parses.
local bodies, i = {}, 0

function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
end

function request()
  i = i % #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[i])
end

-- errors: connect, read and write failures and non-2xx/3xx answers; timeouts apart.
function done(s, lat, req)
  local e = s.errors
  io.write(string.format('BENCH {"requests": %d, "seconds": %.3f, "errors": %d, "timeouts": %d,'
    .. ' "p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n', s.requests, s.duration / 1e6,
    e.connect + e.read + e.write + e.status, e.timeout, lat:percentile(50) / 1e3,
    lat:percentile(99) / 1e3, lat.max / 1e3))
end
