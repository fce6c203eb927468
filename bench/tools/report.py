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
    rep.p("## 1. Warm path", "",
          f"One app process (ondemand-testapp, `GET /`, HTTP/1.1) behind each variant; every variant "
          f"runs once per round, {rounds} rounds, in rotated order (A B C…, B C… A, …). Throughput: "
          f"`wrk -t1 -c{conns}`; latency: `wrk -t1 -c1` (one client, so it is the time to serve a "
          f"request, not queueing). nginx runs one worker. Median (min–max) over the rounds.", "")
    rows = []
    for v in variants:
        t = by[(v, "throughput")]
        l = by.get((v, "latency"), {})
        errs = sum(w.get("err_connect", 0) + w.get("err_read", 0) + w.get("err_write", 0) +
                   w.get("err_status", 0) + w.get("err_timeout", 0) for w in list(t.values()) + list(l.values()))
        rows.append([WARM_NAMES[v], mr([w.get("rps") for w in t.values()], 0),
                     mr([w.get("p50_us") for w in t.values()], 0), mr([w.get("p99_us") for w in t.values()], 0),
                     mr([w.get("p50_us") for w in l.values()], 0), mr([w.get("p99_us") for w in l.values()], 0),
                     errs])
    rep.table(["variant", "req/s", f"p50 µs (c{conns})", f"p99 µs (c{conns})", "p50 µs (c1)",
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
        p99l = paired(od, plain, "throughput", "p99_us", diff)
        rep.res["warm_rps_ratio_vs_proxy_pass" + suffix] = round(med(rr), 4)
        rep.res["warm_p50_added_us" + suffix] = med(p50)
        rep.res["warm_p99_added_us" + suffix] = med(p99)
        rep.res["warm_rps_ondemand" + suffix] = med([w["rps"] for w in by[(od, "throughput")].values()])
        rep.res["warm_rps_proxy_pass" + suffix] = med([w["rps"] for w in by[(plain, "throughput")].values()])
        comp.append([label, mr([x * 100 for x in rr], 1) + " %", mr(p50, 0), mr(p99, 0), mr(p99l, 0)])
        rep.targets.append((f"warm throughput vs proxy_pass ({label})", ">= 97 %",
                            f"{med(rr) * 100:.1f} %", med(rr) >= 0.97, ""))
        rep.targets.append((f"warm p99 added ({label}, c1)", "<= 50 µs", f"{med(p99):.0f} µs",
                            med(p99) <= 50, ""))
    for ch, plain, suffix in (("chain-noka", "plain-noka", ""), ("chain-ka", "plain-ka", "_keepalive")):
        if (ch, "throughput") in by and (plain, "throughput") in by:
            rep.res["warm_chain_rps_ratio_vs_proxy_pass" + suffix] = round(med(paired(ch, plain, "throughput", "rps", ratio)), 4)
            rep.res["warm_chain_p99_added_us" + suffix] = med(paired(ch, plain, "latency", "p99_us", diff))
    if comp:
        rep.p("ondemand against plain `proxy_pass`, paired within each round:", "")
        rep.table(["upstream keepalive", "req/s ratio", "p50 added µs (c1)", "p99 added µs (c1)",
                   f"p99 added µs (c{conns})"], comp)
    else:
        rep.p("_ondemand variants were not measured in this run (helperd was not built)._", "")


# ---------------------------------------------------------------------------------------- main

SECTIONS = [warm]


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
        t.table(["figure", "target", "measured (median)", "met"],
                [[w, tg, m, {True: "yes", False: "**no**", None: "–"}[ok]] for w, tg, m, ok, _ in rep.targets])
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
