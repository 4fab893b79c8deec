-- wrk -s mixed.lua URL, with REQUESTS=path/to/requests.txt (from make_bodies.py):
-- each request is drawn from that list (JSON and binary, batch 1-64, every
-- example model, some bad requests); every response's status is counted per
-- thread and printed by done() as one STATUS line, with one RESULT line.
local requests = {}

local function load()
  for line in io.lines(os.getenv("REQUESTS")) do
    local path, status, json_length, file = line:match("^(%S+) (%d+) (%d+) (%S+)$")
    local f = assert(io.open(file, "rb"))
    local body = f:read("*a")
    f:close()
    local headers = { ["Content-Type"] = "application/json" }
    if tonumber(json_length) > 0 then
      headers["Content-Type"] = "application/octet-stream"
      headers["Inference-Header-Content-Length"] = json_length
    end
    requests[#requests + 1] = wrk.format("POST", path, headers, body)
  end
end

local threads = {}
function setup(thread)
  thread:set("id", #threads + 1)
  threads[#threads + 1] = thread
end

function init(args)
  load()
  codes = {}
  math.randomseed(id * 7919)
end

function request()
  return requests[math.random(#requests)]
end

function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("codes")) do
      total[status] = (total[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(total) do
    parts[#parts + 1] = string.format("%d=%d", status, n)
  end
  table.sort(parts)
  io.write("STATUS " .. table.concat(parts, " ") .. "\n")
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_s=%.3f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, e.connect, e.read, e.write, e.timeout))
end
