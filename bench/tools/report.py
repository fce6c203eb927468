#!/usr/bin/python3
"""bench/tools/report.py: turns bench/run's raw measurements into results.json and the report.

  report.py --raw build/bench/raw --json build/bench/results.json --md docs/BENCHMARKS.md
            [--notes bench/notes.md]

Raw data: one JSON object per line in RAW/<section>.jsonl, plus RAW/meta.json. Every figure in the
report is a median with its range (min-max) over the runs, unless it says otherwise.
"""

import argparse
import json
import os
import statistics


def load(raw, section):
    path = os.path.join(raw, section + ".jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def med(xs):
    return statistics.median(xs) if xs else None


def pct(xs, p):
    """Nearest-rank percentile."""
    if not xs:
        return None
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def fmt(x, nd=1):
    if x is None:
        return "–"
    if isinstance(x, float) and abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:,.{nd}f}" if isinstance(x, float) else f"{x:,}"


def mr(xs, nd=1):
    """'median (min–max)'."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    if len(xs) == 1:
        return fmt(float(xs[0]), nd)
    return f"{fmt(float(med(xs)), nd)} ({fmt(float(min(xs)), nd)}–{fmt(float(max(xs)), nd)})"


class Report:
    def __init__(self):
        self.md = []
        self.res = {}
        self.targets = []  # (what, target, measured, met: True/False/None, note)

    def p(self, *lines):
        self.md.extend(lines)

    def table(self, head, rows):
        self.p("| " + " | ".join(head) + " |", "|" + "---|" * len(head))
        for r in rows:
            self.p("| " + " | ".join(str(c) for c in r) + " |")
        self.p("")


# ----------------------------------------------------------------------------------- warm path

WARM_NAMES = {
    "plain-noka": "nginx proxy_pass (no upstream keepalive)",
    "od-noka": "nginx + ondemand (no upstream keepalive)",
    "plain-ka": "nginx proxy_pass, keepalive 32",
    "od-ka": "nginx + ondemand, keepalive 32",
    "chain-noka": "socket-activate + socket-proxyd (no keepalive)",
    "chain-ka": "socket-activate + socket-proxyd, keepalive 32",
}


def warm(rep, raw):
    recs = load(raw, "warm")
    if not recs:
        return
    conns = next((r["conns"] for r in recs if r["kind"] == "throughput"), "?")
    rounds = max(r["round"] for r in recs)
    by = {}
    for r in recs:
        by.setdefault((r["variant"], r["kind"]), {})[r["round"]] = r["wrk"]
    variants = [v for v in WARM_NAMES if (v, "throughput") in by]
    tput_s = next((r["wrk"].get("duration_us", 0) / 1e6 for r in recs if r["kind"] == "throughput"), 0)
    loads = [r["load1"] for r in recs if "load1" in r]
    rep.p("## 1. Warm path", "",
          f"One app process (ondemand-testapp, `GET /`, HTTP/1.1) behind each variant; nginx runs one "
          f"worker. The variants alternate in short slices: every variant runs once per round, {rounds} "
          f"rounds, in rotated order (A B C…, B C… A, …); a slice is {tput_s:.0f} s of throughput "
          f"(`wrk -t1 -c{conns}`) then 1 s of latency (`wrk -t1 -c1`: one client, so the time to serve "
          f"a request, not queueing). *CPU/request* is the CPU time of the nginx worker (for the chain: "
          f"plus systemd-socket-proxyd) per request in the throughput slices (`/proc/PID/schedstat`): "
          f"the work each variant does, which other load on the machine disturbs far less than req/s. "
          f"Median (min–max) over the rounds."
          + (f" The machine was shared with other work during the run: 1-minute load average "
             f"{mr(loads, 1)} on 2 cores." if loads else ""), "")
    rows = []
    for v in variants:
        t = by[(v, "throughput")]
        l = by.get((v, "latency"), {})
        errs = sum(w.get("err_connect", 0) + w.get("err_read", 0) + w.get("err_write", 0) +
                   w.get("err_status", 0) + w.get("err_timeout", 0) for w in list(t.values()) + list(l.values()))
        cpu = [rr["cpu_ns"] / rr["wrk"]["requests"] / 1000 for rr in recs
               if rr["variant"] == v and rr["kind"] == "throughput" and rr.get("cpu_ns") and rr["wrk"].get("requests")]
        rows.append([WARM_NAMES[v], mr([w.get("rps") for w in t.values()], 0), mr(cpu, 2),
                     mr([w.get("p50_us") for w in t.values()], 0), mr([w.get("p99_us") for w in t.values()], 0),
                     mr([w.get("p50_us") for w in l.values()], 0), mr([w.get("p99_us") for w in l.values()], 0),
                     errs])
    rep.table(["variant", "req/s", "CPU µs/request", f"p50 µs (c{conns})", f"p99 µs (c{conns})", "p50 µs (c1)",
               "p99 µs (c1)", "errors"], rows)

    def paired(a, b, kind, key, op):
        A, B = by.get((a, kind), {}), by.get((b, kind), {})
        return [op(A[r][key], B[r][key]) for r in sorted(A) if r in B and A[r].get(key) and B[r].get(key)]

    ratio = lambda x, y: x / y
    diff = lambda x, y: x - y
    comp = []
    for od, plain, suffix, label in (("od-noka", "plain-noka", "", "no upstream keepalive"),
                                     ("od-ka", "plain-ka", "_keepalive", "keepalive 32")):
        if (od, "throughput") not in by or (plain, "throughput") not in by:
            continue
        rr = paired(od, plain, "throughput", "rps", ratio)
        p50 = paired(od, plain, "latency", "p50_us", diff)
        p99 = paired(od, plain, "latency", "p99_us", diff)
        p90 = paired(od, plain, "latency", "p90_us", diff)
        p99l = paired(od, plain, "throughput", "p99_us", diff)
        cpu = {}
        for x in recs:
            if x["kind"] == "throughput" and x.get("cpu_ns") and x["wrk"].get("requests"):
                cpu[(x["variant"], x["round"])] = x["cpu_ns"] / x["wrk"]["requests"] / 1000
        dcpu = [cpu[(od, r)] - cpu[(plain, r)] for r in range(1, rounds + 1) if (od, r) in cpu and (plain, r) in cpu]
        if dcpu:
            rep.res["warm_cpu_added_us" + suffix] = round(med(dcpu), 3)
        rep.res["warm_rps_ratio_vs_proxy_pass" + suffix] = round(med(rr), 4)
        rep.res["warm_p50_added_us" + suffix] = med(p50)
        rep.res["warm_p99_added_us" + suffix] = med(p99)
        rep.res["warm_rps_ondemand" + suffix] = med([w["rps"] for w in by[(od, "throughput")].values()])
        rep.res["warm_rps_proxy_pass" + suffix] = med([w["rps"] for w in by[(plain, "throughput")].values()])
        rep.res["warm_p90_added_us" + suffix] = med(p90)
        comp.append([label, mr([x * 100 for x in rr], 1) + " %", mr(dcpu, 2), mr(p50, 0), mr(p90, 0), mr(p99, 0),
                     mr(p99l, 0)])
        rep.targets.append((f"warm throughput vs proxy_pass ({label})", ">= 97 %",
                            f"{med(rr) * 100:.1f} %", med(rr) >= 0.97, ""))
        rep.targets.append((f"warm p99 added ({label}, c1)", "<= 50 µs", f"{med(p99):.0f} µs",
                            med(p99) <= 50, f"per round {mr(p99, 0)} µs; p90 added {med(p90):.0f} µs, "
                            f"CPU/request added {med(dcpu):.2f} µs" if dcpu else ""))
    for ch, plain, suffix in (("chain-noka", "plain-noka", ""), ("chain-ka", "plain-ka", "_keepalive")):
        if (ch, "throughput") in by and (plain, "throughput") in by:
            rep.res["warm_chain_rps_ratio_vs_proxy_pass" + suffix] = round(med(paired(ch, plain, "throughput", "rps", ratio)), 4)
            rep.res["warm_chain_p99_added_us" + suffix] = med(paired(ch, plain, "latency", "p99_us", diff))
    if comp:
        rep.p("ondemand against plain `proxy_pass`, paired within each round:", "")
        rep.table(["upstream keepalive", "req/s ratio", "CPU µs/request added", "p50 added µs (c1)", "p90 added µs (c1)",
                   "p99 added µs (c1)",
                   f"p99 added µs (c{conns})"], comp)
    else:
        rep.p("_ondemand variants were not measured in this run (helperd was not built)._", "")



# ----------------------------------------------------------------------------------- cold start

COLD_NAMES = {
    "od-connect": "ondemand, ready=connect",
    "od-notify": "ondemand, ready=notify (Type=notify app)",
    "od-http": "ondemand, ready=http:/",
    "chain-sleep": "chain, ExecStartPost=/bin/sleep 1",
    "chain-poll": "chain, 100 ms socket poll",
    "chain-notify": "chain, Type=notify app",
}


def cold_overheads(recs):
    """Per (variant, delay): overheads, the parts before/after the app's own start-up, errors.

    ondemand: the app's own readiness in a run is StartUnit (helperd's log line, stamped on
    CLOCK_MONOTONIC) until the app's socket first accepts (the client's watcher), so
    overhead = latency - (accept - StartUnit) = (request -> StartUnit) + (accept -> answer).
    The chain has no StartUnit call to time (systemd starts the units on socket activation), so
    there the readiness is (accept - fork) + systemd's StartUnit->fork time (the probes' median),
    and overhead = (request -> fork - that median) + (accept -> answer).
    """
    probe = {}
    for r in recs:
        if r["variant"].startswith("probe-") and r["ready_ms"] >= 0:
            probe.setdefault((r["variant"], r["delay_ms"]), []).append(r)
    fork = {k: med([r["exec_ms"] for r in v if r.get("exec_ms", -1) >= 0]) for k, v in probe.items()}
    out = {}
    for r in recs:
        v = r["variant"]
        if v.startswith("probe-"):
            continue
        kind = "probe-notify" if v.endswith("notify") else "probe-simple"
        f = fork.get((kind, r["delay_ms"]))
        o = out.setdefault((v, r["delay_ms"]), {"ov": [], "pre": [], "post": [], "err": 0, "n": 0,
                                                "miss": 0, "stages": []})
        o["n"] += 1
        ok = r["status"] == 200 and r.get("exec_ms") is not None and r.get("acc_ms") is not None
        if ok and v.startswith("od-") and r.get("su_ms") is not None:
            o["pre"].append(r["su_ms"])
            o["post"].append(r["latency_ms"] - r["acc_ms"])
            o["ov"].append(r["su_ms"] + r["latency_ms"] - r["acc_ms"])
            if r.get("hready_ms") is not None:
                o["stages"].append((r["su_ms"], r["exec_ms"] - r["su_ms"], r["acc_ms"] - r["exec_ms"],
                                    r["hready_ms"] - r["acc_ms"], r["latency_ms"] - r["hready_ms"]))
        elif ok and f is not None:
            o["pre"].append(r["exec_ms"] - f)
            o["post"].append(r["latency_ms"] - r["acc_ms"])
            o["ov"].append(r["latency_ms"] - (r["acc_ms"] - r["exec_ms"]) - f)
        elif r["status"] == 200:
            o["miss"] += 1  # answered, but a timestamp is missing: not counted either way
        else:
            o["err"] += 1
    return probe, out


def cold(rep, raw):
    recs = [r for r in load(raw, "cold") if r["round"] > 0]
    if not recs:
        return
    rounds = max(r["round"] for r in recs)
    delays = sorted({r["delay_ms"] for r in recs})
    probe, out = cold_overheads(recs)
    rep.p("## 2. Cold-start overhead", "",
          f"The first request to a stopped app, minus the app's own readiness time. The app's own "
          f"readiness is StartUnit until its socket first accepts a connection; it varies by several ms "
          f"from run to run (systemd's fork, the app's own start-up), so it is taken in each run: "
          f"`bench/tools/coldclient` sends the request and meanwhile connects to the app's socket "
          f"every 50 µs (the first accept), helperd's log lines carry CLOCK_MONOTONIC stamps "
          f"(StartUnit), and the unit's ExecMainStartTimestampMonotonic gives the fork. "
          f"ondemand: overhead = latency − (accept − StartUnit) = *before* (request → StartUnit: "
          f"nginx, helperd) + *after* (accept → answer at the client: readiness detection, release, "
          f"proxying). The chain makes no StartUnit call that could be timed, so its *before* is "
          f"request → fork minus systemd's StartUnit→fork time measured by `bench/tools/startprobe` "
          f"(StartUnit over D-Bus on the same app, then connect every 50 µs; median of the probes, "
          f"shown as *app's own readiness*). {rounds} rounds; every variant runs once per delay per round in rotated "
          f"order; each ondemand run uses a fresh app and unit instance. The client always goes through "
          f"nginx (2 workers); the chain is a socket unit + `systemd-socket-proxyd` service "
          f"(`Requires=`/`After=` the app unit). ms, median (min–max); p99 is nearest-rank over the runs. "
          f"*errors* counts answers other than 200; *unmeasured* runs were answered 200 but missed a "
          f"timestamp (the socket watcher did not see the first accept) and are left out.", "")
    rows = []
    for d in delays:
        for kind in ("probe-simple", "probe-notify"):
            ps = probe.get((kind, d), [])
            if ps:
                rows.append([d, f"app's own readiness, {kind[6:]} unit (probe)", mr([p["ready_ms"] for p in ps]),
                             "", "StartUnit→fork " + mr([p["exec_ms"] for p in ps]), "", ""])
        for v, name in COLD_NAMES.items():
            if (v, d) not in out:
                continue
            o = out[(v, d)]
            rows.append([d, name, "**" + mr(o["ov"]) + "**", fmt(pct(o["ov"], 99)) if o["ov"] else "–",
                         mr(o["pre"]), mr(o["post"]),
                         f"{o['err']}/{o['n']}" + (f" ({o['miss']} unmeasured)" if o["miss"] else "")])
    rep.table(["app delay ms", "variant", "overhead ms", "p99 ms", "before ms", "after ms", "errors"], rows)

    srows = []
    for v, name in COLD_NAMES.items():
        st = [s for (vv, d), o in out.items() if vv == v for s in o["stages"]]
        if st:
            srows.append([name] + [mr([s[i] for s in st], 2) for i in range(5)])
    if srows:
        rep.p("Where the first request's time goes (ondemand, all delays pooled; ms, median (min–max)):", "")
        rep.table(["variant", "request → StartUnit (nginx, helperd)", "StartUnit → fork (systemd)",
                   "fork → accept (the app)", "accept → helperd says ready", "ready → answer (nginx)"], srows)

    def pooled(v, key="ov"):
        xs, e, n = [], 0, 0
        for (vv, d), o in out.items():
            if vv == v:
                xs += o[key]
                e += o["err"]
                n += o["n"]
        return xs, e, n

    for v in COLD_NAMES:
        xs, e, n = pooled(v)
        if not n:
            continue
        key = "cold_overhead" if v == "od-connect" else "cold_" + v.replace("-", "_").replace("od_", "") + "_overhead"
        rep.res[key + "_p50_ms"] = round(med(xs), 2) if xs else None
        rep.res[key + "_p99_ms"] = round(pct(xs, 99), 2) if xs else None
        rep.res[key.replace("_overhead", "") + "_errors"] = e
    for mode in ("connect", "notify", "http"):
        xs, e, n = pooled("od-" + mode)
        if xs:
            rep.targets.append((f"cold-start overhead p50, ready={mode}", "<= 2 ms", f"{med(xs):.2f} ms", med(xs) <= 2, ""))
            rep.targets.append((f"cold-start overhead p99, ready={mode}", "<= 5 ms", f"{pct(xs, 99):.2f} ms",
                                pct(xs, 99) <= 5, ""))

# ------------------------------------------------------------------------------------------ herd

def herd(rep, raw):
    recs = [r for r in load(raw, "herd") if not r.get("summary")]
    summ = [r for r in load(raw, "herd") if r.get("summary")]
    if not recs:
        return
    rounds = max(r["round"] for r in recs)
    rep.p("## 3. Herd", "",
          f"N requests at once on one cold app (2000 ms start-up, listen backlog 128, the test app's "
          f"default), through nginx with 2 workers (`reuseport`), `queue=20000` (the default queue of "
          f"1000 would answer the rest 503 by design). `bench/tools/herd.py` opens the N connections, "
          f"sends all requests, samples the workers' RSS 300 ms later (requests held), then reads every "
          f"answer. *paced*: the module's default release (32 per ms per worker, and connect() retries "
          f"while the app's backlog is full); *unpaced*: `release=100000`. {rounds} round(s); a fresh app "
          f"each time. Times are from the start of sending; memory per held request = (RSS held − RSS "
          f"with the connections open and idle) / N.", "")
    rows = []
    for n in sorted({r["size"] for r in recs}):
        for v in ("paced", "unpaced"):
            rs = [r for r in recs if r["size"] == n and r["variant"] == v]
            if not rs:
                continue
            res = [r["result"] for r in rs]
            errs = [x.get("errors", n) for x in res]
            st = {}
            for x in res:
                for k, c in x.get("statuses", {}).items():
                    st[k] = st.get(k, 0) + c
            per = [(x["rss_held_kb"] - x["rss_connected_kb"]) / n for x in res if "rss_held_kb" in x]
            rows.append([f"{n:,}", v, mr(errs, 0), ", ".join(f"{k}: {c}" for k, c in sorted(st.items())),
                         mr([r["start_units"] for r in rs], 0), mr([x.get("app_pids") for x in res], 0),
                         mr([x.get("first_answer_s") for x in res], 2), mr([x.get("last_answer_s") for x in res], 2),
                         mr(per, 2)])
            key = f"herd_{n}" + ("" if v == "paced" else "_unpaced")
            rep.res[key + "_errors"] = max(errs)
            rep.res[key + "_start_units"] = max(r["start_units"] for r in rs)
            rep.res[key + "_last_answer_s"] = med([x.get("last_answer_s") for x in res if x.get("last_answer_s")])
            if per:
                rep.res[key + "_rss_per_held_kb"] = round(med(per), 2)
            if v == "paced":
                rep.targets.append((f"herd of {n:,}: all 200, one StartUnit", "0 errors, 1 StartUnit",
                                    f"{max(errs)} errors, {max(r['start_units'] for r in rs)} StartUnit",
                                    max(errs) == 0 and max(r["start_units"] for r in rs) == 1, ""))
    rep.res["herd_start_units"] = max(r["start_units"] for r in recs)
    rep.table(["requests", "release", "errors (non-200)", "statuses (all rounds)", "StartUnit calls",
               "app processes", "first answer s", "last answer s", "worker RSS KiB per held request"], rows)
    if summ:
        rep.p(f"`connect() failed (11: Resource temporarily unavailable)` lines in nginx's error log over "
              f"the whole section: {summ[-1]['eagain_log_lines']}.", "")

# ----------------------------------------------------------------------------------------- scale

def scale(rep, raw):
    recs = load(raw, "scale")
    if not recs:
        return
    sizes = sorted({r["apps"] for r in recs})
    rep.p("## 4. Scale", "",
          "N apps configured as ondemand upstreams behind one server block (`ondemand_app $http_x_app`), "
          "zone sized at 384 bytes per app (at least 1 MiB), nginx with 2 workers. `nginx -t` and reload "
          "times are wall-clock; a reload counts until a request is answered by the new configuration. "
          "The zone's resident size is the Rss of its shared mapping in a worker (`/proc/PID/smaps`). "
          "Cold-start overhead as in section 2 (request → StartUnit + socket accepts → answer), for apps "
          "spread over the configuration. Median (min–max).", "")
    rows = []
    for n in sizes:
        rs = [r for r in recs if r["apps"] == n]
        t = [r["s"] for r in rs if r["kind"] == "test"]
        rl = [r["s"] for r in rs if r["kind"] == "reload"]
        cold = [r for r in rs if r["kind"] == "cold"]
        ov = [r["su_ms"] + r["latency_ms"] - r["acc_ms"] for r in cold
              if r["status"] == 200 and r.get("su_ms") is not None and r.get("acc_ms") is not None]
        errs = sum(1 for r in cold if r["status"] != 200)
        mem = next((r for r in rs if r["kind"] == "memory"), {})
        rows.append([f"{n:,}", mr(t, 3), mr(rl, 3), f"{mem.get('zone_kb', 0):,} KiB / {mem.get('zone_rss_kb', 0):,} KiB",
                     f"{mem.get('workers_rss_kb', 0) / 1024:,.1f} MiB", f"{mem.get('master_rss_kb', 0) / 1024:,.1f} MiB",
                     f"{mem.get('helperd_rss_kb', 0) / 1024:,.1f} MiB", mr(ov, 2), f"{errs}/{len(cold)}"])
        k = f"scale_{n}"
        rep.res[k + "_nginx_t_s"] = round(med(t), 3) if t else None
        rep.res[k + "_reload_s"] = round(med(rl), 3) if rl else None
        rep.res[k + "_zone_rss_kb"] = mem.get("zone_rss_kb")
        rep.res[k + "_workers_rss_kb"] = mem.get("workers_rss_kb")
        rep.res[k + "_helperd_rss_kb"] = mem.get("helperd_rss_kb")
        rep.res[k + "_cold_overhead_p50_ms"] = round(med(ov), 2) if ov else None
    rep.table(["apps", "nginx -t s", "reload s", "zone size / resident", "workers' RSS (sum)", "master RSS",
               "helperd RSS", "cold overhead ms", "cold errors"], rows)


# ------------------------------------------------------------------------------------- lifecycle

def lifecycle(rep, raw):
    recs = load(raw, "lifecycle")
    if not recs:
        return
    rep.p("## 5. Lifecycle", "")
    pre = [r for r in recs if r.get("part") == "precision" and "stop_after_ms" in r]
    skipped = [r for r in recs if r.get("skipped")]
    if pre:
        late = [r["stop_after_ms"] - r["idle_timeout_ms"] for r in pre]
        rep.p(f"**Idle-stop precision** ({len(pre)} apps, `idle_timeout=2s`): helperd's StopUnit came "
              f"{mr(late, 0)} ms after the idle timeout had passed (measured from the end of the last "
              f"request). The idle scan runs every quarter of the smallest idle_timeout (here 500 ms), "
              f"so up to 500 ms late is by design.", "")
        rep.res["lifecycle_idle_stop_late_p50_ms"] = med(late)
        rep.res["lifecycle_idle_stop_late_max_ms"] = max(late)
    b = [r for r in recs if r.get("part") == "boundary"]
    if b:
        b = b[-1]
        rep.p(f"**Boundary stress** (`idle_timeout=1s`, scan every 250 ms): {b['cycles']} requests, each "
              f"sent 980–1300 ms after the previous answer, across the window in which the app is being "
              f"stopped: {b['errors']} non-200 answers, {b['restarts']} restarts of the app.", "")
        rep.res["lifecycle_boundary_errors"] = b["errors"]
        rep.res["lifecycle_boundary_restarts"] = b["restarts"]
        rep.targets.append(("idle-boundary stress: no failed request", "0 errors", f"{b['errors']} errors",
                            b["errors"] == 0, ""))
    st = [r for r in recs if r.get("part") == "stress"]
    if st:
        st = st[-1]
        rep.p(f"**Boundary stress, many cycles** (`t/20-idle-boundary.t` with BOUNDARY_CYCLES="
              f"{st['cycles']}: `idle_timeout=100ms`, 1–3 requests at once every 60–180 ms, 2 workers): "
              f"{st['cycles']} stop/start cycles ({st['stops']} idle stops), {st['requests']} requests, "
              f"{st['errors']} errors, {st['seconds']:.0f} s.", "")
        rep.res["lifecycle_stress_cycles"] = st["cycles"]
        rep.res["lifecycle_stress_errors"] = st["errors"]
        rep.targets.append((f"idle-boundary stress: {st['cycles']} stop/start cycles", "0 errors",
                            f"{st['errors']} errors", st["errors"] == 0, ""))
    fr = [r for r in recs if r.get("part") == "freeze" and "latency_ms" in r]
    if fr:
        lat = [r["latency_ms"] for r in fr if r["status"] == 200]
        rep.p(f"**Freeze/thaw wake latency** ({len(fr)} runs): a request to a frozen app answered in "
              f"{mr(lat, 2)} ms.", "")
        rep.res["lifecycle_thaw_p50_ms"] = med(lat)
    for r in skipped:
        rep.p(f"- SKIPPED ({r.get('part', 'all')}): {r['skipped']}.")
    rep.p("")


def containers(rep, raw):
    recs = load(raw, "containers")
    if not recs:
        return
    rep.p("## 6. Containers", "")
    runs = [r for r in recs if "variant" in r and r.get("round", 0) > 0]
    if runs:
        rounds = max(r["round"] for r in runs)
        rep.p(f"The same static test app as a plain process (ondemand-exec@, the baseline), "
              f"podman 4.3 (crun, private storage, `--network=none`), crun run directly on a bundle "
              f"`ondemandctl prepare` made (ondemand-oci@, issue #16) and docker 20.10 (a private dockerd, "
              f"`--network=none`) running the tiny local image "
              f"(busybox + the static test app) through the project's unit templates. *runtime's own "
              f"start-to-socket*: `bench/tools/startprobe` (StartUnit, then connect every 50 µs; no nginx, "
              f"no helperd). *through ondemand*: the first request to a fresh app, `ready=connect`; overhead "
              f"as in section 2 = (request → StartUnit) + (socket accepts → answer). {rounds} rounds after "
              f"one warm-up round; each round runs every shape once, one after the other. ms, median (min–max).", "")
        rows = []
        first = {}
        for shape, name in (("exec", "ondemand-exec@ (plain process, the baseline)"),
                            ("oci", "ondemand-oci@ (crun run on a prepared bundle)"),
                            ("podman", "ondemand-podman@ (Type=notify, conmon)"),
                            ("podman-simple", "ondemand-podman-simple@ (Type=simple)"),
                            ("docker", "ondemand-docker@ (Type=simple, docker run)")):
            pr = [r for r in runs if r["variant"] == "probe-" + shape and r["ready_ms"] >= 0]
            od = [r for r in runs if r["variant"] == "od-" + shape]
            ok = [r for r in od if r["status"] == 200 and r.get("su_ms") is not None and r.get("acc_ms") is not None]
            ov = [r["su_ms"] + r["latency_ms"] - r["acc_ms"] for r in ok]
            det = [r["hready_ms"] - r["acc_ms"] for r in ok if r.get("hready_ms") is not None]
            if not pr and not od:
                continue
            rows.append([name, mr([r["ready_ms"] for r in pr]), mr([r["job_ms"] for r in pr]),
                         mr([r["latency_ms"] for r in ok]), "**" + mr(ov, 2) + "**", mr(det, 2),
                         f"{len(od) - len(ok)}/{len(od)}"])
            key = "containers_" + shape.replace("-", "_")
            rep.res[key + "_start_to_socket_p50_ms"] = med([r["ready_ms"] for r in pr]) if pr else None
            rep.res[key + "_first_request_p50_ms"] = med([r["latency_ms"] for r in ok]) if ok else None
            rep.res[key + "_overhead_p50_ms"] = round(med(ov), 2) if ov else None
            if ok:
                first[shape] = med([r["latency_ms"] for r in ok])
        rep.table(["unit template", "runtime's own start-to-socket", "its start job done", "first request through ondemand",
                   "overhead", "accept → helperd says ready", "errors"], rows)
        cont = {k: v for k, v in first.items() if k != "exec"}
        if "exec" in first and cont:
            best = min(cont, key=cont.get)
            ratio = round(cont[best] / first["exec"], 2)
            rep.res["container_cold_ratio_vs_exec"] = ratio
            rep.res["container_cold_fastest_kind"] = best
            rep.p(f"Fastest container kind: **{best}**, first request {fmt(float(cont[best]), 1)} ms against "
                  f"{fmt(float(first['exec']), 1)} ms for the plain process: **{ratio:.2f}x** "
                  f"(`container_cold_ratio_vs_exec`).", "")
            rep.targets.append(("container cold start vs the plain process (first request, fastest "
                                "container kind)", "<= 2.0x", f"{ratio:.2f}x ({best})", ratio <= 2.0, "section 6"))
    for r in recs:
        if r.get("skipped"):
            rep.p(f"- SKIPPED{' (' + r['part'] + ')' if r.get('part') else ''}: {r['skipped']}.")
    rep.p("")


# ----------------------------------------------------------------------------------------- burst

def burst(rep, raw):
    recs = load(raw, "burst")
    if not recs:
        return
    n = recs[0]["connections"]
    rounds = max(r["round"] for r in recs)
    rep.p("## 7. Burst onto a running app", "",
          f"{n:,} connections at once (`h2load --h1 -n {n} -c {n}`, one request each) onto one running "
          f"app whose listen backlog is 128 (the test app's default), through nginx with 2 workers: "
          f"*plain* is `proxy_pass` to a plain upstream (nginx's own connect), *ondemand* the same app "
          f"through the module (warm). {rounds} round(s), the two variants one after the other in each. "
          f"EAGAIN = `connect() ... (11: Resource temporarily unavailable)` lines in nginx's error log "
          f"(each one a 502).", "")
    rows = []
    for v in ("plain", "ondemand"):
        rs = [r for r in recs if r["variant"] == v]
        if not rs:
            continue
        errs = [r["connections"] - r["2xx"] for r in rs]
        rows.append([v, f"{n:,}", mr(errs, 0), str(sum(errs)), mr([r["5xx"] for r in rs], 0),
                     mr([r["eagain_log_lines"] for r in rs], 0)])
        rep.res[f"burst_{v}_errors_max"] = max(errs)
        if v == "ondemand":
            rep.targets.append((f"burst of {n:,} connections on a running app (backlog 128): all 200",
                                "0 errors", f"{max(errs)} errors (plain proxy_pass: "
                                f"{max([r['connections'] - r['2xx'] for r in recs if r['variant'] == 'plain'] or [0])} max)",
                                max(errs) == 0, ""))
    rep.table(["variant", "connections", "errors per round (non-200)", "errors, all rounds", "5xx",
               "EAGAIN log lines"], rows)


# ---------------------------------------------------------------------------------------- main

SECTIONS = [warm, cold, herd, scale, lifecycle, containers, burst]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--notes")
    a = ap.parse_args()
    meta = json.load(open(os.path.join(a.raw, "meta.json")))
    rep = Report()
    for s in SECTIONS:
        s(rep, a.raw)

    head = ["# Benchmarks", "",
            "Generated by `bench/run` (`make bench`); do not edit by hand — the analysis at the end "
            "comes from `bench/notes.md`.", "",
            f"- command: `{meta['command']}`" + (" (reduced set)" if meta["quick"] else ""),
            f"- date: {meta['date']}, commit {meta['commit']}",
            f"- machine: {meta['cpu']}, {meta['cores']} cores, {meta['mem']} RAM, {meta['os']}, "
            f"kernel {meta['kernel']}",
            f"- software: {meta['nginx']}, {meta['systemd']}, {meta['wrk']}",
            "- systemd is a sandboxed user manager (`scripts/sandbox`); all apps are "
            "`ondemand-testapp` on unix sockets.", ""]
    if rep.targets:
        head += ["## Targets", ""]
        t = Report()
        t.table(["figure", "target", "measured (median)", "met", "note"],
                [[w, tg, m, {True: "yes", False: "**no**", None: "–"}[ok], note] for w, tg, m, ok, note in rep.targets])
        head += t.md
    notes = []
    if a.notes and os.path.exists(a.notes):
        notes = ["", open(a.notes).read().rstrip(), ""]
    os.makedirs(os.path.dirname(os.path.abspath(a.md)), exist_ok=True)
    with open(a.md, "w") as f:
        f.write("\n".join(head + rep.md + notes) + "\n")
    rep.res["quick"] = meta["quick"]
    rep.res["commit"] = meta["commit"]
    with open(a.json, "w") as f:
        json.dump(rep.res, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
