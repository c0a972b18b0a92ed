#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: edgefault, HAProxy and nginx as
# plain proxies (one worker each) in front of the same nginx upstream, on 127.0.0.1.
#
# Unlike wall-clock figures, instruction counts do not depend on what else the machine is doing: the
# same binary and input give the same count. Each proxy runs twice under callgrind, serving 1,000 and
# 3,000 requests on one keep-alive connection (wrk -c1); the difference divided by 2,000 is the cost of
# one request, start-up excluded. Kernel work (the loopback TCP stack) is not counted.
#
#   bench/instructions.sh            # needs target/release/edgefault (cargo build --release)
#   EDGEFAULT_BIN=path bench/instructions.sh
#
# Prerequisites: valgrind, wrk, nginx, haproxy, curl (bench/install.sh installs all but valgrind,
# which is on the machine image; apt-get install valgrind otherwise).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN="${EDGEFAULT_BIN:-target/release/edgefault}"
BASE="${BASE_PORT:-24600}"
[[ -x "$BIN" ]] || { echo "instructions.sh: $BIN missing; run cargo build --release" >&2; exit 1; }
for t in valgrind wrk nginx haproxy curl; do command -v "$t" >/dev/null || { echo "instructions.sh: $t missing" >&2; exit 1; }; done

DIR="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT
mkdir -p "$DIR/tmp"

UP=$BASE
cat > "$DIR/upstream.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $DIR/up.pid; error_log $DIR/up.err;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $DIR/tmp; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { return 200 "ok"; } } }
CONF
nginx -c "$DIR/upstream.conf" -p "$DIR" >/dev/null 2>&1 &
PIDS+=($!)

cat > "$DIR/count.lua" <<'LUA'
-- Stops wrk after N responses.
local n, done = 0, 0
init = function(args) n = tonumber(args[1]) end
response = function() done = done + 1; if done >= n then wrk.thread:stop() end end
LUA

# run NAME PORT N CMD... : total instructions of CMD serving N requests.
run() {
  local name=$1 port=$2 n=$3; shift 3
  valgrind --tool=callgrind --callgrind-out-file="$DIR/$name.$n.out" "$@" >/dev/null 2>"$DIR/$name.$n.log" &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 150); do curl -s -o /dev/null "127.0.0.1:$port/" && break; sleep 0.2; done
  timeout 300 wrk -t1 -c1 -d120 -s "$DIR/count.lua" "http://127.0.0.1:$port/" -- "$n" >/dev/null 2>&1
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  awk '/^(summary|totals):/ {print $2; exit}' "$DIR/$name.$n.out"
}


measure() {
  local name=$1 port=$2; shift 2
  local a b
  a=$(run "$name" "$port" 1000 "$@")
  b=$(run "$name" "$port" 3000 "$@")
  if [[ -z "$a" || -z "$b" ]]; then
    printf '| %s | failed (see the callgrind logs) |\n' "$name"
  else
    printf '| %s | %s |\n' "$name" "$(( (b - a) / 2000 ))"
  fi
}

cat > "$DIR/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn 1000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
    http-reuse always
frontend plain
    bind 127.0.0.1:$((BASE + 2))
    default_backend app
backend app
    server up1 127.0.0.1:$UP
CONF
# The nginx peer of bench/run.sh, as one process (callgrind follows one).
sed -e "s/@WORKERS@/1/; s/@NOFILE@/4096/; s#@DIR@#$DIR#g; s/@UPPORT@/$UP/; s/@PORT@/$((BASE + 3))/; s/@H2PORT@/$((BASE + 4))/" \
  bench/peers/nginx-proxy.conf.in >"$DIR/nginx-proxy.conf"
sed -i 's/master_process on;/master_process off;/' "$DIR/nginx-proxy.conf"

echo "| proxy | instructions per request |"
echo "| --- | ---: |"
measure edgefault $((BASE + 1)) "$BIN" serve --listen "127.0.0.1:$((BASE + 1))" --upstream "http://127.0.0.1:$UP" \
  --control "127.0.0.1:$((BASE + 9))" --workers 1
measure haproxy $((BASE + 2)) haproxy -f "$DIR/haproxy.cfg"
measure nginx $((BASE + 3)) nginx -c "$DIR/nginx-proxy.conf" -p "$DIR"
