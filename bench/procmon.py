#!/usr/bin/env python3
"""Resource probes for bench/run.sh (stdlib only, Linux /proc).

  procmon.py rss PID
      Print the resident set size (kB) of PID plus all its descendants
      (nginx master + workers count together).

  procmon.py peak PID -- CMD ARGS...
      Run CMD while sampling the RSS of PID's process tree every 10 ms and
      print one JSON object: peak RSS (kB), RSS before, wall time of CMD,
      CMD's exit code and its stdout (stripped). For each process of the
      tree the kernel's high-water mark is reset first (clear_refs 5) and
      read afterwards, so a peak between two samples is not missed.

  procmon.py idle PID HOST PORT COUNT [HOLD_S]
      Open COUNT TCP connections to HOST:PORT, send one keep-alive
      "GET / HTTP/1.1" on each and read its response, then hold them all
      for HOLD_S seconds (default 2), read the RSS of PID's tree, close
      everything and print JSON. Bounded: a 60 s deadline for opening.
"""
import asyncio
import json
import os
import subprocess
import sys
import threading
import time

OPEN_DEADLINE_S = 30   # opening + first request of all connections


def _children():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # the comm field may contain spaces; ppid is the 2nd field after ')'
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pid):
    kids = _children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_tree(pids):
    return sum(status_kb(p, "VmRSS") for p in pids)


def cmd_rss(pid):
    print(rss_tree(tree(pid)))


def cmd_peak(pid, argv):
    pids = tree(pid)
    for p in pids:
        try:
            with open(f"/proc/{p}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
    before = rss_tree(pids)
    peak = [before]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_tree(pids))
            time.sleep(0.01)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.monotonic()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, text=True)
    wall = time.monotonic() - t0
    stop.set()
    t.join()
    hwm = sum(status_kb(p, "VmHWM") for p in pids)
    # the summed HWMs of several processes need not have been simultaneous,
    # so only trust the HWM for a single process
    if len(pids) == 1:
        peak[0] = max(peak[0], hwm)
    print(json.dumps({
        "rss_before_kb": before,
        "peak_rss_kb": peak[0],
        "processes": len(pids),
        "wall_s": round(wall, 3),
        "rc": proc.returncode,
        "stdout": proc.stdout.strip(),
    }))


async def _one(host, port, sem, deadline, conns, stats):
    async with sem:
        try:
            r, w = await asyncio.wait_for(
                asyncio.open_connection(host, port),
                timeout=max(0.1, deadline - time.monotonic()))
        except Exception:
            stats["connect_failed"] += 1
            return
        conns.append((r, w))
        try:
            w.write(f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    "Connection: keep-alive\r\n\r\n".encode())
            head = await asyncio.wait_for(
                r.readuntil(b"\r\n\r\n"),
                timeout=max(0.1, deadline - time.monotonic()))
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await asyncio.wait_for(
                    r.readexactly(length),
                    timeout=max(0.1, deadline - time.monotonic()))
            status = head.split(b" ", 2)[1].decode()
            stats["status"][status] = stats["status"].get(status, 0) + 1
            stats["ok"] += 1
        except Exception:
            stats["request_failed"] += 1


async def _idle(pid, host, port, count, hold):
    pids = tree(pid)
    before = rss_tree(pids)
    stats = {"ok": 0, "connect_failed": 0, "request_failed": 0, "status": {}}
    conns = []
    sem = asyncio.Semaphore(256)   # open at most 256 at a time
    deadline = time.monotonic() + OPEN_DEADLINE_S
    t0 = time.monotonic()
    await asyncio.gather(*[_one(host, port, sem, deadline, conns, stats)
                           for _ in range(count)])
    opened = time.monotonic() - t0
    await asyncio.sleep(hold)
    pids = tree(pid)
    held_rss = rss_tree(pids)
    # connections the server has closed meanwhile show EOF on our side
    alive = sum(1 for r, w in conns if not r.at_eof() and not w.is_closing())
    for _, w in conns:
        w.close()
    print(json.dumps({
        "connections": count, "held": stats["ok"], "alive_after_hold": alive,
        "connect_failed": stats["connect_failed"],
        "request_failed": stats["request_failed"], "status": stats["status"],
        "rss_before_kb": before, "rss_held_kb": held_rss,
        "open_s": round(opened, 2), "hold_s": hold,
    }))


def main():
    a = sys.argv[1:]
    if len(a) >= 2 and a[0] == "rss":
        cmd_rss(int(a[1]))
    elif len(a) >= 4 and a[0] == "peak" and a[2] == "--":
        cmd_peak(int(a[1]), a[3:])
    elif len(a) >= 5 and a[0] == "idle":
        hold = float(a[5]) if len(a) > 5 else 2.0
        asyncio.run(_idle(int(a[1]), a[2], int(a[3]), int(a[4]), hold))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
