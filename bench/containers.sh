# bench/containers.sh — section 6, containers (sourced by bench/run).
#
# podman: the project's unit templates (units/ondemand-podman@.service: Type=notify via conmon;
# units/ondemand-podman-simple@.service: Type=simple) run the tiny local image
# (scripts/image/build: busybox + the static test app) with private podman storage in the sandbox
# (scripts/podman-config, as in t/ and the demo); units/ondemand-podman-systemd@.service runs a
# Debian root with systemd as its init and the app as its unit (scripts/image/build-systemd).
# Per round and template:
#   probe  the runtime's own start-to-socket time: bench/tools/startprobe does StartUnit on the
#          unit and connects to the container's socket every 50 us (no nginx, no helperd);
#   od     the first request through nginx + ondemand (ready=connect) to a fresh app; overhead as
#          in section 2 = (request -> StartUnit) + (socket accepts -> answer).
# docker: the same through units/ondemand-docker@.service, with a private dockerd (own data and
# exec roots, containerd namespace and cgroup parent, no iptables, no bridge; as t/ runs it),
# started here and stopped by its PID at the end of the section. Skipped without dockerd.
# oci: units/ondemand-oci@.service, crun as the unit's main process on a bundle that
# `ondemandctl prepare` made from the same image before the rounds (issue #16).
# exec: the baseline, the same static binary as a plain process (units/ondemand-exec@.service).
# Each round runs every shape once, one after the other, so that they share the machine's load;
# container_cold_ratio_vs_exec (report.py) is the fastest container shape's first request
# divided by exec's (medians).

section_containers() {
  local t missing=()
  for t in units/ondemand-podman@.service units/ondemand-podman-simple@.service; do
    git -C "$TOP" ls-files --error-unmatch "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  if [ ${#missing[@]} -gt 0 ] || [ ! -x /usr/bin/podman ] || [ ! -x "$BIN/ondemand-testapp-static" ] ||
     [ ! -x "$TOP/scripts/image/build" ] || [ "$HAVE_OD" != 1 ]; then
    local why="needs helperd, podman, build/bin/ondemand-testapp-static, scripts/image/build and the committed podman unit templates (issue #6)"
    blog "containers: SKIPPED: $why"
    emit containers "\"skipped\":\"$why\""
    return 0
  fi

  # podman with private storage, configured for the sandbox's pure cgroup2 namespace
  local conf=$ONDEMAND_SANDBOX/config/ondemand penv
  mkdir -p "$conf/apps"
  mapfile -t penv < <("$TOP/scripts/podman-config" "$conf" "$WORK/podman")
  [ ${#penv[@]} -gt 0 ] || bdie "scripts/podman-config failed"
  local image=localhost/ondemand-testapp:latest tar
  tar=$("$TOP/scripts/image/build" "$WORK/image" | tail -1) || { blog "containers: image build failed"; return 0; }
  if ! env "${penv[@]}" podman import -q "$tar" "$image" >/dev/null 2>"$WORK/podman-import.log"; then
    blog "containers: SKIPPED: podman import failed; see $WORK/podman-import.log"
    emit containers '"skipped":"podman import failed"'
    return 0
  fi
  for t in ondemand-podman@.service ondemand-podman-simple@.service; do
    install_unit "$t" "$(cat "$TOP/units/$t")"
  done
  # The baseline is the same binary as a plain process (issue #16's yardstick), not the shipped
  # exec template: its sandbox (DynamicUser=, namespaces, mounts; issue #15) costs a start far
  # more than the process itself (docs/BENCHMARKS.md, section 6).
  install_unit ondemand-exec@.service "[Service]
Type=simple
Environment=ONDEMAND_SOCKET=%t/ondemand/apps/%i/app.sock
EnvironmentFile=%E/ondemand/apps/%i.conf
RuntimeDirectory=ondemand/apps/%i
RuntimeDirectoryPreserve=yes
ExecStart=/bin/sh -c 'exec \${EXEC}'"
  local shapes=(exec podman podman-simple) s r app ups='' port
  local simage=localhost/ondemand-testapp-systemd:latest
  cp "$BIN/ondemand-testapp-static" "$SNAP/"
  if [ -x /usr/bin/crun ] && git -C "$TOP" ls-files --error-unmatch units/ondemand-oci@.service >/dev/null 2>&1; then
    install_unit ondemand-oci@.service "$(cat "$TOP/units/ondemand-oci@.service")"
    shapes+=(oci)
  else
    emit containers '"part":"oci","skipped":"needs crun and the committed units/ondemand-oci@.service"'
  fi
  # podman-systemd: a Debian root with systemd as init (scripts/image/build-systemd, cached in
  # build/image-systemd; the first build takes minutes), where the app is a Type=notify unit
  if command -v mmdebstrap >/dev/null &&
     env "${penv[@]}" IMAGE="$simage" "$TOP/scripts/image/build-systemd" "$BUILD/image-systemd" \
       >/dev/null 2>"$WORK/image-systemd.log"; then
    install_unit ondemand-podman-systemd@.service "$(cat "$TOP/units/ondemand-podman-systemd@.service")"
    shapes+=(podman-systemd)
  else
    blog "containers: podman-systemd: SKIPPED: no systemd image; see $WORK/image-systemd.log"
    emit containers '"part":"podman-systemd","skipped":"no systemd image (mmdebstrap missing or no Debian mirror)"'
  fi
  if containers_docker_up "$conf" "$tar"; then
    install_unit ondemand-docker@.service "$(cat "$TOP/units/ondemand-docker@.service")"
    shapes+=(docker)
  fi
  units_reload

  for s in "${shapes[@]}"; do
    for (( r = 0; r <= CONT_RUNS; r++ )); do
      for app in "k${s//-/}p$r" "k${s//-/}o$r"; do
        case $s in
          exec) printf 'KIND=exec\nEXEC=%s --socket $ONDEMAND_SOCKET --name %s\n' \
                  "$SNAP/ondemand-testapp-static" "$app" ;;
          # the image's own unit runs the app: only its name
          podman-systemd) printf 'KIND=podman-systemd\nIMAGE=%s\nARGS=-e TESTAPP_NAME=%s\n' \
                  "$simage" "$app" ;;
          *) printf 'KIND=%s\nIMAGE=%s\nCMD=/bin/ondemand-testapp --socket /run/ondemand/app.sock --name %s\n' \
               "$s" "$([ "$s" = docker ] && echo ondemand-testapp:latest || echo "$image")" "$app" ;;
        esac > "$conf/apps/$app.conf"
      done
      app=k${s//-/}o$r
      ups+="    upstream $app { server unix:$XDG_RUNTIME_DIR/ondemand/apps/$app/app.sock; ondemand unit=ondemand-$s@$app.service start_timeout=60s; }
"
    done
  done
  if [[ " ${shapes[*]} " = *" oci "* ]]; then
    # the bundles, ahead of time (never on a request's path): %S/ondemand/oci = $conf/oci here
    ONDEMAND_APPS_DIR=$conf/apps ONDEMAND_OCI_DIR=$conf/oci ONDEMAND_SOCKET_DIR=$XDG_RUNTIME_DIR/ondemand/apps \
      "$BIN/ondemandctl" prepare > "$WORK/oci-prepare.log" 2>&1 || bdie "ondemandctl prepare failed; see $WORK/oci-prepare.log"
  fi
  port=$(free_port)
  nginx_write cont 2 1m "
$ups
    server { listen 127.0.0.1:$port; location / { ondemand_app \$http_x_app; proxy_pass http://\$http_x_app; } }"
  nginx_start cont "$port"

  local out f fields unit
  # round 0 pulls everything into the page cache and is left out of the report
  for (( r = 0; r <= CONT_RUNS; r++ )); do
    for s in "${shapes[@]}"; do
      app=k${s//-/}p$r unit=ondemand-$s@$app.service
      out=$("$PROBE" --unit "$unit" --socket "$XDG_RUNTIME_DIR/ondemand/apps/$app/app.sock" --runs 1 --timeout-ms 60000) || true
      fields="\"variant\":\"probe-$s\",\"round\":$r"
      for f in ready job exec; do
        fields+=",\"${f}_ms\":$(sed -n "s/.*${f}_ms=\([-0-9.]*\).*/\1/p" <<<"$out" | grep . || echo -1)"
      done
      emit containers "$fields"
      sctl reset-failed "$unit" 2>/dev/null || true
      sleep "${BENCH_SETTLE_S:-0.2}"
      app=k${s//-/}o$r unit=ondemand-$s@$app.service
      cold_request containers "\"variant\":\"od-$s\",\"round\":$r" "$port" "$app" \
        "$XDG_RUNTIME_DIR/ondemand/apps/$app/app.sock" "$unit" "$app"
      stop_units "$unit"
    done
    blog "containers: round $r/$CONT_RUNS done"
  done
  nginx_stop cont
  containers_docker_down
}

# containers_docker_up CONF-DIR IMAGE-TAR: a private dockerd for the docker unit template, with
# the image imported and CONF-DIR/docker.env written; false (and a SKIPPED record) if unavailable.
containers_docker_up() {
  local conf=$1 tar=$2 dir=$WORK/docker
  if ! git -C "$TOP" ls-files --error-unmatch units/ondemand-docker@.service >/dev/null 2>&1 ||
     [ ! -x /usr/sbin/dockerd ] || [ ! -x /usr/bin/docker ]; then
    emit containers '"part":"docker","skipped":"needs dockerd, docker and the committed units/ondemand-docker@.service"'
    return 1
  fi
  mkdir -p "$dir"
  local tag=ondemand-bench-$$ sock=$dir/docker.sock
  start_bg dockerd "$dir/dockerd.log" /usr/sbin/dockerd --data-root "$dir/data" --exec-root "$dir/exec" \
    --pidfile "$dir/dockerd.pid" -H "unix://$sock" --iptables=false --ip6tables=false --bridge=none \
    --ip-forward=false --ip-masq=false --storage-driver=overlay2 \
    --containerd-namespace="$tag" --containerd-plugins-namespace="$tag-plugins" --cgroup-parent="/$tag"
  if ! wait_until 60000 env DOCKER_HOST="unix://$sock" docker version >/dev/null 2>&1 ||
     ! DOCKER_HOST="unix://$sock" docker import "$tar" ondemand-testapp:latest >/dev/null 2>>"$dir/import.log"; then
    blog "containers: docker: SKIPPED: the private dockerd did not come up or import failed; see $dir"
    emit containers '"part":"docker","skipped":"the private dockerd did not come up (see dockerd.log)"'
    stop_bg dockerd
    return 1
  fi
  printf 'DOCKER_HOST=unix://%s\nONDEMAND_LOG_DRIVER=json-file\n' "$sock" > "$conf/docker.env"
  return 0
}

# Stops the private dockerd; removes the (then empty) cgroups made for its --cgroup-parent.
containers_docker_down() {
  [ -n "$(bg_pid dockerd)" ] || return 0
  stop_bg dockerd
  local d
  for d in /sys/fs/cgroup/*/"ondemand-bench-$$"; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  return 0
}
