#!/usr/bin/env python3
"""How many held requests a proxy sustains: opens N connections to 127.0.0.1:PORT, sends one request on
each that the proxy holds (a long-delay experiment must be running), waits, and reports how many are
still held (open, unanswered) and the proxy's RSS. Every connection is closed at the end.

    held.py PID PORT N [HOLD_SECONDS]

Prints one JSON object. Standard library only; loopback only; bounded by N and HOLD_SECONDS.
"""
import asyncio
import json
import resource
import sys
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def main():
    pid, port, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    hold = float(sys.argv[4]) if len(sys.argv) > 4 else 3.0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 100)), hard))
    before = rss_kb(pid)
    conns, failed = [], 0
    started = time.monotonic()
    for i in range(n):
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
            w.write(f"GET /held/{i} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            conns.append((r, w))
        except (OSError, asyncio.TimeoutError):
            failed += 1
        if i % 500 == 499:
            await asyncio.sleep(0)  # let writes go out
    opened_s = time.monotonic() - started
    await asyncio.sleep(hold)
    held_rss = rss_kb(pid)
    # A held request has no answer yet and its connection is open.
    held = sum(1 for r, _ in conns if not r.at_eof() and len(r._buffer) == 0)  # noqa: SLF001
    answered = sum(1 for r, _ in conns if len(r._buffer) > 0)  # noqa: SLF001
    for _, w in conns:
        w.close()
    print(json.dumps({
        "requests": n, "connect_failed": failed, "held": held, "answered_early": answered,
        "rss_before_kb": before, "rss_held_kb": held_rss,
        "kb_per_held_request": round((held_rss - before) / max(held, 1), 2), "open_s": round(opened_s, 2),
    }))


asyncio.run(main())
