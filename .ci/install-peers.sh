#!/usr/bin/env bash
# Installs the real servers and load generators some tests and benchmarks run against, from Debian's
# packages: nginx (nginx-light: HTTP/1.1 and h2c upstreams that rotate their connections), h2load
# (nghttp2-client), wrk and haproxy (the load script's peers). Idempotent; needs root (CI) or sudo.
set -euo pipefail
want=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || want+=(nginx-light)
command -v h2load >/dev/null || want+=(nghttp2-client)
command -v wrk >/dev/null || want+=(wrk)
command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || want+=(haproxy)
if ((${#want[@]} == 0)); then
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
echo "install-peers: done" >&2
