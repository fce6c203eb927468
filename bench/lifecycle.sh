# bench/lifecycle.sh — section 5, idle stop and freeze (sourced by bench/run).
#
# Needs the module's idle stop (issue #5); each part checks that what it measures exists and
# says SKIPPED otherwise.
#   precision  a fresh app with idle_timeout=2s gets a cold then a warm request; the time from the
#              end of the warm request (coldclient's clock) to helperd's StopUnit (its stamped
#              log line), minus 2000 ms. LIFE_RUNS apps.
#   boundary   one app with idle_timeout=1s; LIFE_CYCLES requests, each sent 980..1300 ms after
#              the previous answer, i.e. across the window in which the idle scan (every 250 ms
#              here) stops the app. Every answer must be 200; restarts are counted (X-Pid).
#   freeze     an app with `freeze` and idle_timeout=1s: once systemd reports it frozen, a request
#              is timed (thaw + answer). Skipped while nginx or helperd do not support it.

section_lifecycle() {
  if [ "$HAVE_OD" != 1 ]; then
    blog "lifecycle: SKIPPED: needs helperd (build/bin/ondemand-helperd)"
    emit lifecycle '"part":"all","skipped":"helperd not built"'
    return 0
  fi
  install_unit ondemand-blife@.service "$(testapp_unit "$WORK/apps/%i.sock" %i 0 simple)"
  units_reload
  local port r ups='' app
  port=$(free_port)
  for (( r = 1; r <= LIFE_RUNS; r++ )); do
    ups+="    upstream lp$r { server unix:$WORK/apps/lp$r.sock; ondemand unit=ondemand-blife@lp$r.service idle_timeout=2s; }
"
  done
  ups+="    upstream lb { server unix:$WORK/apps/lb.sock; ondemand unit=ondemand-blife@lb.service idle_timeout=1s; }
"
  local freeze_ups="    upstream lf { server unix:$WORK/apps/lf.sock; ondemand unit=ondemand-blife@lf.service idle_timeout=1s freeze; }
"
  local body="
@UPS@
    server { listen 127.0.0.1:$port; location / { ondemand_app \$http_x_app; proxy_pass http://\$http_x_app; } }"
  local have_freeze=0
  nginx_write life 2 1m "${body/@UPS@/$ups$freeze_ups}"
  if "$NGINX" -t -q -p "$WORK/nginx-life" -c "$WORK/nginx-life/nginx.conf" 2>/dev/null; then
    have_freeze=1
  else
    nginx_write life 2 1m "${body/@UPS@/$ups}"
  fi
  nginx_start life "$port"

  # -- idle-stop precision
  local out end ax st
  for (( r = 1; r <= LIFE_RUNS; r++ )); do
    app=lp$r
    st=$(http_time "$port" "$app" 30); st=${st%% *}
    [ "$st" = 200 ] || { blog "lifecycle: cold request to $app: $st"; continue; }
    out=$("$COLDCLIENT" --port "$port" --app "$app" --watch /nonexistent --timeout-ms 10000)
    end=$(sed -n 's/.*end_us=\([0-9]*\).*/\1/p' <<<"$out")
    if ! wait_until 15000 eval "[[ \$(unit_state ondemand-blife@$app.service) =~ ^(inactive|failed|deactivating)$ ]]"; then
      blog "lifecycle: idle stop: SKIPPED: $app was not stopped within 15 s of idle_timeout=2s (idle stop not implemented?)"
      emit lifecycle '"part":"precision","skipped":"the app was not stopped when idle"'
      break
    fi
    # helperd's "StopUnit ... for app" line, stamped on CLOCK_MONOTONIC (systemd forgets an
    # inactive unit's timestamps when it unloads it)
    wait_until 2000 grep -q "StopUnit .* for app $app " "$WORK/helperd.log" || true
    ax=$(grep -m1 "StopUnit .* for app $app " "$WORK/helperd.log" | cut -d' ' -f1)
    [ -n "$ax" ] && [ -n "$end" ] &&
      emit lifecycle "\"part\":\"precision\",\"round\":$r,\"idle_timeout_ms\":2000,\"stop_after_ms\":$(( (ax - end) / 1000 ))"
    stop_units "ondemand-blife@$app.service"
  done
  blog "lifecycle: precision done"

  # -- boundary stress
  local offsets=(-20 0 50 100 150 200 250 300) c pid prev='' restarts=0 errors=0 res
  res=$(curl -s -D - -o /dev/null -H "X-App: lb" --max-time 30 "http://127.0.0.1:$port/" || true)
  prev=$(sed -n 's/^X-Pid: *\([0-9]*\).*/\1/ip' <<<"$res" | tr -d '\r')
  for (( c = 1; c <= LIFE_CYCLES; c++ )); do
    sleep "$("$PY" -c "print((1000 + ${offsets[$(( c % ${#offsets[@]} ))]}) / 1000)")"
    res=$(curl -s -D - -o /dev/null -H "X-App: lb" --max-time 30 "http://127.0.0.1:$port/" || true)
    st=$(head -1 <<<"$res" | cut -d' ' -f2)
    pid=$(sed -n 's/^X-Pid: *\([0-9]*\).*/\1/ip' <<<"$res" | tr -d '\r')
    [ "$st" = 200 ] || errors=$(( errors + 1 ))
    [ -n "$pid" ] && [ "$pid" != "$prev" ] && restarts=$(( restarts + 1 ))
    prev=$pid
  done
  emit lifecycle "\"part\":\"boundary\",\"cycles\":$LIFE_CYCLES,\"errors\":$errors,\"restarts\":$restarts"
  blog "lifecycle: boundary: $LIFE_CYCLES cycles, $errors errors, $restarts restarts"
  stop_units ondemand-blife@lb.service

  # -- boundary stress, many stop/start cycles: t/20-idle-boundary.t (idle_timeout=100ms,
  #    requests 60-180 ms apart, 1-3 at once across 2 workers) with its own stack
  local out cycles stops requests errs secs
  out=$(cd "$TOP" && BOUNDARY_CYCLES=$LIFE_STRESS_CYCLES BOUNDARY_SECONDS=900 \
        prove -v -I t/lib t/20-idle-boundary.t 2>&1 || true)
  if [[ $out =~ boundary:\ cycles=([0-9]+)\ stops=([0-9]+)\ requests=([0-9]+)\ errors=([0-9]+)\ seconds=([0-9.]+) ]]; then
    cycles=${BASH_REMATCH[1]} stops=${BASH_REMATCH[2]} requests=${BASH_REMATCH[3]}
    errs=${BASH_REMATCH[4]} secs=${BASH_REMATCH[5]}
    emit lifecycle "\"part\":\"stress\",\"cycles\":$cycles,\"stops\":$stops,\"requests\":$requests,\"errors\":$errs,\"seconds\":$secs"
    blog "lifecycle: stress: $cycles stop/start cycles, $requests requests, $errs errors in $secs s"
  else
    blog "lifecycle: stress: t/20-idle-boundary.t did not report (see its output below)"
    printf '%s\n' "$out" | tail -20 >&2
  fi

  # -- freeze / thaw
  if [ "$have_freeze" != 1 ]; then
    blog "lifecycle: freeze: SKIPPED: nginx does not accept the 'freeze' parameter"
    emit lifecycle '"part":"freeze","skipped":"nginx does not accept the freeze parameter"'
  else
    st=$(http_time "$port" lf 30)
    if ! wait_until 8000 eval "[ \"\$(sctl show -p FreezerState --value ondemand-blife@lf.service)\" = frozen ]"; then
      blog "lifecycle: freeze: SKIPPED: the idle app was not frozen within 8 s (helperd without FreezeUnit?)"
      emit lifecycle '"part":"freeze","skipped":"the idle app was never frozen (helperd does not freeze yet)"'
    else
      for (( r = 1; r <= LIFE_RUNS; r++ )); do
        wait_until 8000 eval "[ \"\$(sctl show -p FreezerState --value ondemand-blife@lf.service)\" = frozen ]" || break
        sleep 0.2
        out=$("$COLDCLIENT" --port "$port" --app lf --watch /nonexistent --timeout-ms 10000)
        "$PY" "$TOP/bench/tools/coldrec.py" lifecycle "\"part\":\"freeze\",\"round\":$r" "$out" 0 >> "$RAW/lifecycle.jsonl"
      done
    fi
    stop_units ondemand-blife@lf.service
  fi
  nginx_stop life
}
