#!/usr/bin/python3
"""herd.py: N concurrent requests on one cold app, held together; prints one JSON object.

  herd.py --port PORT --app NAME --n N --workers PID,PID [--timeout 120]

1. opens N connections to 127.0.0.1:PORT (at most 256 connects in flight), idle;
2. sends "GET / HTTP/1.1" with "X-App: NAME" on all of them, as fast as it can;
3. 300 ms later samples the nginx workers' RSS (the requests are held: the app takes longer
   than that to start), then reads every answer.
RSS of the workers (KiB, summed) is sampled before connecting, with the connections open and
idle, and with the requests held, so the growth per held request excludes the connections.
"""
import argparse
import asyncio
import json
import resource
import time


def rss_kb(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--app", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--workers", required=True)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--hold-sample-ms", type=int, default=300)
    a = ap.parse_args()
    pids = [int(p) for p in a.workers.split(",") if p]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    res = {"n": a.n, "app": a.app}
    res["rss_before_kb"] = rss_kb(pids)
    sem = asyncio.Semaphore(256)
    conns = [None] * a.n
    connect_errors = 0

    async def connect(i):
        nonlocal connect_errors
        async with sem:
            try:
                conns[i] = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", a.port), 30)
            except Exception:
                connect_errors += 1

    t = time.monotonic()
    await asyncio.gather(*(connect(i) for i in range(a.n)))
    res["connect_s"] = round(time.monotonic() - t, 3)
    res["connect_errors"] = connect_errors
    await asyncio.sleep(0.2)
    res["rss_connected_kb"] = rss_kb(pids)

    req = (f"GET / HTTP/1.1\r\nHost: bench\r\nX-App: {a.app}\r\nConnection: close\r\n\r\n").encode()
    t0 = time.monotonic()
    for c in conns:
        if c:
            c[1].write(req)
    await asyncio.gather(*(c[1].drain() for c in conns if c), return_exceptions=True)
    res["send_s"] = round(time.monotonic() - t0, 3)
    await asyncio.sleep(a.hold_sample_ms / 1000.0)
    res["rss_held_kb"] = rss_kb(pids)
    res["rss_sampled_at_s"] = round(time.monotonic() - t0, 3)

    statuses, pids_seen, done_at = {}, {}, []

    async def read(c):
        try:
            data = await asyncio.wait_for(c[0].read(), max(1, a.timeout - (time.monotonic() - t0)))
        except Exception as e:
            statuses[type(e).__name__] = statuses.get(type(e).__name__, 0) + 1
            return
        finally:
            c[1].close()
        done_at.append(time.monotonic() - t0)
        head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace").split("\r\n")
        st = head[0].split(" ")[1] if head and len(head[0].split(" ")) > 1 else "none"
        statuses[st] = statuses.get(st, 0) + 1
        for h in head[1:]:
            if h.lower().startswith("x-pid:"):
                p = h.split(":", 1)[1].strip()
                pids_seen[p] = pids_seen.get(p, 0) + 1

    await asyncio.gather(*(read(c) for c in conns if c))
    done_at.sort()
    res["statuses"] = statuses
    res["ok"] = statuses.get("200", 0)
    res["errors"] = a.n - res["ok"]
    res["app_pids"] = len(pids_seen)
    if done_at:
        res["first_answer_s"] = round(done_at[0], 3)
        res["last_answer_s"] = round(done_at[-1], 3)
        res["p50_answer_s"] = round(done_at[len(done_at) // 2], 3)
    res["rss_after_kb"] = rss_kb(pids)
    print(json.dumps(res))


asyncio.run(main())
