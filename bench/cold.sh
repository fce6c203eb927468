# bench/cold.sh — section 2, cold-start overhead (sourced by bench/run).
#
# For each app start-up delay D (COLD_DELAYS, ms) and each round, in rotated order:
#   probe-simple / probe-notify   the app's own readiness: bench/tools/startprobe does StartUnit and
#                                 connects every 50 us until the socket accepts (no nginx, no helperd)
#   od-connect / od-notify / od-http   the first request through nginx + ondemand to a cold app
#                                 (ready=connect, ready=notify with a Type=notify app, ready=http:/)
#   chain-sleep / chain-poll / chain-notify   the first request through nginx to the hand-made
#                                 chain: a socket unit + systemd-socket-proxyd service that
#                                 Requires= the app unit; the app unit waits with
#                                 ExecStartPost=/bin/sleep 1, with a 100 ms poll of the socket, or
#                                 is Type=notify
# Overhead = first-request latency (curl's time_total) - the median probe readiness of the same
# app (same D, same unit type). Every ondemand run uses a fresh app (its own upstream and unit
# instance), so no run sees state left by another.

cold_template() { echo "ondemand-bc$1$2@.service"; }   # D, s|n

section_cold() {
  [ "$HAVE_OD" = 1 ] || blog "cold: helperd is not built yet: ondemand variants skipped"
  local runs=$COLD_RUNS d t m v i
  local modes=(connect notify http) chains=(sleep poll notify)
  blog "cold: delays ($COLD_DELAYS) ms x $runs rounds"
  mkdir -p "$WORK/chain"

  # units: one template per delay and type; the chains' units
  for d in $COLD_DELAYS; do
    install_unit "$(cold_template "$d" s)" "$(testapp_unit "$WORK/apps/%i.sock" %i "$d" simple)"
    install_unit "$(cold_template "$d" n)" "$(testapp_unit "$WORK/apps/%i.sock" %i "$d" notify)"
    for v in "${chains[@]}"; do
      local c=bch-$v$d asock=$WORK/apps/bch-$v$d.sock post='' type=simple
      case $v in
        sleep) post='ExecStartPost=/bin/sleep 1' ;;
        poll) post="ExecStartPost=/bin/sh -c 'until socat -u OPEN:/dev/null UNIX-CONNECT:$asock 2>/dev/null; do sleep 0.1; done'
TimeoutStartSec=30" ;;
        notify) type=notify ;;
      esac
      install_unit "$c-app.service" "$(testapp_unit "$asock" "$c" "$d" "$type" "$post")"
      install_unit "$c.socket" "[Socket]
ListenStream=$WORK/chain/$c.sock
SocketMode=0666"
      install_unit "$c.service" "[Unit]
Requires=$c-app.service
After=$c-app.service

[Service]
ExecStart=/lib/systemd/systemd-socket-proxyd $asock"
    done
  done
  units_reload
  for d in $COLD_DELAYS; do
    for v in "${chains[@]}"; do sctl start "bch-$v$d.socket"; done
  done

  # nginx: one upstream per ondemand run (fresh app), one per chain; X-App picks it
  local port chain_port ups='' app
  port=$(free_port) chain_port=$(free_port)
  if [ "$HAVE_OD" = 1 ]; then
    for d in $COLD_DELAYS; do
      for m in "${modes[@]}"; do
        for (( i = 0; i <= runs; i++ )); do
          app=c$d$m$i
          t=s; [ "$m" = notify ] && t=n
          local ready=$m; [ "$m" = http ] && ready=http:/
          ups+="    upstream $app { server unix:$WORK/apps/$app.sock; ondemand unit=ondemand-bc$d$t@$app.service ready=$ready start_timeout=30s; }
"
        done
      done
    done
  fi
  for d in $COLD_DELAYS; do
    for v in "${chains[@]}"; do ups+="    upstream bch-$v$d { server unix:$WORK/chain/bch-$v$d.sock; }
"; done
  done
  local od_server='' zone=0
  [ "$HAVE_OD" = 1 ] && zone=1m && od_server="server { listen 127.0.0.1:$port; location / { ondemand_app \$http_x_app; proxy_pass http://\$http_x_app; } }"
  nginx_write cold 2 "$zone" "
$ups
    $od_server
    server { listen 127.0.0.1:$chain_port; location / { proxy_pass http://\$http_x_app; } }"
  nginx_start cold "$chain_port"

  local variants=(probe-simple probe-notify chain-sleep chain-poll chain-notify)
  [ "$HAVE_OD" = 1 ] && variants=(probe-simple od-connect chain-sleep probe-notify od-notify chain-poll od-http chain-notify)
  local n=${#variants[@]} k out st lat unit
  # round 0 warms caches up and is left out of the report
  for (( i = 0; i <= runs; i++ )); do
    for d in $COLD_DELAYS; do
      for (( k = 0; k < n; k++ )); do
        v=${variants[$(( (k + i + n - 1) % n ))]}
        case $v in
          probe-*)
            t=s; [ "$v" = probe-notify ] && t=n
            out=$("$PROBE" --unit "ondemand-bc$d$t@p$d$t.service" --socket "$WORK/apps/p$d$t.sock" \
              --runs 1 --timeout-ms 30000) || true
            sleep "${BENCH_SETTLE_S:-0.2}"
            local f fields="\"variant\":\"$v\",\"delay_ms\":$d,\"round\":$i"
            for f in ready job exec activating; do
              fields+=",\"${f}_ms\":$(sed -n "s/.*${f}_ms=\([-0-9.]*\).*/\1/p" <<<"$out" | grep . || echo -1)"
            done
            emit cold "$fields"
            ;;
          od-*)
            m=${v#od-}; t=s; [ "$m" = notify ] && t=n
            app=c$d$m$i unit=ondemand-bc$d$t@c$d$m$i.service
            cold_request cold "\"variant\":\"$v\",\"delay_ms\":$d,\"round\":$i" "$port" "$app" \
              "$WORK/apps/$app.sock" "$unit" "$app"
            stop_units "$unit"
            ;;
          chain-*)
            app=bch-${v#chain-}$d
            cold_request cold "\"variant\":\"$v\",\"delay_ms\":$d,\"round\":$i" "$chain_port" "$app" \
              "$WORK/apps/$app.sock" "$app-app.service"
            stop_units "$app.service" "$app-app.service"
            ;;
        esac
      done
    done
    blog "cold: round $i/$runs done"
  done
  nginx_stop cold
  for d in $COLD_DELAYS; do
    for v in "${chains[@]}"; do sctl stop "bch-$v$d.socket" 2>/dev/null || true; done
  done
}
