# bench/herd.sh — section 3, a herd of concurrent requests on one cold app (sourced by bench/run).
#
# For each size in HERD_SIZES and each round: a fresh cold app (template ondemand-bherd@.service,
# 2000 ms start-up, the test app's default listen backlog of 128) gets N requests at once through
# nginx (2 workers, reuseport) from bench/tools/herd.py, which opens the N connections first,
# then sends every request, samples the workers' RSS while the requests are held, and reads
# every answer. Variants: `paced` = the module's default release (release=32 per ms per worker,
# plus connect() retries on a full backlog); `unpaced` = release=100000 (everything at once).
# Checked: all 200, one StartUnit (helperd's log), one app process (X-Pid).

section_herd() {
  if [ "$HAVE_OD" != 1 ]; then
    blog "herd: SKIPPED: needs helperd (build/bin/ondemand-helperd)"
    return 0
  fi
  local n v r app port ups='' runs=$HERD_RUNS
  install_unit ondemand-bherd@.service "$(testapp_unit "$WORK/apps/%i.sock" %i 2000 simple)"
  units_reload
  for n in $HERD_SIZES; do
    for v in paced unpaced; do
      for (( r = 1; r <= runs; r++ )); do
        app=h$n$v$r
        local rel=''; [ "$v" = unpaced ] && rel='release=100000'
        ups+="    upstream $app { server unix:$WORK/apps/$app.sock; ondemand unit=ondemand-bherd@$app.service start_timeout=60s queue=20000 $rel; }
"
      done
    done
  done
  port=$(free_port)
  nginx_write herd 2 1m "
$ups
    server {
        listen 127.0.0.1:$port reuseport backlog=4096;
        location / { ondemand_app \$http_x_app; proxy_pass http://\$http_x_app; }
    }"
  nginx_start herd "$port"
  local workers
  workers=$(nginx_workers herd | paste -sd, -)

  for n in $HERD_SIZES; do
    for (( r = 1; r <= runs; r++ )); do
      for v in paced unpaced; do
        app=h$n$v$r
        blog "herd: $n requests, $v release, round $r"
        local out starts
        out=$("$PY" "$TOP/bench/tools/herd.py" --port "$port" --app "$app" --n "$n" \
          --workers "$workers" --timeout 120) || out='{}'
        wait_until 2000 grep -q "app $app ready" "$WORK/helperd.log" || true
        starts=$(grep -c "StartUnit .* for app $app " "$WORK/helperd.log" || true)
        emit herd "\"size\":$n,\"variant\":\"$v\",\"round\":$r,\"start_units\":${starts:-0},\"result\":$out"
        stop_units "ondemand-bherd@$app.service"
        sleep 1 # let the closed connections' TIME_WAIT/memory settle before the next herd
      done
    done
  done
  grep -c "connect() failed (11" "$WORK/nginx-herd/error.log" > "$WORK/herd-eagain" || true
  emit herd "\"summary\":true,\"eagain_log_lines\":$(cat "$WORK/herd-eagain")"
  nginx_stop herd
}
