# bench/warm.sh — section 1, the warm path (sourced by bench/run).
#
# One app process (ondemand-bwarm.service, in the sandbox) serves every variant:
#   plain-noka  nginx (no module) proxy_pass to the app's unix socket, no upstream keepalive
#   plain-ka    the same with `keepalive 32`
#   od-noka     nginx + ondemand (app warm), no upstream keepalive; ondemand_metrics enabled
#               (every warm request counted in the zone; scraped at the end)
#   od-ka       nginx + ondemand (app warm), `keepalive 32`
#   chain-noka  nginx -> systemd-socket-activate + systemd-socket-proxyd -> the app
#   chain-ka    the same with `keepalive 32` from nginx to the proxy
# The machine is shared and noisy, so the variants alternate in short slices: each round runs
# every variant once, in a rotated order (A B C.., B C.. A, ...), for WARM_TPUT_S seconds of
# throughput (wrk -c$WARM_CONNS) and WARM_LAT_S seconds of latency (wrk -c1: a lone client, so
# service time without queueing); comparisons pair the slices of one round. Each throughput
# slice also records the CPU time the nginx worker (and, for the chain, systemd-socket-proxyd)
# spent (/proc/PID/schedstat), i.e. the work per request, which other load on the machine
# disturbs far less than throughput.

section_warm() {
  local rounds=$WARM_ROUNDS tput_s=$WARM_TPUT_S lat_s=$WARM_LAT_S conns=$WARM_CONNS
  local app=bwarm sock=$WORK/apps/bwarm.sock chain_sock=$WORK/chain-warm.sock
  local unit=ondemand-bwarm.service
  blog "warm: $rounds rounds x (wrk -c$conns ${tput_s}s + wrk -c1 ${lat_s}s) per variant"

  install_unit "$unit" "$(testapp_unit "$sock" "$app" 0 simple)"
  units_reload
  sctl start "$unit"
  wait_until 10000 unix_accepts "$sock" || bdie "warm: the app did not come up"

  start_bg chain-warm "$WORK/chain-warm.log" systemd-socket-activate -l "$chain_sock" \
    /lib/systemd/systemd-socket-proxyd "$sock"
  wait_until 10000 test -S "$chain_sock" || bdie "warm: systemd-socket-activate did not listen"

  local -A port
  local v
  for v in plain-noka plain-ka chain-noka chain-ka od-noka od-ka; do port[$v]=$(free_port); done
  local ka_loc='proxy_http_version 1.1; proxy_set_header Connection "";'

  nginx_write warm-plain 1 0 "
    upstream app_noka { server unix:$sock; }
    upstream app_ka { server unix:$sock; keepalive 32; }
    upstream chain_noka { server unix:$chain_sock; }
    upstream chain_ka { server unix:$chain_sock; keepalive 32; }
    server { listen 127.0.0.1:${port[plain-noka]}; location / { proxy_pass http://app_noka; } }
    server { listen 127.0.0.1:${port[plain-ka]}; location / { $ka_loc proxy_pass http://app_ka; } }
    server { listen 127.0.0.1:${port[chain-noka]}; location / { proxy_pass http://chain_noka; } }
    server { listen 127.0.0.1:${port[chain-ka]}; location / { $ka_loc proxy_pass http://chain_ka; } }"
  nginx_start warm-plain "${port[plain-noka]}"

  local variants=(plain-noka plain-ka chain-noka chain-ka)
  if [ "$HAVE_OD" = 1 ]; then
    # one app, one unit: each ondemand variant has an nginx of its own (an nginx refuses two
    # apps with one unit=); both share helperd, like two nginx instances on one box
    nginx_write warm-od 1 1m "
    upstream bwarm { server unix:$sock; ondemand unit=$unit; }
    server { listen 127.0.0.1:${port[od-noka]}; location / { ondemand_app bwarm; proxy_pass http://bwarm; }
             location = /metrics { ondemand_metrics; } }"
    nginx_start warm-od "${port[od-noka]}"
    nginx_write warm-odka 1 1m "
    upstream bwarm { server unix:$sock; ondemand unit=$unit; keepalive 32; }
    server { listen 127.0.0.1:${port[od-ka]}; location / { ondemand_app bwarm; $ka_loc proxy_pass http://bwarm; }
             location = /metrics { ondemand_metrics; } }"
    nginx_start warm-odka "${port[od-ka]}"
    variants=(plain-noka od-noka plain-ka od-ka chain-noka chain-ka)
  else
    blog "warm: helperd is not built yet: ondemand variants skipped"
  fi

  # warm-up: every path once (ondemand: the first request starts/adopts the app), then 1 s of load
  for v in "${variants[@]}"; do
    local st
    st=$(http_time "${port[$v]}" "" 30)
    [ "${st%% *}" = 200 ] || bdie "warm: variant $v answers '$st' to its first request"
    wrk_run "${port[$v]}" "$conns" 1 >/dev/null
  done

  local -A cpu_pids
  cpu_pids[plain-noka]=$(nginx_workers warm-plain) cpu_pids[plain-ka]=${cpu_pids[plain-noka]}
  cpu_pids[chain-noka]="${cpu_pids[plain-noka]} $(bg_pid chain-warm)" cpu_pids[chain-ka]=${cpu_pids[chain-noka]}
  if [ "$HAVE_OD" = 1 ]; then
    cpu_pids[od-noka]=$(nginx_workers warm-od) cpu_pids[od-ka]=$(nginx_workers warm-odka)
  fi
  local r i n=${#variants[@]} line c0 c1
  for (( r = 1; r <= rounds; r++ )); do
    for (( i = 0; i < n; i++ )); do
      v=${variants[$(( (i + r - 1) % n ))]}
      c0=$(cpu_ns ${cpu_pids[$v]})
      line=$(wrk_run "${port[$v]}" "$conns" "$tput_s") || line='{}'
      c1=$(cpu_ns ${cpu_pids[$v]})
      emit warm "\"variant\":\"$v\",\"round\":$r,\"kind\":\"throughput\",\"conns\":$conns,\"cpu_ns\":$(( c1 - c0 )),\"load1\":$(cut -d' ' -f1 /proc/loadavg),\"wrk\":$line"
      line=$(wrk_run "${port[$v]}" 1 "$lat_s") || line='{}'
      emit warm "\"variant\":\"$v\",\"round\":$r,\"kind\":\"latency\",\"conns\":1,\"wrk\":$line"
    done
    (( r % 5 == 0 || r == rounds )) && blog "warm: round $r/$rounds done"
  done

  if [ "$HAVE_OD" = 1 ]; then
    # the counters the warm path kept while it was measured
    local warm_counted
    warm_counted=$(curl -s "http://127.0.0.1:${port[od-noka]}/metrics" |
      sed -n 's/^ondemand_app_requests_total{.*outcome="warm"} \([0-9]*\)$/\1/p')
    blog "warm: ondemand_metrics counted ${warm_counted:-?} warm requests (od-noka)"
    emit warm_metrics "\"variant\":\"od-noka\",\"warm_requests\":${warm_counted:-0}"
    nginx_stop warm-od; nginx_stop warm-odka
  fi
  nginx_stop warm-plain
  stop_bg chain-warm
  stop_units "$unit"
}
