#!/usr/bin/python3
"""coldrec.py SECTION JSON-FIELDS COLDCLIENT-OUTPUT EXEC-US [STARTUNIT-US READY-US]: one record.

Times are in ms relative to the request's start (all on CLOCK_MONOTONIC): exec_ms (the app's
process was forked: the unit's ExecMainStartTimestampMonotonic), acc_ms (the app's socket first
accepted: coldclient's watcher), latency_ms (the answer was complete at the client), and for
ondemand apps su_ms / hready_ms (helperd logged StartUnit / "ready": stamped by stamp.py).
"""
import json
import sys

section, fields, out, ex = sys.argv[1:5]
su, rd = (sys.argv[5:7] + ["0", "0"])[:2]
kv = dict(x.split("=", 1) for x in out.split())
t0 = int(kv.get("t0_us", 0))
rel = lambda t: round((int(t) - t0) / 1000.0, 3) if t and int(t) > 0 and t0 else None
rec = {"section": section, **json.loads("{" + fields + "}"), "status": int(kv.get("status", 0)),
       "latency_ms": rel(kv.get("end_us")), "exec_ms": rel(ex or 0), "acc_ms": rel(kv.get("acc_us")),
       "su_ms": rel(su), "hready_ms": rel(rd)}
print(json.dumps(rec))
