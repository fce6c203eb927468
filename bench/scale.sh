# bench/scale.sh — section 4, many configured apps (sourced by bench/run).
#
# For each N in SCALE_SIZES: an nginx configuration with N ondemand upstreams (one server block,
# `ondemand_app $http_x_app`), zone sized at 384 bytes per app (at least 1m). Measured:
#   nginx -t time (SCALE_RUNS times), reload time (SIGHUP until a request sees the new
#   configuration; SCALE_RUNS times), the zone's resident size in a worker (/proc/PID/smaps), the
#   workers' and helperd's RSS, and the cold-start overhead of SCALE_COLD_RUNS apps picked across
#   the configuration (as in section 2: request -> StartUnit + socket accepts -> answer).

# scale_conf N GEN: writes the configuration for N apps; GEN is answered at /__gen.
scale_conf() {
  local n=$1 gen=$2 port=$3 zone_kb f=$WORK/scale-upstreams-$1.conf
  zone_kb=$(( n * 384 / 1024 )); [ "$zone_kb" -lt 1024 ] && zone_kb=1024
  if [ ! -f "$f" ]; then
    local i
    for (( i = 1; i <= n; i++ )); do
      printf '    upstream s%da%d { server unix:%s/apps/s%da%d.sock; ondemand unit=ondemand-bscale@s%da%d.service; }\n' \
        "$n" "$i" "$WORK" "$n" "$i" "$n" "$i"
    done > "$f"
  fi
  nginx_write "scale$n" 2 "${zone_kb}k" "
    include $f;
    server {
        listen 127.0.0.1:$port;
        location = /__gen { return 200 \"$gen\"; }
        location / { ondemand_app \$http_x_app; proxy_pass http://\$http_x_app; }
    }"
  echo "$zone_kb"
}

# The zone's mapping in a worker: "size_kb rss_kb" (the shared mapping closest to the zone size).
zone_smaps() {
  local pid=$1 zone_kb=$2
  awk -v z="$zone_kb" '
    /^[0-9a-f]+-[0-9a-f]+ / { shared = ($2 ~ /s/) && ($0 ~ /dev\/zero|SYSV|anon_inode/) }
    shared && /^Size:/ { size = $2 }
    shared && /^Rss:/ { d = size - z; if (d < 0) d = -d; if (best == "" || d < best) { best = d; out = size " " $2 } }
    END { print (out == "" ? "0 0" : out) }' "/proc/$pid/smaps" 2>/dev/null || echo "0 0"
}

section_scale() {
  if [ "$HAVE_OD" != 1 ]; then
    blog "scale: SKIPPED: needs helperd (build/bin/ondemand-helperd)"
    return 0
  fi
  install_unit ondemand-bscale@.service "$(testapp_unit "$WORK/apps/%i.sock" %i 0 simple)"
  units_reload
  local n r port zone_kb t0 t1 gen dir
  for n in $SCALE_SIZES; do
    port=$(free_port)
    gen=0
    zone_kb=$(scale_conf "$n" "g$gen" "$port")
    dir=$WORK/nginx-scale$n
    for (( r = 1; r <= SCALE_RUNS; r++ )); do
      t0=$(date +%s%N)
      "$NGINX" -t -q -p "$dir" -c "$dir/nginx.conf" 2>>"$dir/test.log" || bdie "scale: nginx -t failed for $n apps; see $dir/test.log"
      t1=$(date +%s%N)
      emit scale "\"apps\":$n,\"kind\":\"test\",\"round\":$r,\"s\":$(( (t1 - t0) / 1000 ))e-6"
    done
    t0=$(date +%s%N)
    nginx_start "scale$n" "$port"
    t1=$(date +%s%N)
    emit scale "\"apps\":$n,\"kind\":\"start\",\"s\":$(( (t1 - t0) / 1000 ))e-6"
    sleep 0.5
    for (( r = 1; r <= SCALE_RUNS; r++ )); do
      gen=$r
      scale_conf "$n" "g$gen" "$port" >/dev/null
      t0=$(date +%s%N)
      kill -HUP "$(nginx_master "scale$n")"
      if ! wait_until 120000 eval "[ \"\$(curl -s --max-time 2 http://127.0.0.1:$port/__gen)\" = g$gen ]"; then
        bdie "scale: reload of $n apps not served within 120 s"
      fi
      t1=$(date +%s%N)
      emit scale "\"apps\":$n,\"kind\":\"reload\",\"round\":$r,\"s\":$(( (t1 - t0) / 1000 ))e-6"
      # the old workers finish (bounded) before the next round
      wait_until 30000 eval "[ \$(nginx_workers scale$n | wc -l) -le 2 ]" || true
    done
    # cold starts of apps spread over the configuration
    local i app step=$(( n / SCALE_COLD_RUNS )); [ "$step" -lt 1 ] && step=1
    for (( r = 1; r <= SCALE_COLD_RUNS; r++ )); do
      i=$(( (r - 1) * step + 1 )); [ "$i" -gt "$n" ] && i=$n
      app=s${n}a$i
      cold_request scale "\"apps\":$n,\"kind\":\"cold\",\"round\":$r" "$port" "$app" \
        "$WORK/apps/$app.sock" "ondemand-bscale@$app.service" "$app"
      stop_units "ondemand-bscale@$app.service"
    done
    local w wrss=0 zs
    for w in $(nginx_workers "scale$n"); do wrss=$(( wrss + $(rss_kb "$w") )); done
    w=$(nginx_workers "scale$n" | head -1)
    zs=$(zone_smaps "$w" "$zone_kb")
    emit scale "\"apps\":$n,\"kind\":\"memory\",\"zone_kb\":$zone_kb,\"zone_map_kb\":${zs% *},\"zone_rss_kb\":${zs#* },\"workers_rss_kb\":$wrss,\"master_rss_kb\":$(rss_kb "$(nginx_master "scale$n")"),\"helperd_rss_kb\":$(rss_kb "$(bg_pid helperd)")"
    nginx_stop "scale$n"
    blog "scale: $n apps done"
  done
}
