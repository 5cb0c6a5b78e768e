-- wrk script for the benchmark: POST the payload file as application/json and,
-- when wrk finishes, print one line "BENCH_JSON {...}" with the totals and the
-- latency percentiles (µs) that wrk's own --latency table does not show (p99.9).
--   BENCH_PAYLOAD=bench/payload.json wrk -t1 -c64 -d10s --latency -s bench/post.lua URL
local path = os.getenv("BENCH_PAYLOAD") or "payload.json"
local f = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"p99_9":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
