-- wrk script: prints one JSON line with throughput, latency percentiles (us) and errors.
-- Optional: WRK_APP=name sends "X-App: name" (for the map/variable configurations).
local app = os.getenv("WRK_APP")
if app and #app > 0 then
  wrk.headers["X-App"] = app
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"rps":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"p999_us":%d,"mean_us":%.1f,"max_us":%d,"err_connect":%d,"err_read":%d,' ..
    '"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
