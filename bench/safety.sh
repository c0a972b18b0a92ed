#!/usr/bin/env bash
# Safety under load (docs/safety.md "Measured under load"): the release binary on 127.0.0.1, against the
# in-process upstream of examples/safety_load.rs.
#
#   bench/safety.sh drain      SIGTERM with HTTP/1.1, h2c, WebSockets and 50 MB downloads in flight
#   bench/safety.sh reload     SIGHUP every 2 s (the config alternates its upstream) under the same load
#   bench/safety.sh floods     a normal client's latency, quiet then under each flood
#   bench/safety.sh soak [S]   S seconds (default 600) of traffic and experiment churn: RSS and fds sampled
#   bench/safety.sh all
#
# Prints JSON lines; everything it starts is stopped on exit. Ports 25000-25002 must be free.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${EDGEFAULT_BIN:-target/release/edgefault}"
LOAD="target/release/examples/safety_load"
PROXY=127.0.0.1:25000
UP=127.0.0.1:25001
UP2=127.0.0.1:25002
CONTROL=127.0.0.1:25003
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

[[ -n "${EDGEFAULT_BIN:-}" ]] || cargo build --release --bin edgefault --example safety_load >&2
[[ -x "$LOAD" ]] || cargo build --release --example safety_load >&2

wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing on $1" >&2; exit 1; }

upstreams() {
  "$LOAD" upstream "$UP" >/dev/null & PIDS+=($!)
  "$LOAD" upstream "$UP2" >/dev/null & PIDS+=($!)
  wait_port "$UP"; wait_port "$UP2"
}

config() { # upstream grace
  cat > "$WORK/edgefault.yaml" <<EOF
listeners:
  - name: web
    bind: $PROXY
    routes: [{ name: default, upstream: "http://$1" }]
control: { bind: "$CONTROL" }
drain_grace: $2
EOF
}

serve() {
  RUST_LOG=info "$BIN" serve --config "$WORK/edgefault.yaml" --workers 2 2>"$WORK/serve.log" & SERVE=$!
  PIDS+=("$SERVE")
  wait_port "$PROXY"; wait_port "$CONTROL"
}

drain() {
  config "$UP" 10s; serve
  # When the server exits, seen from outside (it gets SIGTERM 8 s into the traffic).
  ( while kill -0 "$SERVE" 2>/dev/null; do sleep 0.05; done; date +%s.%N > "$WORK/exited" ) &
  local t0; t0=$(date +%s.%N)
  local out; out=$("$LOAD" traffic "$PROXY" --seconds 20 --term-after 8 --pid "$SERVE")
  wait "$SERVE" || true
  for _ in $(seq 1 100); do [[ -s "$WORK/exited" ]] && break; sleep 0.05; done
  local after; after=$(awk -v a="$t0" -v b="$(cat "$WORK/exited")" 'BEGIN { printf "%.1f", b - a - 8 }')
  echo "{\"test\":\"drain\",\"grace\":\"10s\",\"exited_after_sigterm_s\":$after,\"load\":$out}"
}

reload() {
  config "$UP" 10s; serve
  # Alternate the upstream between the two (same answers) on every reload.
  ( for i in $(seq 1 10); do sleep 2; if ((i % 2)); then config "$UP2" 10s; else config "$UP" 10s; fi; done ) &
  local flip=$!
  local out; out=$("$LOAD" traffic "$PROXY" --seconds 20 --hup-every 2 --pid "$SERVE")
  wait "$flip" || true
  local applied rejected
  applied=$(grep -c "config reloaded" "$WORK/serve.log" || true)
  rejected=$(grep -c "config reload rejected" "$WORK/serve.log" || true)
  kill "$SERVE"; wait "$SERVE" || true
  echo "{\"test\":\"reload\",\"applied\":$applied,\"rejected\":$rejected,\"load\":$out}"
}

floods() {
  config "$UP" 10s; serve
  for kind in rapid-reset ping settings slowloris idle; do
    echo "{\"test\":\"flood\",\"result\":$("$LOAD" flood "$PROXY" "$kind" --seconds 8)}"
  done
  local rss; rss=$(awk '/VmRSS/{print $2}' "/proc/$SERVE/status")
  echo "{\"test\":\"flood-after\",\"rss_kb\":$rss}"
  kill "$SERVE"; wait "$SERVE" || true
}

soak() { # seconds
  local seconds=${1:-600}
  config "$UP" 10s; serve
  "$LOAD" traffic "$PROXY" --seconds "$seconds" --h1 8 --h2 2 --ws 16 --downloads 1 > "$WORK/soak.json" & local load=$!
  PIDS+=("$load")
  local ctl=("$BIN" ctl --control "http://$CONTROL")
  local start=$SECONDS next=0
  while ((SECONDS - start < seconds)); do
    # Churn: start two experiments and stop them a moment later, over and over.
    local ids
    ids=$(printf 'name: churn-delay\nduration: 30s\npercentage: 20\nfaults: [{ delay: { fixed: 20ms } }]\n---\nname: churn-abort\nduration: 30s\npercentage: 5\nfaults: [{ abort: { http_status: 503, page: edge } }]\n' | "${ctl[@]}" start -f - 2>/dev/null || true)
    sleep 1
    for id in $ids; do "${ctl[@]}" stop "$id" >/dev/null 2>&1 || true; done
    if ((SECONDS - start >= next)); then
      local rss fds
      rss=$(awk '/VmRSS/{print $2}' "/proc/$SERVE/status")
      fds=$(ls "/proc/$SERVE/fd" | wc -l)
      echo "{\"test\":\"soak-sample\",\"t_s\":$((SECONDS - start)),\"rss_kb\":$rss,\"fds\":$fds}"
      next=$((next + 30))
    fi
  done
  wait "$load" || true
  echo "{\"test\":\"soak\",\"seconds\":$seconds,\"load\":$(cat "$WORK/soak.json")}"
  kill "$SERVE"; wait "$SERVE" || true
}

upstreams
case "${1:-all}" in
  drain) drain ;;
  reload) reload ;;
  floods) floods ;;
  soak) soak "${2:-600}" ;;
  all) drain; reload; floods; soak "${2:-600}" ;;
  *) echo "usage: bench/safety.sh drain|reload|floods|soak [S]|all" >&2; exit 2 ;;
esac
