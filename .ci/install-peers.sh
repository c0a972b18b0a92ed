#!/usr/bin/env bash
# Installs the real servers and load generators some tests and benchmarks run against, from Debian's
# packages: nginx (nginx-light: HTTP/1.1 and h2c upstreams that rotate their connections), h2load
# (nghttp2-client), wrk and haproxy (the load script's peers), chromium (a browser for the error pages). Idempotent; needs root (CI) or sudo.
set -euo pipefail
want=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || want+=(nginx-light)
command -v h2load >/dev/null || want+=(nghttp2-client)
command -v wrk >/dev/null || want+=(wrk)
command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || want+=(haproxy)
# Headless Chromium renders the built-in error pages (tests/it/fault/page_screenshots.rs).
command -v chromium >/dev/null || want+=(chromium fonts-dejavu-core)
# Python clients we did not write (the official gRPC, reflection and health clients), in a virtualenv of
# their own: tests find it at $EDGEFAULT_CI_CACHE/py.
CACHE="${EDGEFAULT_CI_CACHE:-$HOME/.cache/edgefault-ci}"
PY="$CACHE/py"
# Ranges, not pins: package mirrors differ in which patch releases they carry.
# toxiproxy-python is Toxiproxy's own Python client, run against edgefault's Toxiproxy API (tests/it/toxiproxy).
PY_PACKAGES=("grpcio>=1.60,<2" "grpcio-reflection>=1.60,<2" "grpcio-health-checking>=1.60,<2" "toxiproxy-python>=0.1.1,<0.2")
if [[ ! -x "$PY/bin/python" ]] || ! "$PY/bin/python" -c "import grpc, grpc_reflection, grpc_health, toxiproxy, requests" 2>/dev/null; then
  echo "install-peers: Python clients into $PY" >&2
  python3 -m venv "$PY"
  "$PY/bin/pip" install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
fi
# Toxiproxy's Node client, from npm (Node itself comes with the machine or from Debian's nodejs).
command -v node >/dev/null || want+=(nodejs npm)
install_node_clients() {
  local dir="$CACHE/node-toxiproxy"
  if [[ ! -d "$dir/node_modules/toxiproxy-node-client" ]]; then
    echo "install-peers: toxiproxy-node-client into $dir" >&2
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --silent "toxiproxy-node-client@^4" >/dev/null
  fi
}
if ((${#want[@]} == 0)); then
  install_node_clients
  echo "install-peers: all present" >&2
  exit 0
fi
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
echo "install-peers: installing ${want[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
# The packages start their services; the tests start their own, on ports of their own.
for svc in nginx haproxy; do
  $sudo systemctl disable --now "$svc" >/dev/null 2>&1 || $sudo service "$svc" stop >/dev/null 2>&1 || true
done
install_node_clients
echo "install-peers: done" >&2
