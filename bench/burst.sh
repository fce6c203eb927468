# bench/burst.sh — section 7, a burst of connections onto a running app (sourced by bench/run;
# alone: `BENCH_SECTIONS=burst bench/run`; knobs BURST_CONNS (10000), BURST_RUNS (3)).
#
# One running test app (template ondemand-bburst@.service, the test app's default listen backlog
# of 128) behind one nginx (2 workers): port A proxies to it with a plain upstream (nginx's own
# connect), port B through the module (`ondemand`, the app already warm). h2load --h1 opens
# BURST_CONNS connections at once, one request each, on A, then on B, BURST_RUNS times.
# Counted: 2xx, 5xx and failed requests (h2load), and `connect() ... (11: Resource temporarily
# unavailable)` lines in nginx's error log (EAGAIN on the app's full backlog: a 502 each).

section_burst() {
  if [ "$HAVE_OD" != 1 ]; then
    blog "burst: SKIPPED: needs helperd (build/bin/ondemand-helperd)"
    return 0
  fi
  if ! command -v h2load >/dev/null; then
    blog "burst: SKIPPED: needs h2load (nghttp2-client)"
    return 0
  fi
  local n=${BURST_CONNS:-10000} runs=${BURST_RUNS:-3} app=bburst pa pb r v port out eagain log
  install_unit ondemand-bburst@.service "$(testapp_unit "$WORK/apps/%i.sock" %i 0 simple)"
  units_reload
  pa=$(free_port)
  pb=$(free_port)
  nginx_write burst 2 1m "
    upstream plain { server unix:$WORK/apps/$app.sock; }
    upstream $app { server unix:$WORK/apps/$app.sock; ondemand unit=ondemand-bburst@$app.service idle_timeout=0; }
    server {
        listen 127.0.0.1:$pa reuseport backlog=16384;
        location / { proxy_pass http://plain; }
    }
    server {
        listen 127.0.0.1:$pb reuseport backlog=16384;
        location / { ondemand_app $app; proxy_pass http://$app; }
    }"
  nginx_start burst "$pa"
  log=$WORK/nginx-burst/error.log
  curl -sf -o /dev/null --max-time 30 "http://127.0.0.1:$pb/" || bdie "burst: the app did not start"
  ulimit -n "$(ulimit -Hn)"
  for (( r = 1; r <= runs; r++ )); do
    for v in plain ondemand; do
      port=$pa
      [ "$v" = ondemand ] && port=$pb
      local before
      before=$(grep -c "Resource temporarily unavailable" "$log" || true)
      out=$(h2load --h1 -n "$n" -c "$n" -T 60 "http://127.0.0.1:$port/" 2>&1) || true
      eagain=$(( $(grep -c "Resource temporarily unavailable" "$log" || true) - before ))
      local line codes
      line=$(sed -nE 's/^requests: ([0-9]+) total, ([0-9]+) started, ([0-9]+) done, ([0-9]+) succeeded, ([0-9]+) failed.*/\1 \2 \3 \4 \5/p' <<<"$out")
      codes=$(sed -nE 's/^status codes: ([0-9]+) 2xx, ([0-9]+) 3xx, ([0-9]+) 4xx, ([0-9]+) 5xx.*/\1 \2 \3 \4/p' <<<"$out")
      local total started done ok failed c2 c3 c4 c5
      read -r total started done ok failed <<<"${line:-0 0 0 0 0}"
      read -r c2 c3 c4 c5 <<<"${codes:-0 0 0 0}"
      blog "burst: $v, $n connections, round $r: 2xx $c2, 5xx $c5, failed $failed, EAGAIN log lines $eagain"
      emit burst "\"variant\":\"$v\",\"connections\":$n,\"round\":$r,\"done\":$done,\"2xx\":$c2,\"5xx\":$c5,\"failed\":$failed,\"eagain_log_lines\":$eagain"
      sleep 1 # let TIME_WAIT and the app settle
    done
  done
  nginx_stop burst
  stop_units "ondemand-bburst@$app.service"
}
