#!/usr/bin/python3
"""stamp.py: copies stdin to stdout, each line prefixed with CLOCK_MONOTONIC in microseconds.

bench/run pipes helperd's log through it, so that helperd's StartUnit and readiness lines can be
put on the same clock as the clients and systemd's *TimestampMonotonic properties.
"""
import sys
import time

out = sys.stdout
for line in sys.stdin.buffer:
    t = time.monotonic_ns() // 1000
    out.write(f"{t} {line.decode(errors='replace')}")
    out.flush()
