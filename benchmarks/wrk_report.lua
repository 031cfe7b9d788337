-- wrk script for benchmarks/serving.py: sends the lines of a file (given after `--`) in turn,
-- and prints one `BENCH {...}` JSON line that serving.py parses. Each line is a JSON body to
-- POST, or, when the second argument is GET, a path to GET (/flights/UA/236/2013-08-15).
local lines, i, get = {}, 0, false

function init(args)
  for line in io.lines(args[1]) do lines[#lines + 1] = line end
  get = args[2] == "GET"
end

function request()
  i = i % #lines + 1
  if get then
    return wrk.format("GET", lines[i])
  end
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, lines[i])
end

-- errors: connect, read and write failures and non-2xx/3xx answers; timeouts apart.
function done(s, lat, req)
  local e = s.errors
  io.write(string.format('BENCH {"requests": %d, "seconds": %.3f, "errors": %d, "timeouts": %d,'
    .. ' "p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n', s.requests, s.duration / 1e6,
    e.connect + e.read + e.write + e.status, e.timeout, lat:percentile(50) / 1e3,
    lat:percentile(99) / 1e3, lat.max / 1e3))
end
