-- GraphQL requests for wrk: POST bodies read from a file, cycled; a JSON summary at the end.
--
--   wrk -t1 -c50 -d10s -s graphql.lua http://127.0.0.1:8000/graphql -- BODIES [nonce] [get]
--
-- BODIES holds one request per line: a JSON body for POST, or a query string for GET
-- ("get"). Each thread starts at its own line. With "nonce", every "@NONCE@" in a line is
-- replaced by a number no other request of the run uses, so that no two requests carry the
-- same variables (a whole-response cache never hits). Every answer that is not a 200, or
-- whose body holds "errors", is counted as bad.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  lines = {}
  for line in io.lines(args[1]) do
    if #line > 0 then
      table.insert(lines, line)
    end
  end
  nonce = false
  get = false
  for i = 2, #args do
    if args[i] == "nonce" then nonce = true end
    if args[i] == "get" then get = true end
  end
  index = (id * 7919) % #lines
  sent = 0
  bad = 0
  path = wrk.path
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "application/json"
end

function request()
  index = index % #lines + 1
  local line = lines[index]
  sent = sent + 1
  if nonce then
    line = line:gsub("@NONCE@", tostring(id * 1000000000 + sent))
  end
  if get then
    return wrk.format("GET", path .. "?" .. line, nil, nil)
  end
  return wrk.format("POST", path, nil, line)
end

function response(status, headers, body)
  if status ~= 200 or body:find('"errors"', 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local bad_total = 0
  for _, thread in ipairs(threads) do
    bad_total = bad_total + thread:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    '\nWRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"bad":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, bad_total,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
