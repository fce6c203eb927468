#!/bin/bash
# bench/memory.sh — a box of apps whose memory adds up to more than ondemand_max_memory, served
# with the budget held (issue #15). Runs on its own (`bench/memory.sh`; it is not a section of
# bench/run, whose report it does not touch) and prints a summary and JSON lines.
#
#   MEM_APPS=12 MEM_MIB=32 MEM_BUDGET=128m MEM_SECONDS=60 MEM_CONCURRENCY=2 bench/memory.sh
#
# MEM_APPS apps (ondemand-testapp --alloc-mib MEM_MIB: each touches that much memory at start),
# nginx with `ondemand_max_memory MEM_BUDGET expect=...`, and clients that request random apps
# for MEM_SECONDS (MEM_CONCURRENCY curl loops). Meanwhile a sampler, independent of helperd,
# reads every 20 ms the units' cgroups in the sandbox and adds up the Pss of their processes
# (what helperd's fallback measures here, where the cgroup2 has no memory controller). Reported:
# requests and their statuses, evictions, the largest number of apps running at once, the largest
# total seen, and the share of samples above the budget. Sandbox, helperd and nginx are its own
# (/tmp/od-bench-mem*), stopped by PID at the end.
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
export BENCH_WORK=${BENCH_WORK:-/tmp/od-bench-mem-work}
export BENCH_SANDBOX=${BENCH_SANDBOX:-/tmp/od-bench-mem}
export BENCH_OUT=${BENCH_OUT:-$TOP/build/bench-memory}
export BENCH_NGINX_LOG=${BENCH_NGINX_LOG:-info} # the eviction lines are at info
. "$TOP/bench/lib.sh"

APPS=${MEM_APPS:-12}
MIB=${MEM_MIB:-32}
BUDGET=${MEM_BUDGET:-128m}
SECONDS_RUN=${MEM_SECONDS:-60}
CONC=${MEM_CONCURRENCY:-2}
EXPECT=$(( MIB + MIB / 8 + 1 ))m

[ "$(id -u)" = 0 ] || bdie "run as root (the sandbox needs namespaces and cgroups)"
[ -x "$BIN/ondemand-testapp" ] && [ -x "$BIN/ondemand-helperd" ] && [ -f "$MODULE" ] ||
  bdie "build first: make build"

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_all_bg
  sandbox_down
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$WORK"
mkdir -p "$WORK/apps" "$SNAP" "$OUT"
cp "$BIN/ondemand-testapp" "$BIN/ondemand-helperd" "$MODULE" "$SNAP/"

sandbox_up
start_helperd
install_unit ondemand-bmem@.service "$(testapp_unit "$WORK/apps/%i.sock" %i 0 simple)"
sed -i "s|^ExecStart=.*|& --alloc-mib $MIB|" "$ONDEMAND_SANDBOX_UNITS/ondemand-bmem@.service"
units_reload

port=$(free_port)
ups=""
for (( i = 1; i <= APPS; i++ )); do
  ups+="    upstream m$i { server unix:$WORK/apps/m$i.sock; ondemand unit=ondemand-bmem@m$i.service idle_timeout=10m; }
"
done
nginx_write mem 2 1m "
    ondemand_max_memory $BUDGET expect=$EXPECT;
$ups
    log_format od '\$http_x_app \$status \$ondemand_status';
    server {
        listen 127.0.0.1:$port;
        access_log $WORK/nginx-mem/access.log od;
        location = /metrics { ondemand_metrics; }
        location / { ondemand_app \$http_x_app; proxy_pass http://\$http_x_app; }
    }"
nginx_start mem "$port"

budget_bytes=$("$PY" -c "import sys; s=sys.argv[1].lower(); m={'k':1<<10,'m':1<<20,'g':1<<30}; print(int(s[:-1])*m[s[-1]] if s[-1] in m else int(s))" "$BUDGET")
cg=ondemand-sb-$(printf '%s' "$(realpath -m "$ONDEMAND_SANDBOX")" | sha256sum | cut -c1-8)

# the sampler: every 20 ms, the Pss of every process in every ondemand-bmem@ unit's cgroup
"$PY" - "/sys/fs/cgroup/unified/$cg" "$WORK/sampler.json" "$WORK/sampler.stop" <<'PY' &
import glob, json, os, sys, time
root, out, stop = sys.argv[1:]
def pss(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
samples = []
while not os.path.exists(stop):
    total, running = 0, 0
    for d in glob.glob(root + "/**/ondemand-bmem@*.service", recursive=True):
        pids = []
        for sub, _, _ in os.walk(d):
            try:
                pids += open(sub + "/cgroup.procs").read().split()
            except OSError:
                pass
        if pids:
            running += 1
            total += sum(pss(p) for p in pids)
    samples.append((total, running))
    time.sleep(0.02)
json.dump(samples, open(out, "w"))
PY
sampler=$!
echo "$sampler" > "$WORK/pids/sampler"

blog "memory: $APPS apps x $MIB MiB, budget $BUDGET (expect=$EXPECT), ${SECONDS_RUN}s, $CONC clients"
end=$(( $(date +%s) + SECONDS_RUN ))
for (( c = 0; c < CONC; c++ )); do
  (
    while [ "$(date +%s)" -lt "$end" ]; do
      app=m$(( RANDOM % APPS + 1 ))
      curl -s -o /dev/null -H "X-App: $app" -w '%{http_code}\n' --max-time 30 "http://127.0.0.1:$port/" || echo 000
    done > "$WORK/client-$c.txt"
  ) &
  echo $! > "$WORK/pids/client-$c"
done
for (( c = 0; c < CONC; c++ )); do wait "$(cat "$WORK/pids/client-$c")" || true; done
touch "$WORK/sampler.stop"
wait "$sampler" || true

# nginx's own count: evictions, and requests refused for the budget
curl -s "http://127.0.0.1:$port/metrics" > "$WORK/metrics.txt" || true
evictions=$(awk '/^ondemand_app_evictions_total/ { n += $2 } END { print n + 0 }' "$WORK/metrics.txt")
refusals=$(awk '/^ondemand_app_requests_total.*outcome="max-memory"/ { n += $2 } END { print n + 0 }' "$WORK/metrics.txt")
"$PY" - "$WORK/sampler.json" "$budget_bytes" "$APPS" "$MIB" "$BUDGET" "$SECONDS_RUN" "$CONC" \
  "$evictions" "$refusals" "$WORK"/client-*.txt <<'PY' | tee "$OUT/memory.json"
import collections, json, sys
samples = json.load(open(sys.argv[1]))
budget, apps, mib, budget_s, secs, conc, evictions, refusals = sys.argv[2:10]
budget = int(budget)
codes = collections.Counter()
for f in sys.argv[10:]:
    codes.update(l.strip() for l in open(f) if l.strip())
over = [t for t, _ in samples if t > budget]
r = {"apps": int(apps), "mib_per_app": int(mib), "sum_mib": int(apps) * int(mib), "budget": budget_s,
     "budget_bytes": budget, "seconds": int(secs), "clients": int(conc),
     "requests": sum(codes.values()), "status": dict(codes), "evictions": int(evictions),
     "refused_max_memory": int(refusals), "samples": len(samples),
     "max_total_mib": round(max(t for t, _ in samples) / 2**20, 1) if samples else 0,
     "mean_total_mib": round(sum(t for t, _ in samples) / len(samples) / 2**20, 1) if samples else 0,
     "max_running": max(n for _, n in samples) if samples else 0,
     "samples_over_budget": len(over),
     "max_over_budget_mib": round((max(over) - budget) / 2**20, 1) if over else 0}
print(json.dumps(r))
PY
