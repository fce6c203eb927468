# bench/lib.sh — shared helpers for bench/run and its sections (sourced, not run).
#
# Everything a benchmark starts is recorded by PID in $WORK/pids and stopped by that PID (nginx
# with SIGQUIT, the rest with SIGTERM); systemd runs only inside scripts/sandbox. Traffic goes to
# 127.0.0.1 and unix sockets only. Every wait is bounded.

TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BUILD=$TOP/build
BIN=$BUILD/bin
MODULE=$BUILD/modules/ngx_http_ondemand_module.so
OUT=${BENCH_OUT:-$BUILD/bench}
RAW=$OUT/raw
# Short paths: unix socket paths are limited to 107 bytes, the sandbox's base to 70.
WORK=${BENCH_WORK:-/tmp/od-bench-work}
export ONDEMAND_SANDBOX=${BENCH_SANDBOX:-/tmp/od-bench}
PY=/usr/bin/python3
# bench/run copies the binaries here first, so a rebuild during a run cannot disturb it
SNAP=$WORK/bin
TESTAPP=$SNAP/ondemand-testapp
HELPERD=$SNAP/ondemand-helperd
PROBE=$OUT/tools/startprobe
COLDCLIENT=$OUT/tools/coldclient
NGINX=/usr/sbin/nginx

blog() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
bdie() { blog "FATAL: $*"; exit 1; }

# log_to FILE: from here on, stderr (blog's and every child's) goes through `tee -p` into FILE too.
# Why: a bench run lasts minutes to an hour and is often started in the background with its
# stderr on a pipe (`| tee`, `| tail`, a job runner). When that reader goes away, the next write
# kills the writer with SIGPIPE: bash dies with 141 at its next blog line, without running its
# EXIT trap (the sandbox, helperd and nginx stay up), and a child dies mid-way. tee -p
# (--output-error=warn-nopipe) ignores SIGPIPE and keeps reading and writing FILE, so the pipe
# bench/run writes to never loses its reader (t/72).
log_to() {
  : > "$1"
  exec 2> >(exec tee -p -a "$1" >&2)
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# wait_until TIMEOUT_MS CMD...: polls CMD every 10 ms (set-up and tear-down only, never timed).
wait_until() {
  local deadline=$(( $(now_ms) + $1 )); shift
  until "$@"; do
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    sleep 0.01
  done
}

# emit SECTION JSON-OBJECT-BODY: appends one raw record ({"section":..., ...}) to $RAW/SECTION.jsonl.
emit() {
  local section=$1; shift
  printf '{"section":"%s",%s}\n' "$section" "$*" >> "$RAW/$section.jsonl"
}

# ------------------------------------------------------------------------------- processes

# start_bg NAME LOGFILE CMD...: starts CMD in the background, records its PID in $WORK/pids/NAME.
start_bg() {
  local name=$1 logf=$2; shift 2
  mkdir -p "$WORK/pids"
  "$@" </dev/null >>"$logf" 2>&1 &
  echo $! > "$WORK/pids/$name"
}

bg_pid() { cat "$WORK/pids/$1" 2>/dev/null; }

alive() {
  local s
  s=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$s" ] && [ "$s" != Z ]
}

# stop_bg NAME [SIGNAL]: stops the recorded PID (bounded wait, then SIGKILL), forgets it.
stop_bg() {
  local name=$1 sig=${2:-TERM} p
  p=$(bg_pid "$name") || return 0
  rm -f "$WORK/pids/$name"
  [[ $p =~ ^[0-9]+$ ]] || return 0
  alive "$p" || { wait "$p" 2>/dev/null; return 0; }
  kill "-$sig" "$p" 2>/dev/null || true
  if ! wait_until 10000 eval "! alive $p"; then
    blog "$name (PID $p) did not exit on SIG$sig; SIGKILL"
    kill -KILL "$p" 2>/dev/null || true
  fi
  wait "$p" 2>/dev/null || true
}

# Stops every recorded process: nginx instances with SIGQUIT, the rest with SIGTERM.
stop_all_bg() {
  local f n
  [ -d "$WORK/pids" ] || return 0
  for f in "$WORK"/pids/*; do
    [ -e "$f" ] || continue
    n=$(basename "$f")
    case $n in nginx-*) stop_bg "$n" QUIT ;; *) stop_bg "$n" TERM ;; esac
  done
}

# RSS of a PID in KiB.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# CPU time (ns) the PIDs have spent on a CPU so far (/proc/PID/schedstat, all threads).
cpu_ns() {
  local p t=0
  for p in "$@"; do t=$(( t + $(cut -d' ' -f1 "/proc/$p/schedstat" 2>/dev/null || echo 0) )); done
  echo "$t"
}

# Child PIDs of a PID (nginx workers of a master).
children() { cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+$' || true; }

# ----------------------------------------------------------------------------------- network

# A free TCP port on 127.0.0.1.
free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

unix_accepts() {
  "$PY" - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
EOF
}

# ------------------------------------------------------------------------------------ sandbox

sandbox_up() {
  mkdir -p "$WORK"
  "$TOP/scripts/sandbox" up > "$WORK/sandbox.env" || bdie "scripts/sandbox up failed"
  # shellcheck disable=SC1091
  . "$WORK/sandbox.env"
}

sandbox_down() { "$TOP/scripts/sandbox" down >/dev/null 2>&1 || true; }

sctl() { systemctl --user "$@"; }

# install_unit NAME TEXT: writes the unit into the sandbox (call units_reload after a batch).
install_unit() { printf '%s\n' "$2" > "$ONDEMAND_SANDBOX_UNITS/$1"; }
units_reload() { sctl daemon-reload; }

unit_state() { sctl show -p ActiveState --value "$1" 2>/dev/null; }

# stop_units UNIT...: stops the units and waits (bounded) until they are inactive or failed, then
# lets the manager settle (BENCH_SETTLE_S, default 0.2 s: a start right after a stop is slower).
stop_units() {
  sctl stop "$@" 2>/dev/null || true
  local u
  for u in "$@"; do
    wait_until 15000 eval "[[ \$(unit_state $u) =~ ^(inactive|failed)$ ]]" ||
      blog "unit $u did not stop"
  done
  sctl reset-failed "$@" 2>/dev/null || true
  sleep "${BENCH_SETTLE_S:-0.2}"
}

# testapp_unit SOCKET NAME DELAY_MS TYPE(simple|notify) [EXTRA-SERVICE-LINES]
testapp_unit() {
  local sock=$1 name=$2 delay=$3 type=$4 extra=${5:-} typeline args
  args="--socket $sock --name $name --delay-ms $delay"
  if [ "$type" = notify ]; then
    typeline=$'Type=notify\nNotifyAccess=main'
    args="$args --notify"
  else
    typeline='Type=simple'
  fi
  cat <<EOF
[Unit]
Description=ondemand bench app $name

[Service]
$typeline
ExecStart=$TESTAPP $args
LimitNOFILE=16384
TimeoutStopSec=10
$extra
EOF
}

# ------------------------------------------------------------------------------------- helperd

helperd_available() { [ -x "$BIN/ondemand-helperd" ]; }

# start_helperd: helperd on the sandbox's user bus at $WORK/helperd.sock, log $WORK/helperd.log.
start_helperd() {
  rm -f "$WORK/helperd.sock"
  # its log goes through bench/tools/stamp.py: each line gets CLOCK_MONOTONIC in us
  mkdir -p "$WORK/pids"
  "$HELPERD" --user --socket "$WORK/helperd.sock" --socket-mode 0666 \
    --log-level "${BENCH_HELPERD_LOG:-info}" </dev/null \
    > >("$PY" "$TOP/bench/tools/stamp.py" >> "$WORK/helperd.log") 2>&1 &
  echo $! > "$WORK/pids/helperd"
  wait_until 10000 unix_accepts "$WORK/helperd.sock" || bdie "helperd did not come up; see $WORK/helperd.log"
}

# ---------------------------------------------------------------------------------------- nginx

# nginx_write NAME WORKERS ZONE HTTP-BODY [MAIN-EXTRA]: writes $WORK/nginx-NAME/nginx.conf from
# scripts/nginx-skeleton (the tests' and the demo's skeleton too). ZONE 0: plain nginx; otherwise
# the module is loaded with `ondemand_zone ondemand:ZONE` (e.g. 1m) and helperd's socket.
nginx_write() {
  local name=$1 workers=$2 zone=$3 body=$4 extra=${5:-} dir=$WORK/nginx-$1 od=()
  [ "$zone" = 0 ] || od=(--module "$SNAP/ngx_http_ondemand_module.so" --zone "ondemand:$zone"
    --helper "unix:$WORK/helperd.sock")
  "$TOP/scripts/nginx-skeleton" "${od[@]}" --workers "$workers" --connections 18000 \
    --log-level "${BENCH_NGINX_LOG:-notice}" --main 'worker_rlimit_nofile 19000;' \
    ${extra:+--main "$extra"} --output "$dir/nginx.conf" "$dir" <<<"$body"
}

# nginx_start NAME PORT: starts nginx on the config written by nginx_write; waits for PORT.
nginx_start() {
  local name=$1 port=$2 dir=$WORK/nginx-$1
  start_bg "nginx-$name" "$dir/stderr.log" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;'
  wait_until 10000 port_open "$port" || { tail -n 5 "$dir/error.log" "$dir/stderr.log" >&2; bdie "nginx $name did not listen on $port"; }
}

nginx_stop() { stop_bg "nginx-$1" QUIT; }
nginx_master() { bg_pid "nginx-$1"; }
nginx_workers() { children "$(nginx_master "$1")"; }

# ------------------------------------------------------------------------------------- clients

# exec_mono_us UNIT: when the unit's main process was forked (CLOCK_MONOTONIC, us).
exec_mono_us() { sctl show -p ExecMainStartTimestampMonotonic --value "$1" 2>/dev/null || echo 0; }

# cold_request SECTION JSON-FIELDS PORT APP APP-SOCKET UNIT [HELPERD-APP]: one timed request to a
# cold app (bench/tools/coldclient), recorded with the unit's fork time and, for an ondemand app,
# helperd's StartUnit and ready log lines (bench/tools/coldrec.py).
cold_request() {
  local section=$1 fields=$2 port=$3 app=$4 sock=$5 unit=$6 happ=${7:-} out ex su='' rd=''
  out=$("$COLDCLIENT" --port "$port" --app "$app" --watch "$sock" --timeout-ms 40000) || true
  ex=$(exec_mono_us "$unit")
  if [ -n "$happ" ]; then
    # helperd's log reaches the file through a pipe: give the last line a moment
    wait_until 2000 grep -q "app $happ \(ready\|start failed\)" "$WORK/helperd.log" || true
    su=$(grep -m1 "StartUnit .* for app $happ " "$WORK/helperd.log" | cut -d' ' -f1)
    rd=$(grep -m1 "app $happ ready after" "$WORK/helperd.log" | cut -d' ' -f1)
  fi
  "$PY" "$TOP/bench/tools/coldrec.py" "$section" "$fields" "$out" "${ex:-0}" "${su:-0}" "${rd:-0}" \
    >> "$RAW/$section.jsonl"
}

# wrk_run PORT CONNS SECONDS [APP]: prints wrk's JSON line (bench/tools/wrk-report.lua).
wrk_run() {
  local port=$1 conns=$2 secs=$3 app=${4:-}
  WRK_APP=$app timeout $(( secs + 30 )) wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s \
    -s "$TOP/bench/tools/wrk-report.lua" "http://127.0.0.1:$port/" | grep '^{'
}

# http_time PORT [APP] [TIMEOUT_S]: one request; prints "STATUS SECONDS" (curl's time_total).
http_time() {
  local port=$1 app=${2:-} t=${3:-30}
  curl -s -o /dev/null -H "X-App: $app" -w '%{http_code} %{time_total}\n' --max-time "$t" \
    "http://127.0.0.1:$port/" || true
}
